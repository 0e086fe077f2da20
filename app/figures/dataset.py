"""Figures of the dataset browser: an image with its ground truth, the split's statistics, and
one problem of an import's validation report over its image.

Boxes are scatter traces (closed outlines, ``hoveron="fills"``) so that hovering anywhere in a
box names it; the image trace spans pixel edges ``0..W`` so pixel ``xyxy`` boxes sit exactly
on it. Figures are built with ``_validate=False``: the builders make well-formed dicts (a test
validates them), and plotly's per-attribute validation would cost tens of ms per figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

# Ten class colours (Tableau 10), readable on the near-black images.
CLASS_COLORS = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
FONT = {"family": "system-ui, sans-serif", "size": 12}


def class_color(label: int) -> str:
    """The colour of class ``label``."""
    return CLASS_COLORS[int(label) % len(CLASS_COLORS)]


def rect_shape(box: Sequence[float], *, line: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A Plotly rectangle shape over pixel ``xyxy`` ``box``, drawn above the image."""
    x0, y0, x1, y1 = box
    return {"type": "rect", "x0": x0, "y0": y0, "x1": x1, "y1": y1, "line": line, "layer": "above", **extra}


def rgba(color: str, alpha: float) -> str:
    """``#rrggbb`` -> ``rgba(r, g, b, alpha)``."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def outline(boxes: Sequence[Sequence[float]]) -> tuple[list[float | None], list[float | None]]:
    """x and y of closed rectangles of ``xyxy`` boxes, separated by ``None`` (one scatter trace)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for x1, y1, x2, y2 in boxes:
        xs += [float(x1), float(x2), float(x2), float(x1), float(x1), None]
        ys += [float(y1), float(y1), float(y2), float(y2), float(y1), None]
    return xs[:-1], ys[:-1]


def box_trace(
    box: Sequence[float],
    *,
    color: str,
    hover: str,
    name: str,
    dash: str = "solid",
    width: float = 2.0,
    fill_alpha: float = 0.08,
) -> dict[str, Any]:
    """One box as a closed scatter outline whose inside shows ``hover``."""
    xs, ys = outline([box])
    return {
        "type": "scatter",
        "x": xs,
        "y": ys,
        "mode": "lines",
        "name": name,
        "line": {"color": color, "width": width, "dash": dash},
        "fill": "toself",
        "fillcolor": rgba(color, fill_alpha),
        "hoveron": "fills",
        "text": hover,
        "hoverinfo": "text",
        "showlegend": False,
    }


def image_trace(source: str, *, hover: bool = False) -> dict[str, Any]:
    """An image trace from a data URL, pixel ``i`` covering ``[i, i + 1]`` on both axes."""
    trace: dict[str, Any] = {"type": "image", "source": source, "x0": 0.5, "y0": 0.5, "dx": 1, "dy": 1}
    if hover:
        trace["hovertemplate"] = "x %{x}, y %{y}<extra></extra>"
    else:
        trace["hoverinfo"] = "skip"
    return trace


def image_layout(width: int, height: int, **extra: Any) -> dict[str, Any]:
    """Axes of an image: pixel units, y down, square pixels, no grid."""
    axis = {"showgrid": False, "zeroline": False, "ticks": "outside", "mirror": True, "linecolor": "#d1d5db"}
    return {
        "xaxis": {**axis, "range": [0, width], "constrain": "domain"},
        "yaxis": {**axis, "range": [height, 0], "scaleanchor": "x", "constrain": "domain"},
        "margin": {"l": 40, "r": 10, "t": 10, "b": 30},
        "plot_bgcolor": "#ffffff",
        "dragmode": "zoom",
        "hovermode": "closest",
        "font": FONT,
        **extra,
    }


IGNORE_COLOR = "#9ca3af"  # crowd / difficult regions: neither rewarded nor punished
DROPPED_COLOR = "#dc2626"
CLIPPED_COLOR = "#f59e0b"


def class_name(label: int, class_names: Sequence[str] | None) -> str:
    """``digit 7`` for the generator (no names), else the dataset's class name."""
    if class_names is None:
        return f"digit {label}"
    return class_names[label] if 0 <= label < len(class_names) else f"class {label}"


def gt_hover(label: int, box: Sequence[float], class_names: Sequence[str] | None = None) -> str:
    """``digit 7 · [12, 30, 40, 66] · 28x36 px``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return f"{class_name(label, class_names)}<br>box [{x1:g}, {y1:g}, {x2:g}, {y2:g}]<br>{x2 - x1:g}x{y2 - y1:g} px"


def _tag(box: Sequence[float], text: str, color: str) -> dict[str, Any]:
    """A small label at a box's top-left corner."""
    return {
        "x": box[0],
        "y": box[1],
        "text": text,
        "showarrow": False,
        "xanchor": "left",
        "yanchor": "bottom",
        "font": {"color": "#ffffff", "size": 11},
        "bgcolor": color,
        "borderpad": 1,
    }


def _ground_truth(
    boxes: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None,
    ignore: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Box traces and labels of the ground truth, ignore regions dashed grey."""
    data, annotations = [], []
    for box, label in zip(boxes.tolist(), labels.tolist(), strict=True):
        color = class_color(label)
        name = class_name(label, class_names)
        data.append(box_trace(box, color=color, hover=gt_hover(label, box, class_names), name=name))
        annotations.append(_tag(box, str(label) if class_names is None else name, color))
    if ignore is not None:
        for box, label in zip(ignore[0].tolist(), ignore[1].tolist(), strict=True):
            hover = "ignore region (crowd / difficult)<br>" + gt_hover(label, box, class_names)
            data.append(box_trace(box, color=IGNORE_COLOR, hover=hover, name="ignore region", dash="dot", width=1.5))
    return data, annotations


def sample_figure(
    source: str,
    boxes: np.ndarray,
    labels: np.ndarray,
    *,
    width: int,
    height: int,
    class_names: Sequence[str] | None = None,
    ignore: tuple[np.ndarray, np.ndarray] | None = None,
) -> go.Figure:
    """An image with its ground-truth boxes, coloured by class, labelled, hover: class, box, size.

    ``class_names`` label the boxes with names (an imported dataset's) instead of digits;
    ``ignore`` (boxes [M, 4], classes [M]) adds crowd and difficult regions, dotted grey."""
    traces, annotations = _ground_truth(boxes, labels, class_names, ignore)
    data = [image_trace(source), *traces]
    return go.Figure(data=data, layout=image_layout(width, height, annotations=annotations), _validate=False)


def problem_figure(
    source: str,
    *,
    width: int,
    height: int,
    shown_width: int,
    boxes: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    ignore: tuple[np.ndarray, np.ndarray],
    problem_box: Sequence[float] | None,
    title: str,
    kept: bool,
) -> go.Figure:
    """An imported image at its own size (``width`` x ``height`` px; ``source`` may be shrunk to
    ``shown_width`` px wide) with its kept boxes and the problem's box as written, in pixel
    ``xyxy``: dashed red when it was dropped, dashed amber when kept (clipped, crowd, ...). The
    axes widen to show a box that reaches past the image."""
    traces, annotations = _ground_truth(boxes, labels, class_names, ignore)
    scale = width / max(1, shown_width)
    image = {**image_trace(source), "x0": scale / 2, "y0": scale / 2, "dx": scale, "dy": scale}
    data = [image, *traces]
    x_range, y_range = [0.0, float(width)], [float(height), 0.0]
    if problem_box is not None:
        color = CLIPPED_COLOR if kept else DROPPED_COLOR
        x1, y1, x2, y2 = (float(v) for v in problem_box)
        hover = f"{title}<br>as written: [{x1:.6g}, {y1:.6g}, {x2:.6g}, {y2:.6g}]"
        lo_x, hi_x, lo_y, hi_y = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        outline_box = [lo_x, lo_y, max(hi_x, lo_x + 0.5), max(hi_y, lo_y + 0.5)]  # a degenerate box stays visible
        data.append(box_trace(outline_box, color=color, hover=hover, name=title, dash="dash", width=3, fill_alpha=0.15))
        annotations.append(_tag(outline_box, title, color))
        margin = 0.03 * max(width, height)
        x_range = [min(0.0, lo_x - margin), max(float(width), hi_x + margin)]
        y_range = [max(float(height), hi_y + margin), min(0.0, lo_y - margin)]
    layout = image_layout(width, height, annotations=annotations)
    layout["xaxis"]["range"], layout["yaxis"]["range"] = x_range, y_range
    return go.Figure(data=data, layout=layout, _validate=False)


def _bar(x: Sequence[Any], y: Sequence[Any], *, name: str, color: str, **extra: Any) -> dict[str, Any]:
    return {"type": "bar", "x": list(x), "y": list(y), "name": name, "marker": {"color": color}, **extra}


def _chart_layout(xtitle: str, ytitle: str, **extra: Any) -> dict[str, Any]:
    return {
        "xaxis": {"title": {"text": xtitle}},
        "yaxis": {"title": {"text": ytitle}, "rangemode": "tozero"},
        "margin": {"l": 50, "r": 10, "t": 30, "b": 45},
        "font": FONT,
        "bargap": 0.08,
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        **extra,
    }


def stats_figures(
    *,
    counts: np.ndarray,
    widths: np.ndarray,
    heights: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    bin_px: int = 4,
    class_names: Sequence[str] | None = None,
) -> dict[str, go.Figure]:
    """Objects per image, box width and height histograms, class counts (by name when
    ``class_names``, else by digit)."""
    per_image = np.bincount(counts, minlength=int(counts.max(initial=0)) + 1)
    top = int(max(widths.max(initial=1), heights.max(initial=1)))
    edges = np.arange(0, top + bin_px + 1, bin_px)
    w_hist, _ = np.histogram(widths, edges)
    h_hist, _ = np.histogram(heights, edges)
    centres = (edges[:-1] + bin_px / 2).tolist()
    classes = np.bincount(labels, minlength=num_classes)
    names = [str(c) for c in range(num_classes)] if class_names is None else list(class_names)
    class_title = "class (digit)" if class_names is None else "class"
    return {
        "objects": go.Figure(
            data=[_bar(range(per_image.size), per_image.tolist(), name="images", color="#2563eb")],
            layout=_chart_layout("objects per image", "images", xaxis={"title": {"text": "objects per image"}}),
            _validate=False,
        ),
        "sizes": go.Figure(
            data=[
                _bar(centres, w_hist.tolist(), name="width", color="#2563eb", opacity=0.7, width=bin_px),
                _bar(centres, h_hist.tolist(), name="height", color="#f59e0b", opacity=0.7, width=bin_px),
            ],
            layout=_chart_layout("box side (px)", "boxes", barmode="overlay"),
            _validate=False,
        ),
        "classes": go.Figure(
            data=[
                _bar(
                    names,
                    classes.tolist(),
                    name="boxes",
                    color="#2563eb",
                    marker={"color": [class_color(c) for c in range(num_classes)]},
                )
            ],
            layout=_chart_layout(
                class_title, "boxes", xaxis={"title": {"text": class_title}, "type": "category", "automargin": True}
            ),
            _validate=False,
        ),
    }
