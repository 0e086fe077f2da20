"""Figures of the dataset browser: an image with its ground truth, and the split's statistics.

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


def gt_hover(label: int, box: Sequence[float]) -> str:
    """``digit 7 · [12, 30, 40, 66] · 28x36 px``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return f"digit {label}<br>box [{x1:g}, {y1:g}, {x2:g}, {y2:g}]<br>{x2 - x1:g}x{y2 - y1:g} px"


def sample_figure(source: str, boxes: np.ndarray, labels: np.ndarray, *, width: int, height: int) -> go.Figure:
    """An image with its ground-truth boxes, coloured by class, labelled, hover: class, box, size."""
    data = [image_trace(source)]
    annotations = []
    for box, label in zip(boxes.tolist(), labels.tolist(), strict=True):
        color = class_color(label)
        data.append(box_trace(box, color=color, hover=gt_hover(label, box), name=f"digit {label}"))
        annotations.append(
            {
                "x": box[0],
                "y": box[1],
                "text": str(label),
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"color": "#ffffff", "size": 11},
                "bgcolor": color,
                "borderpad": 1,
            }
        )
    return go.Figure(data=data, layout=image_layout(width, height, annotations=annotations), _validate=False)


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
) -> dict[str, go.Figure]:
    """Objects per image, box width and height histograms, class counts."""
    per_image = np.bincount(counts, minlength=int(counts.max(initial=0)) + 1)
    top = int(max(widths.max(initial=1), heights.max(initial=1)))
    edges = np.arange(0, top + bin_px + 1, bin_px)
    w_hist, _ = np.histogram(widths, edges)
    h_hist, _ = np.histogram(heights, edges)
    centres = (edges[:-1] + bin_px / 2).tolist()
    classes = np.bincount(labels, minlength=num_classes)
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
                    [str(c) for c in range(num_classes)],
                    classes.tolist(),
                    name="boxes",
                    color="#2563eb",
                    marker={"color": [class_color(c) for c in range(num_classes)]},
                )
            ],
            layout=_chart_layout(
                "class (digit)", "boxes", xaxis={"title": {"text": "class (digit)"}, "type": "category"}
            ),
            _validate=False,
        ),
    }
