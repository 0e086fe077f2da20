"""Figures of a checkpoint's analysis (:mod:`ssd.analysis.report`'s document): TIDE's dAP bars,
AP by object size, and recall against best-prior IoU with the misses no prior can match.

Each builder takes the document's parts (AP points, 0-100) and returns a Plotly figure as JSON,
drawn by ``static/js/pages/detections.js``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

# TIDE's colours by error type (its paper's order), so a bar reads the same on every page.
ERROR_COLORS = {
    "cls": "#ef4444",
    "loc": "#f59e0b",
    "both": "#a855f7",
    "dupe": "#06b6d4",
    "bkg": "#64748b",
    "missed": "#f97316",
    "false_pos": "#94a3b8",
    "false_neg": "#94a3b8",
}
ERROR_NAMES = {
    "cls": "Cls: class wrong",
    "loc": "Loc: box off",
    "both": "Both",
    "dupe": "Dupe: duplicate",
    "bkg": "Bkg: background",
    "missed": "Missed",
    "false_pos": "all false positives",
    "false_neg": "all false negatives",
}
# No height: the figure fills its div (`.chart`), as the evaluation's figures do.
LAYOUT: dict[str, Any] = {"template": "plotly_white", "margin": {"l": 150, "r": 20, "t": 10, "b": 45}}


def tide_figure(tide: Mapping[str, float | None]) -> dict[str, Any]:
    """Horizontal bars: the AP points fixing each error type alone would add (TIDE's dAP)."""
    keys = [k for k in ERROR_NAMES if k in tide]
    values = [tide[k] or 0.0 for k in keys]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=[ERROR_NAMES[k] for k in keys],
            orientation="h",
            marker={"color": [ERROR_COLORS[k] for k in keys]},
            text=[f"{v:.2f}" for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}<br>+%{x:.2f} AP@.5 if fixed<extra></extra>",
        )
    )
    fig.update_layout(
        **LAYOUT,
        xaxis={"title": {"text": "dAP: AP@.5 points gained by fixing only this", "standoff": 4}, "rangemode": "tozero"},
        yaxis={"autorange": "reversed"},
    )
    return fig.to_plotly_json()


def size_figure(sizes: Sequence[Mapping[str, Any]], covered: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Grouped bars: AP@.5 and AP@[.5:.95] of each size range (COCO's, then the coverage report's
    buckets), objects per range in the label; ``covered`` (bucket label -> share of its objects
    owning a prior) draws the buckets' prior coverage as a line, so AP and coverage read together."""
    labels = [f"{s['label']} ({s['num_gt']})" for s in sizes]
    fig = go.Figure()
    for key, name, color in (("ap50", "AP@.5", "#2563eb"), ("ap", "AP@[.5:.95]", "#93c5fd")):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[s[key] for s in sizes],
                name=name,
                marker={"color": color},
                hovertemplate=f"%{{x}} objects<br>{name} %{{y:.2f}}<extra></extra>",
            )
        )
    if covered:
        shown = [(label, s) for label, s in zip(labels, sizes, strict=True) if s["label"] in covered]
        fig.add_trace(
            go.Scatter(
                x=[label for label, _ in shown],
                y=[100 * covered[s["label"]] for _, s in shown],
                mode="lines+markers",
                name="objects owning a prior (%)",
                line={"color": "#7c3aed"},
                hovertemplate="%{x}<br>%{y:.1f}% own a prior<extra></extra>",
            )
        )
    fig.update_layout(
        **{**LAYOUT, "margin": {"l": 55, "r": 10, "t": 10, "b": 45}},
        barmode="group",
        yaxis={"title": {"text": "AP points, %"}, "range": [0, 105]},
        legend={"orientation": "h", "y": 1.1},
    )
    return fig.to_plotly_json()


def bucket_coverage(ground_truths: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per size bucket, the share of its objects owning a positive prior under the run's rule."""
    totals: dict[str, list[int]] = {}
    for g in ground_truths:
        counts = totals.setdefault(g["size_bucket"], [0, 0])
        counts[0] += 1
        counts[1] += g["positives"] > 0
    return {label: owned / total for label, (total, owned) in totals.items()}


def prior_recall_figure(bins: Sequence[Mapping[str, Any]], iou_threshold: float | None = None) -> dict[str, Any]:
    """Recall against best-prior IoU (line), objects per bin split found / missed / no prior (bars)."""
    used = [b for b in bins if b["ground_truths"]]
    centres = [round((b["low"] + b["high"]) / 2, 4) for b in used]
    found = [b["found"] for b in used]
    no_prior = [b["no_prior"] for b in used]
    missed = [b["ground_truths"] - b["found"] - b["no_prior"] for b in used]
    fig = go.Figure()
    for values, name, color in (
        (found, "found", "#22c55e"),
        (missed, "not found", "#f97316"),
        (no_prior, "no prior can match", "#7c3aed"),
    ):
        fig.add_trace(
            go.Bar(
                x=centres,
                y=values,
                width=0.09,
                name=name,
                marker={"color": color},
                hovertemplate=f"best prior IoU %{{x:.2f}}<br>{name}: %{{y}}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=centres,
            y=[b["recall"] for b in used],
            yaxis="y2",
            mode="lines+markers",
            name="recall",
            line={"color": "#111827"},
            hovertemplate="best prior IoU %{x:.2f}<br>recall %{y:.2f}<extra></extra>",
        )
    )
    shapes = []
    if iou_threshold is not None:
        shapes.append(
            {"type": "line", "x0": iou_threshold, "x1": iou_threshold, "yref": "paper", "y0": 0, "y1": 1,
             "line": {"dash": "dot", "color": "#6b7280"}}
        )  # fmt: skip
    fig.update_layout(
        **{**LAYOUT, "margin": {"l": 55, "r": 55, "t": 10, "b": 45}},
        barmode="stack",
        shapes=shapes,
        xaxis={"title": {"text": "best IoU of the object with any prior"}, "range": [0, 1]},
        yaxis={"title": {"text": "objects"}},
        yaxis2={
            "title": {"text": "recall"},
            "overlaying": "y",
            "side": "right",
            "range": [0, 1.05],
            "tickvals": [0, 0.25, 0.5, 0.75, 1],
            "showgrid": False,
        },
        legend={"orientation": "h", "y": 1.08},
    )
    return fig.to_plotly_json()


def analysis_figures(document: Mapping[str, Any], iou_threshold: float | None = None) -> dict[str, Any]:
    """The three figures of an analysis document, by name."""
    return {
        "tide": tide_figure(document["tide"]),
        "sizes": size_figure(
            [*(document["ap_by_size"][k] for k in ("small", "medium", "large")), *document["ap_by_bucket"]],
            bucket_coverage(document["ground_truths"]),
        ),
        "prior_recall": prior_recall_figure(document["recall_by_prior_iou"], iou_threshold),
    }
