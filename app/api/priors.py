"""The prior explorer: priors against one image's ground truth, and the coverage report.

``POST /api/priors/explore`` answers per settings change and pointer pin, so it stays in NumPy
(:mod:`ssd.coverage`) and builds its figure without plotly's validation: p50 well under 100 ms
for a 128 px image with the notebook's priors (``python -m app.bench_priors``).
"""

from __future__ import annotations

import functools
import time
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api.jobs import config_from_data
from app.api.pages import _page as page
from app.deps import SettingsDep, StoreDep
from app.figures.priors import coverage_figures, explore_figure, selection_shapes
from app.images import data_url
from app.samples import JobQuery, check_index, config_of, image_url, sample
from app.schemas import ConfigIn
from app.settings import Settings
from app.store import JobStore
from ssd.config import Config, PriorConfig
from ssd.coverage import BUCKET_LABELS, assign, coverage, dataset_boxes, describe, iou, quantiles, size_bucket
from ssd.priors import PriorLayout, make_priors

router = APIRouter(prefix="/api/priors", tags=["priors"])
page_router = APIRouter(tags=["pages"], include_in_schema=False)

# The explorer computes IoU of every ground truth of up to 2000 images against every prior:
# a tighter cap than training's keeps a request under a second or two.
MAX_EXPLORE_PRIORS = 100_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: ConfigIn | None = Field(
        None,
        description="A draft config (every key optional, ``preset`` too); applied over the job's config if ``job``.",
    )
    job: str | None = Field(None, description="Start from this job's config.")
    split: Literal["train", "val"] = Field("val", description="Which images.")


class ExploreIn(_Body):
    """One image under a (draft) config, and optionally the priors of one cell."""

    index: int = Field(0, ge=0, le=10**9, description="Image index in the split.")
    layer: int = Field(0, ge=0, description="Source layer (0 = the first, finest) of the selected cell.")
    shape: int | None = Field(None, ge=0, description="Only this prior shape of the cell; all when null.")
    cell: tuple[int, int] | None = Field(None, description="Selected cell [row, col] of that layer; none when null.")


class CoverageIn(_Body):
    """A coverage report over the first ``n`` images of a split."""

    n: int = Field(300, ge=1, le=2000, description="Images counted, from index 0.")


def resolve(body: _Body, store: JobStore, settings: Settings) -> Config:
    """The config of a body: the job's (if any) with the draft on top; bad values are 422s."""
    draft = body.config.model_dump(exclude_unset=True) if body.config is not None else {}
    limited = settings.model_copy(update={"max_priors": min(settings.max_priors, MAX_EXPLORE_PRIORS)})
    if body.job is None:
        return config_from_data(draft, limited, loc=("body", "config"))
    base = config_of(body.job, store, settings).to_dict()
    draft.pop("preset", None)  # the job's config is the base
    merged = _merge(base, draft)
    return config_from_data(merged, limited, loc=("body", "config"))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@functools.lru_cache(maxsize=32)
def priors_of(priors: PriorConfig, image_size: int) -> PriorLayout:
    """The priors of a config (cached: the explorer asks again on every pointer pin)."""
    return make_priors(priors, image_size)


def _bad(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def _prior_name(layout: PriorLayout, config: Config, p: int) -> str:
    layer, shape = int(layout.layer[p]), int(layout.shape[p])
    w, h = layout.shapes[layer][shape]
    source = config.model.source_layers[layer]
    where = f"cell ({layout.row[p]}, {layout.col[p]}) shape {shape}"
    return f"{source} (stride {config.priors.strides[layer]}) {where}: {w:g}x{h:g} px"


def _prior(layout: PriorLayout, config: Config, p: int, value: float, forced: bool = False) -> dict[str, Any]:
    return {
        "index": p,
        "layer": int(layout.layer[p]),
        "row": int(layout.row[p]),
        "col": int(layout.col[p]),
        "shape": int(layout.shape[p]),
        "box": [round(float(v), 2) for v in layout.boxes[p]],
        "iou": round(float(value), 4),
        "forced": forced,
        "name": _prior_name(layout, config, p),
    }


def layers_of(config: Config, layout: PriorLayout) -> list[dict[str, Any]]:
    """Per source layer what the page needs to draw any cell's priors itself."""
    out, first = [], 0
    for i, (name, stride) in enumerate(zip(config.model.source_layers, config.priors.strides, strict=True)):
        rows, cols = layout.grid[i]
        shapes = layout.shapes[i]
        out.append(
            {
                "index": i,
                "source_layer": name,
                "stride": stride,
                "offset": stride // 2,  # centre of cell (r, c): (offset + c * stride, offset + r * stride)
                "grid": [rows, cols],
                "shapes": shapes.tolist(),
                "first_prior": first,
            }
        )
        first += rows * cols * len(shapes)
    return out


def explore(request: Request, body: ExploreIn, config: Config) -> dict[str, Any]:
    """The explorer's answer for a resolved config (see :func:`explore_priors`)."""
    started = time.perf_counter()
    check_index(config, body.split, body.index)
    size = config.data.image_size
    layout = priors_of(config.priors, size)
    layers = layers_of(config, layout)
    if body.layer >= len(layers):
        raise _bad("layer", f"the config has {len(layers)} source layers (0..{len(layers) - 1}), not {body.layer}")
    chosen = layers[body.layer]
    if body.shape is not None and body.shape >= len(chosen["shapes"]):
        raise _bad("shape", f"layer {body.layer} has {len(chosen['shapes'])} prior shapes, not {body.shape}")
    if body.cell is not None and not all(0 <= v < n for v, n in zip(body.cell, chosen["grid"], strict=True)):
        raise _bad(
            "cell", f"layer {body.layer} has a {chosen['grid'][0]}x{chosen['grid'][1]} grid, not {list(body.cell)}"
        )

    s = sample(config, body.split, body.index)
    thr, force = config.matching.iou_threshold, config.matching.force_best
    a = assign(s.boxes, np.zeros(len(s.boxes), np.int32), layout.boxes, iou_threshold=thr)
    rule = a.forced if force else a.at_threshold
    at_threshold = a.at_threshold.per_gt(len(s.boxes))
    forced_count = a.forced.per_gt(len(s.boxes))
    threshold_set = set(zip(a.at_threshold.gt.tolist(), a.at_threshold.prior.tolist(), strict=True))
    buckets = size_bucket(s.boxes)
    ground_truths = []
    for k, (box, label) in enumerate(zip(s.boxes.tolist(), s.labels.tolist(), strict=True)):
        mine = np.flatnonzero(rule.gt == k)
        priors = [
            _prior(layout, config, int(rule.prior[i]), float(rule.iou[i]), (k, int(rule.prior[i])) not in threshold_set)
            for i in mine[np.argsort(-rule.iou[mine], kind="stable")]
        ]
        best = _prior(layout, config, int(a.best_prior[k]), float(a.best_iou[k])) if a.best_iou[k] > 0 else None
        ground_truths.append(
            {
                "index": k,
                "label": label,
                "box": [round(v, 2) for v in box],
                "size_bucket": BUCKET_LABELS[int(buckets[k])],
                "best_iou": round(float(a.best_iou[k]), 4),
                "best_prior": best,
                "matched": bool(at_threshold[k] > 0),
                "matched_forced": bool(forced_count[k] > 0),
                "priors": priors,
            }
        )
    selection = None
    shapes: list[dict[str, Any]] = []
    if body.cell is not None:
        row, col = body.cell
        stride = chosen["stride"]
        first = chosen["first_prior"] + (row * chosen["grid"][1] + col) * len(chosen["shapes"])
        picks = [body.shape] if body.shape is not None else list(range(len(chosen["shapes"])))
        indices = [first + k for k in picks]
        overlaps = iou(layout.boxes[indices], s.boxes)  # [shapes, K]: each prior's best ground truth
        cell_priors = [_prior(layout, config, p, float(overlaps[i].max(initial=0.0))) for i, p in enumerate(indices)]
        selection = {"layer": body.layer, "shape": body.shape, "cell": [row, col], "priors": cell_priors}
        cell_box = [col * stride, row * stride, (col + 1) * stride, (row + 1) * stride]
        shapes = selection_shapes([p["box"] for p in cell_priors], cell_box)
    root = request.scope.get("root_path", "").rstrip("/")
    figure = explore_figure(
        source=data_url(s.image),
        image_size=size,
        ground_truths=ground_truths,
        iou_threshold=thr,
        force_best=force,
        shapes=shapes,
    )
    unmatched = [gt["index"] for gt in ground_truths if not gt["matched"]]
    return {
        "split": body.split,
        "index": body.index,
        "image_size": size,
        "image_url": image_url(body.split, body.index, body.job, root),
        "iou_threshold": thr,
        "force_best": force,
        "num_priors": len(layout),
        "layers": layers,
        "ground_truths": ground_truths,
        "unmatched": unmatched,
        "positives": int(a.at_threshold.gt.size),
        "positives_forced": int(a.forced.gt.size),
        "selection": selection,
        "figure": figure.to_plotly_json(),
        "elapsed_ms": round(1000 * (time.perf_counter() - started), 2),
    }


@router.post("/explore", responses={404: {"description": "No such job or image."}})
def explore_priors(request: Request, body: ExploreIn, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Priors of a (draft) config against one image: matched priors per ground truth, unmatched
    ground truths, the priors of a cell, every layer's prior shapes, and the figure."""
    return explore(request, body, resolve(body, store, settings))


def coverage_report(config: Config, split: Literal["train", "val"], n: int) -> dict[str, Any]:
    """The coverage report of a config over images ``0..n-1`` of a split: numbers, words, figures."""
    started = time.perf_counter()
    data = dataset_boxes(config, split, n)
    layout = priors_of(config.priors, config.data.image_size)
    report = coverage(
        data,
        layout.boxes,
        np.concatenate(layout.shapes),
        iou_threshold=config.matching.iou_threshold,
        force_best=config.matching.force_best,
    )
    words = describe(report)
    figures = {name: fig.to_plotly_json() for name, fig in coverage_figures(report).items()}

    def share(part: int, whole: int) -> float:
        return round(part / whole, 4) if whole else 0.0

    def positives(values: np.ndarray) -> dict[str, Any]:
        return {
            "mean": round(float(values.mean()), 3) if values.size else 0.0,
            "median": float(np.median(values)) if values.size else 0.0,
            "min": int(values.min(initial=0)),
            "max": int(values.max(initial=0)),
            "images_without": int((values == 0).sum()),
            "counts": np.bincount(values).tolist() if values.size else [],
        }

    return {
        "split": split,
        "num_images": report.num_images,
        "num_gt": report.num_gt,
        "num_priors": len(layout),
        "iou_threshold": report.iou_threshold,
        "force_best": report.force_best,
        "matched": report.matched,
        "matched_forced": report.matched_forced,
        "unmatched": report.unmatched,
        "share_matched": share(report.matched, report.num_gt),
        "share_matched_forced": share(report.matched_forced, report.num_gt),
        "best_iou_quantiles": dict(zip(("p05", "p50", "p95"), quantiles(report.best_iou), strict=True)),
        "buckets": [
            {
                "label": b.label,
                "count": b.count,
                "matched": b.matched,
                "matched_forced": b.matched_forced,
                "unmatched": b.unmatched,
                "share_matched": share(b.matched, b.count),
                "best_iou_quantiles": dict(zip(("p05", "p50", "p95"), quantiles(b.best_iou), strict=True)),
            }
            for b in report.buckets
        ],
        "positives_per_image": positives(report.positives),
        "positives_per_image_forced": positives(report.positives_forced),
        "words": words,
        "figures": figures,
        "elapsed_ms": round(1000 * (time.perf_counter() - started), 2),
    }


@router.post("/coverage", responses={404: {"description": "No such job."}})
def priors_coverage(body: CoverageIn, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Coverage of a (draft) config's priors over ``n`` images: share of ground truths with a
    positive prior (at the threshold and forced), best-IoU distribution, both per size bucket,
    positives per image, and the gaps in words."""
    return coverage_report(resolve(body, store, settings), body.split, body.n)


@page_router.get("/priors", response_class=HTMLResponse)
def priors_page(request: Request, store: StoreDep, job: JobQuery = None) -> HTMLResponse:
    """The prior explorer, with a job's config when ``?job=ID``."""
    if job is not None and store.get_job(job) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job}")
    return page(request, "priors.html", active="priors", title="Prior explorer", job_id=job or "")
