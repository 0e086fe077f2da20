"""Figures of the detections viewer: an image with its boxes, PR curves, a confusion matrix.

The image figure carries every box, named so the browser can restyle it without a round trip
(``static/js/pages/detections.js``): shape ``gt:j`` is ground truth ``j`` and ``det:i``
detection ``i`` (ground truth first, so predictions are drawn over it); hover points of trace
``ground truth`` and ``detections`` sit at each box's centre and corners, ``POINTS_PER_BOX`` in
a row. ``layout.meta`` holds the colours, so page and server never disagree on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from app.figures.dataset import rect_shape

COLORS = {
    "tp": "#22c55e",  # true positive: green
    "fp": "#ef4444",  # false positive: red
    "missed": "#f97316",  # ground truth no kept detection matched: orange
    "gt": "#e5e7eb",  # matched ground truth: light grey, dashed
    "pred": "#38bdf8",  # a detection with no ground truth to judge it (uploads): sky blue
}
POINTS_PER_BOX = 5  # centre and four corners: hover works near any part of a small box

Box = Sequence[float]


def _points(box: Box) -> tuple[list[float], list[float]]:
    x1, y1, x2, y2 = box
    return [(x1 + x2) / 2, x1, x2, x1, x2], [(y1 + y2) / 2, y1, y1, y2, y2]


def _rect(
    box: Box, *, name: str, color: str, dash: str = "solid", width: float = 2, visible: bool = True
) -> dict[str, Any]:
    line = {"color": color, "width": width, "dash": dash}
    return rect_shape(box, line=line, name=name, xref="x", yref="y", visible=visible)


def _legend_trace(name: str, color: str, dash: str = "solid") -> go.Scatter:
    return go.Scatter(x=[None], y=[None], mode="lines", name=name, line={"color": color, "dash": dash, "width": 2})


def image_figure(
    *,
    source: str,
    width: int,
    height: int,
    gt: Sequence[dict[str, Any]] = (),
    detections: Sequence[dict[str, Any]] = (),
    score: float = 0.5,
    title: str | None = None,
    plot_height: int | None = None,
    showlegend: bool = False,
) -> dict[str, Any]:
    """An image (URL or data URL) with ground truth and detections as named rectangles.

    Args:
        source: the image's URL.
        width, height: the image size in pixels (the axes' ranges; boxes are in these pixels).
        gt: ground truths ``{"box": xyxy, "label", "matched": bool | None}``; None: not judged.
        detections: ``{"box": xyxy, "label", "score", "iou": best IoU or None, "status": "tp" | "fp" | None}``;
            ``status`` None means "no ground truth to judge against" (drawn in ``COLORS["pred"]``).
        score: only detections scoring at least this are visible.
        plot_height: pixels; None lets the page's container decide (the viewer's grid is square).
    """
    shapes: list[dict[str, Any]] = []
    gx: list[float] = []
    gy: list[float] = []
    gtext: list[str] = []
    for j, g in enumerate(gt):
        missed = g.get("matched") is False
        color = COLORS["missed"] if missed else COLORS["gt"]
        shapes.append(_rect(g["box"], name=f"gt:{j}", color=color, dash="dash", width=1.5))
        xs, ys = _points(g["box"])
        gx += xs
        gy += ys
        state = "missed" if missed else "matched" if g.get("matched") else "ground truth"
        gtext += [f"GT class {g['label']} ({state})"] * POINTS_PER_BOX
    dx: list[float | None] = []
    dy: list[float | None] = []
    dtext: list[str] = []
    for i, d in enumerate(detections):
        visible = d["score"] >= score
        color = COLORS[d["status"]] if d.get("status") in ("tp", "fp") else COLORS["pred"]
        shapes.append(_rect(d["box"], name=f"det:{i}", color=color, visible=visible))
        xs, ys = _points(d["box"])
        dx += xs if visible else [None] * POINTS_PER_BOX
        dy += ys if visible else [None] * POINTS_PER_BOX
        iou = "–" if d.get("iou") is None else f"{d['iou']:.2f}"
        status = f" · {d['status'].upper()}" if d.get("status") else ""
        dtext += [f"class {d['label']} · score {d['score']:.2f} · IoU {iou}{status}"] * POINTS_PER_BOX
    hover = {"size": 9, "opacity": 0}
    data: list[go.Scatter] = [
        go.Scatter(x=gx, y=gy, mode="markers", name="ground truth", text=gtext, hoverinfo="text", marker=hover),
        go.Scatter(x=dx, y=dy, mode="markers", name="detections", text=dtext, hoverinfo="text", marker=hover),
    ]
    for trace in data:
        trace.showlegend = False
    if showlegend:
        if any(d.get("status") for d in detections) or gt:
            data += [
                _legend_trace("true positive", COLORS["tp"]),
                _legend_trace("false positive", COLORS["fp"]),
                _legend_trace("missed ground truth", COLORS["missed"], "dash"),
                _legend_trace("matched ground truth", COLORS["gt"], "dash"),
            ]
        else:
            data.append(_legend_trace("detection", COLORS["pred"]))
    layout = go.Layout(
        images=[
            {
                "source": source,
                "xref": "x",
                "yref": "y",
                "x": 0,
                "y": 0,
                "sizex": width,
                "sizey": height,
                "sizing": "stretch",
                "layer": "below",
            }
        ],
        shapes=shapes,
        xaxis={"range": [0, width], "visible": False, "constrain": "domain"},
        yaxis={"range": [height, 0], "visible": False, "scaleanchor": "x", "constrain": "domain"},
        margin={"l": 0, "r": 0, "t": 24 if title else 0, "b": 0},
        height=plot_height,
        title={"text": title, "font": {"size": 12}, "x": 0.01, "y": 0.98} if title else None,
        plot_bgcolor="#111827",
        paper_bgcolor="rgba(0,0,0,0)",
        hovermode="closest",
        showlegend=showlegend,
        legend={"orientation": "h", "y": -0.02, "yanchor": "top"},
        meta={"colors": COLORS, "points_per_box": POINTS_PER_BOX},
        dragmode="zoom",
    )
    return go.Figure(data=data, layout=layout).to_plotly_json()


def pr_figure(recall: Sequence[float], curves: Sequence[Sequence[float]], ap50: Sequence[float]) -> dict[str, Any]:
    """Precision-recall curves at IoU 0.5, one trace per class (COCO's 101 interpolated points).

    A class without ground truth in the evaluated images has no curve; its trace is listed in
    the legend, hidden, so the legend keeps all classes.
    """
    fig = go.Figure()
    for k, (curve, ap) in enumerate(zip(curves, ap50, strict=True)):
        defined = ap is not None and not math.isnan(ap)
        ys = [None if p is None or math.isnan(p) else p for p in curve]
        name = f"{k} (AP {ap:.2f})" if defined else f"{k} (no GT)"
        fig.add_trace(
            go.Scatter(
                x=list(recall),
                y=ys,
                mode="lines",
                name=name,
                visible=True if defined else "legendonly",
                hovertemplate=f"class {k}<br>recall %{{x:.2f}}<br>precision %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(
        xaxis={"title": {"text": "recall"}, "range": [0, 1.01]},
        yaxis={"title": {"text": "precision"}, "range": [0, 1.05]},
        margin={"l": 55, "r": 10, "t": 10, "b": 45},
        height=340,
        legend={"title": {"text": "class"}},
        template="plotly_white",
    )
    return fig.to_plotly_json()


def confusion_figure(matrix: Sequence[Sequence[int]], *, score: float, iou_threshold: float) -> dict[str, Any]:
    """A heatmap of a detection confusion matrix with its counts written in the cells.

    ``matrix`` is [C + 1, C + 1] (:func:`ssd.evaluate.confusion_matrix`): rows are the true class
    and ``background`` (false positives), columns the predicted class and ``missed``.
    """
    n = len(matrix) - 1
    rows = [str(k) for k in range(n)] + ["background"]
    cols = [str(k) for k in range(n)] + ["missed"]
    z = [[int(v) for v in row] for row in matrix]
    peak = max((v for row in z for v in row), default=0)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=cols,
            y=rows,
            text=[[str(v) if v else "" for v in row] for row in z],
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=max(peak, 1),
            hovertemplate="true %{y} · predicted %{x}<br>%{z} boxes<extra></extra>",
            colorbar={"title": {"text": "boxes"}},
        )
    )
    fig.update_layout(
        xaxis={"title": {"text": f"predicted class (score ≥ {score:g}, IoU ≥ {iou_threshold:g})"}, "type": "category"},
        yaxis={"title": {"text": "true class"}, "autorange": "reversed", "type": "category"},
        margin={"l": 90, "r": 10, "t": 10, "b": 55},
        height=380,
        template="plotly_white",
    )
    return fig.to_plotly_json()
