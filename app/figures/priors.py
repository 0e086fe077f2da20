"""Figures of the prior explorer: priors matched to each ground truth, and the coverage report.

The explorer figure draws everything the server decides (ground truths, their positive priors,
the unmatched ones) as traces, and the priors of the selected cell as ``layout.shapes``; the
page replaces those shapes on pointer moves without a round trip (``static/js/pages/priors.js``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from app.figures.dataset import FONT, box_trace, image_layout, image_trace, outline, rect_shape
from ssd.coverage import CoverageReport

# One colour per ground truth of an image; red is kept for "no prior".
GT_COLORS = ("#3b82f6", "#f59e0b", "#10b981", "#a855f7", "#06b6d4", "#eab308", "#ec4899", "#84cc16", "#f97316")
UNMATCHED = "#ef4444"
SELECTION = "#ffffff"
LEGEND = {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}
MARGIN = {"l": 55, "r": 10, "t": 50, "b": 45}


def gt_color(k: int) -> str:
    """The colour of ground truth ``k`` of an image."""
    return GT_COLORS[k % len(GT_COLORS)]


def selection_shapes(boxes: Sequence[Sequence[float]], cell_box: Sequence[float] | None) -> list[dict[str, Any]]:
    """Shapes of the selected cell (thin, filled) and its priors (white, dashed)."""
    shapes: list[dict[str, Any]] = []
    if cell_box is not None:
        shapes.append(rect_shape(cell_box, line={"width": 0}, fillcolor="rgba(255, 255, 255, 0.35)"))
    shapes += [rect_shape(box, line={"color": SELECTION, "width": 1.5, "dash": "dash"}) for box in boxes]
    return shapes


def explore_figure(
    *,
    source: str,
    image_size: int,
    ground_truths: list[dict[str, Any]],
    iou_threshold: float,
    force_best: bool,
    shapes: list[dict[str, Any]],
) -> go.Figure:
    """The image, each ground truth with its positive priors (same colour, IoU on hover at the
    prior's centre), unmatched ground truths dashed red with their best IoU written beside.

    ``ground_truths`` items: ``box``, ``label``, ``best_iou``, ``matched`` (at the threshold),
    ``priors`` (positives under the config's rule: ``box``, ``iou``, ``name``, ``forced``) and
    ``best_prior`` (``box``, ``iou``, ``name``).
    """
    data: list[dict[str, Any]] = [image_trace(source, hover=True)]
    annotations: list[dict[str, Any]] = []
    thr = f"{iou_threshold:g}"
    for k, gt in enumerate(ground_truths):
        color = gt_color(k) if gt["matched"] else UNMATCHED
        priors = gt["priors"]
        if priors:
            xs, ys = outline([p["box"] for p in priors])
            data.append(
                {
                    "type": "scatter",
                    "x": xs,
                    "y": ys,
                    "mode": "lines",
                    "line": {"color": color, "width": 1, "dash": "dot" if not gt["matched"] else "solid"},
                    "hoverinfo": "skip",
                    "showlegend": False,
                    "name": f"priors of GT {k}",
                }
            )
            data.append(
                {
                    "type": "scatter",
                    "x": [(p["box"][0] + p["box"][2]) / 2 for p in priors],
                    "y": [(p["box"][1] + p["box"][3]) / 2 for p in priors],
                    "mode": "markers",
                    "marker": {"color": color, "size": 7, "line": {"color": "#111827", "width": 1}},
                    "text": [
                        f"GT {k} (digit {gt['label']}) · IoU {p['iou']:.2f}{' (forced)' if p['forced'] else ''}"
                        f"<br>{p['name']}"
                        for p in priors
                    ],
                    "hoverinfo": "text",
                    "showlegend": False,
                    "name": f"prior centres of GT {k}",
                }
            )
        best = gt["best_prior"]
        if gt["matched"]:
            status = f"{len(priors)} positive prior{'s' if len(priors) != 1 else ''}"
        else:
            status = f"no prior ≥ {thr} (best IoU {gt['best_iou']:.2f})"
            if best is not None and not force_best:
                xs, ys = outline([best["box"]])
                data.append(
                    {
                        "type": "scatter",
                        "x": xs,
                        "y": ys,
                        "mode": "lines",
                        "line": {"color": UNMATCHED, "width": 1, "dash": "dot"},
                        "hoverinfo": "skip",
                        "showlegend": False,
                        "name": f"best prior of GT {k}",
                    }
                )
            annotations.append(
                {
                    "x": gt["box"][0],
                    "y": gt["box"][3],
                    "text": status + (" · forced" if force_best else ""),
                    "showarrow": False,
                    "xanchor": "left",
                    "yanchor": "top",
                    "font": {"color": "#ffffff", "size": 10},
                    "bgcolor": "rgba(239, 68, 68, 0.85)",
                }
            )
        x1, y1, x2, y2 = gt["box"]
        hover = f"GT {k}: digit {gt['label']} · {x2 - x1:g}x{y2 - y1:g} px<br>{status}" + (
            f"<br>best prior: {best['name']}, IoU {best['iou']:.2f}" if best is not None else ""
        )
        data.append(
            box_trace(
                gt["box"],
                color=color,
                hover=hover,
                name=f"GT {k}",
                dash="solid" if gt["matched"] else "dash",
                width=2.5,
                fill_alpha=0.05,
            )
        )
    layout = image_layout(image_size, image_size, annotations=annotations, shapes=shapes)
    return go.Figure(data=data, layout=layout, _validate=False)


def _histogram(values: np.ndarray, edges: np.ndarray) -> list[int]:
    return np.histogram(values, edges)[0].tolist()


def coverage_figures(report: CoverageReport) -> dict[str, go.Figure]:
    """Share covered per size bucket, best-IoU histograms per bucket, positives per image."""
    thr = report.iou_threshold
    labels = [b.label for b in report.buckets]
    share = [100 * b.matched / b.count if b.count else 0 for b in report.buckets]
    share_forced = [100 * b.matched_forced / b.count if b.count else 0 for b in report.buckets]
    buckets = go.Figure(
        data=[
            {
                "type": "bar",
                "name": f"a prior with IoU ≥ {thr:g}",
                "x": labels,
                "y": share,
                "text": [f"{b.matched}/{b.count}" for b in report.buckets],
                "textposition": "none",
                "marker": {"color": "#2563eb"},
                "hovertemplate": "%{x}: %{y:.1f}% (%{text})<extra>at threshold</extra>",
            },
            {
                "type": "bar",
                "name": "with forced matching",
                "x": labels,
                "y": share_forced,
                "text": [f"{b.matched_forced}/{b.count}" for b in report.buckets],
                "textposition": "none",
                "marker": {"color": "#9ca3af"},
                "hovertemplate": "%{x}: %{y:.1f}% (%{text})<extra>forced</extra>",
            },
        ],
        layout={
            "barmode": "group",
            "xaxis": {"title": {"text": "ground-truth size, sqrt(area)"}, "type": "category"},
            "yaxis": {"title": {"text": "% of ground truths matched"}, "range": [0, 105]},
            "legend": LEGEND,
            "margin": MARGIN,
            "font": FONT,
        },
        _validate=False,
    )
    edges = np.linspace(0.0, 1.0, 21)
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    palette = ("#1d4ed8", "#0891b2", "#16a34a", "#ca8a04", "#c2410c")
    best_iou = go.Figure(
        data=[
            {
                "type": "bar",
                "name": b.label,
                "x": centres,
                "y": _histogram(b.best_iou, edges),
                "width": 0.05,
                "marker": {"color": palette[i % len(palette)]},
                "hovertemplate": "best IoU %{x:.3f} ± 0.025: %{y}<extra>" + b.label + "</extra>",
            }
            for i, b in enumerate(report.buckets)
        ],
        layout={
            "barmode": "stack",
            "xaxis": {"title": {"text": "each ground truth's best IoU over all priors"}, "range": [0, 1]},
            "yaxis": {"title": {"text": "ground truths"}},
            "shapes": [
                {
                    "type": "line",
                    "x0": thr,
                    "x1": thr,
                    "y0": 0,
                    "y1": 1,
                    "yref": "paper",
                    "line": {"color": UNMATCHED, "dash": "dash", "width": 2},
                }
            ],
            "annotations": [
                {
                    "x": thr,
                    "y": 1,
                    "yref": "paper",
                    "text": f"threshold {thr:g}",
                    "showarrow": False,
                    "xanchor": "right",
                    "yanchor": "top",
                    "font": {"color": UNMATCHED},
                }
            ],
            "legend": LEGEND,
            "margin": MARGIN,
            "font": FONT,
        },
        _validate=False,
    )
    top = int(max(report.positives_forced.max(initial=0), report.positives.max(initial=0)))
    pos_edges = np.arange(0, top + 2) - 0.5
    series = (("at threshold", report.positives, "#2563eb"), ("forced", report.positives_forced, "#9ca3af"))
    positives = go.Figure(
        data=[
            {
                "type": "bar",
                "name": f"{name} (mean {values.mean() if values.size else 0:.1f})",
                "x": list(range(top + 1)),
                "y": _histogram(values, pos_edges),
                "opacity": 0.7,
                "marker": {"color": color},
                "hovertemplate": "%{x} positives: %{y} images<extra>" + name + "</extra>",
            }
            for name, values, color in series
        ],
        layout={
            "barmode": "overlay",
            "bargap": 0.05,
            "xaxis": {"title": {"text": "positive priors per image (what the loss sees)"}},
            "yaxis": {"title": {"text": "images"}},
            "legend": LEGEND,
            "margin": MARGIN,
            "font": FONT,
        },
        _validate=False,
    )
    return {"buckets": buckets, "best_iou": best_iou, "positives": positives}
