"""The prior explorer: priors of a (draft) config against one image's ground truth, coverage, and
priors fitted to the draft's dataset (:mod:`ssd.suggest`).

The explorer answers per settings change and pointer pin, so it stays in NumPy
(:mod:`ssd.coverage`, :mod:`ssd.geometry`) and builds its figure without plotly's validation:
p50 well under 100 ms for a 128 px image with the notebook's priors
(``python -m benchmarks.priors``). Boxes are pixel ``xyxy``; prior indices follow the library's
one prior order (per source layer, row-major over cells, then the shapes of a cell).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from app.domain import Invalid
from app.figures.priors import coverage_figures, explore_figure, selection_shapes
from app.services import configs
from app.services.dataset_browser import DatasetBrowser, Split, image_url
from app.services.images import data_url
from app.settings import Settings
from ssd.config import Config, PriorConfig, merge
from ssd.coverage import BUCKET_LABELS, assign, coverage, describe, quantiles, size_bucket
from ssd.geometry import iou
from ssd.priors import PriorLayout, cell_pitch, feature_size, make_priors
from ssd.suggest import MAX_PER_CELL, fit

# The explorer computes IoU of every ground truth of up to 2000 images against every prior:
# a tighter cap than training's keeps a request under a second or two.
MAX_EXPLORE_PRIORS = 100_000
QUANTILES = ("p05", "p50", "p95")


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
        step, offset = cell_pitch(config.data.image_size, stride)
        rows, cols = layout.grid[i]
        shapes = layout.shapes[i]
        out.append(
            {
                "index": i,
                "source_layer": name,
                "stride": stride,
                # centre of cell (r, c): (offset + c * step, offset + r * step); step is the stride
                # unless the stride does not divide the image (ssd.priors.cell_pitch)
                "step": step,
                "offset": offset,
                "grid": [rows, cols],
                "shapes": shapes.tolist(),
                "first_prior": first,
            }
        )
        first += rows * cols * len(shapes)
    return out


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _positives(values: np.ndarray) -> dict[str, Any]:
    return {
        "mean": round(float(values.mean()), 3) if values.size else 0.0,
        "median": float(np.median(values)) if values.size else 0.0,
        "min": int(values.min(initial=0)),
        "max": int(values.max(initial=0)),
        "images_without": int((values == 0).sum()),
        "counts": np.bincount(values).tolist() if values.size else [],
    }


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return dict(zip(QUANTILES, quantiles(values), strict=True))


class PriorService:
    """Priors against images and their coverage report, for drafts over the default or a job's config."""

    def __init__(self, browser: DatasetBrowser, settings: Settings, *, cache_size: int = 32) -> None:
        self.browser = browser
        self.settings = settings.model_copy(update={"max_priors": min(settings.max_priors, MAX_EXPLORE_PRIORS)})
        # The explorer asks again on every pointer pin: keep the last layouts.
        self.layout: Callable[[PriorConfig, int], PriorLayout] = functools.lru_cache(maxsize=cache_size)(make_priors)

    def resolve(self, draft: Mapping[str, Any] | None, job: str | None) -> Config:
        """The job's config (if any) with the draft on top; a bad value is :class:`Invalid` at ``body.config``."""
        draft = dict(draft or {})
        loc = ("body", "config")
        if job is None:
            return configs.resolve(draft, self.settings, loc=loc)
        base = self.browser.config_of(job).to_dict()
        draft.pop("preset", None)  # the job's config is the base
        return configs.resolve(merge(base, draft), self.settings, loc=loc)

    def explore(
        self,
        config: Config,
        *,
        split: Split,
        index: int,
        layer: int = 0,
        shape: int | None = None,
        cell: tuple[int, int] | None = None,
        job: str | None = None,
        root: str = "",
    ) -> dict[str, Any]:
        """Matched priors per ground truth, unmatched ground truths, a cell's priors, every layer and the figure."""
        started = time.perf_counter()
        self.browser.check_index(config, split, index)  # the generator's or an imported dataset's split
        size = config.data.image_size
        layout = self.layout(config.priors, size)
        layers = layers_of(config, layout)
        if layer >= len(layers):
            raise Invalid(
                ("body", "layer"), f"the config has {len(layers)} source layers (0..{len(layers) - 1}), not {layer}"
            )
        chosen = layers[layer]
        if shape is not None and shape >= len(chosen["shapes"]):
            raise Invalid(("body", "shape"), f"layer {layer} has {len(chosen['shapes'])} prior shapes, not {shape}")
        if cell is not None and not all(0 <= v < n for v, n in zip(cell, chosen["grid"], strict=True)):
            grid = chosen["grid"]
            raise Invalid(("body", "cell"), f"layer {layer} has a {grid[0]}x{grid[1]} grid, not {list(cell)}")

        s = self.browser.sample(config, split, index)
        dataset = self.browser.source(config)
        names = dataset.display_names
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
                _prior(
                    layout, config, int(rule.prior[i]), float(rule.iou[i]), (k, int(rule.prior[i])) not in threshold_set
                )
                for i in mine[np.argsort(-rule.iou[mine], kind="stable")]
            ]
            best = _prior(layout, config, int(a.best_prior[k]), float(a.best_iou[k])) if a.best_iou[k] > 0 else None
            ground_truths.append(
                {
                    "index": k,
                    "label": label,
                    "name": names[label] if names is not None else str(label),
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
        if cell is not None:
            row, col = cell
            step = chosen["step"]
            first = chosen["first_prior"] + (row * chosen["grid"][1] + col) * len(chosen["shapes"])
            picks = [shape] if shape is not None else list(range(len(chosen["shapes"])))
            indices = [first + k for k in picks]
            overlaps = iou(layout.boxes[indices], s.boxes)  # [shapes, K]: each prior's best ground truth
            cell_priors = [
                _prior(layout, config, p, float(overlaps[i].max(initial=0.0))) for i, p in enumerate(indices)
            ]
            selection = {"layer": layer, "shape": shape, "cell": [row, col], "priors": cell_priors}
            cell_box = [col * step, row * step, (col + 1) * step, (row + 1) * step]
            shapes = selection_shapes([p["box"] for p in cell_priors], cell_box)
        figure = explore_figure(
            source=data_url(s.image),
            image_size=size,
            ground_truths=ground_truths,
            iou_threshold=thr,
            force_best=force,
            shapes=shapes,
        )
        return {
            "split": split,
            "index": index,
            "image_size": size,
            "image_url": image_url(split, index, job, root, dataset=config.data.dataset),
            "dataset": dataset.id,
            "dataset_name": dataset.name,
            "iou_threshold": thr,
            "force_best": force,
            "num_priors": len(layout),
            "layers": layers,
            "ground_truths": ground_truths,
            "unmatched": [gt["index"] for gt in ground_truths if not gt["matched"]],
            "positives": int(a.at_threshold.gt.size),
            "positives_forced": int(a.forced.gt.size),
            "selection": selection,
            "figure": figure.to_plotly_json(),
            "elapsed_ms": round(1000 * (time.perf_counter() - started), 2),
        }

    def coverage(self, config: Config, split: Split, n: int) -> dict[str, Any]:
        """The coverage report of a config over images ``0..n-1`` of a split: numbers, words, figures."""
        started = time.perf_counter()
        data = self.browser.boxes(config, split, n)  # the generator's or an imported dataset's boxes
        layout = self.layout(config.priors, config.data.image_size)
        report = coverage(
            data,
            layout.boxes,
            np.concatenate(layout.shapes),
            iou_threshold=config.matching.iou_threshold,
            force_best=config.matching.force_best,
        )
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
            "share_matched": _share(report.matched, report.num_gt),
            "share_matched_forced": _share(report.matched_forced, report.num_gt),
            "best_iou_quantiles": _quantiles(report.best_iou),
            "buckets": [
                {
                    "label": b.label,
                    "count": b.count,
                    "matched": b.matched,
                    "matched_forced": b.matched_forced,
                    "unmatched": b.unmatched,
                    "share_matched": _share(b.matched, b.count),
                    "best_iou_quantiles": _quantiles(b.best_iou),
                }
                for b in report.buckets
            ],
            "positives_per_image": _positives(report.positives),
            "positives_per_image_forced": _positives(report.positives_forced),
            "words": describe(report),
            "figures": {name: fig.to_plotly_json() for name, fig in coverage_figures(report).items()},
            "elapsed_ms": round(1000 * (time.perf_counter() - started), 2),
        }

    def suggest(self, config: Config, *, split: Split, n: int, per_cell: int | None) -> dict[str, Any]:
        """Priors fitted to the ground truth of images ``0..n-1`` of a split of the config's dataset, on
        its source layers and IoU threshold, at most ``per_cell`` a cell (default: the config's most):
        the ``priors`` section and the coverage before and after, overall and per size bucket."""
        started = time.perf_counter()
        k = per_cell if per_cell is not None else min(max(config.priors.priors_per_cell), MAX_PER_CELL)
        cells = sum(feature_size(config.data.image_size, s) ** 2 for s in config.priors.strides)
        if cells * k > self.settings.max_priors:
            raise Invalid(
                ("body", "per_cell"),
                f"{k} priors per cell make {cells * k} priors on {cells} cells, over the limit of "
                f"{self.settings.max_priors}; ask for fewer",
            )
        data = self.browser.boxes(config, split, min(n, self.browser.length(config, split)))
        if not data.valid.any():
            raise Invalid(("body", "split"), f"the first {n} {split} images hold no ground-truth boxes")
        fitted = fit(data, config, per_cell=k, seed=config.seed)
        source = self.browser.source(config)
        return {
            "split": split,
            "dataset": source.id,
            "dataset_name": source.name,
            "per_cell": k,
            **fitted.to_dict(),
            "elapsed_ms": round(1000 * (time.perf_counter() - started), 1),
        }
