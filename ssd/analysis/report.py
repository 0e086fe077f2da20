"""The analysis of a checkpoint's detections on a split, as one JSON document.

:func:`analyze` runs TIDE (:mod:`ssd.analysis.tide`), AP by size (:mod:`ssd.analysis.sizes`) and
every ground truth's story (:mod:`ssd.analysis.story`) on the same detections, and
:meth:`Analysis.to_dict` writes the document that ``ssdboard analyze --json`` saves (the contract
others script against, ``docs/guide/analysis.md``):

``{"ap50", "tide": {cls, loc, both, dupe, bkg, missed, false_pos, false_neg}, "counts",
"ap_by_size": {small, medium, large: {"ap", "ap50", "num_gt"}}, "ap_by_bucket": [...],
"causes": {found, cls, loc, missed, no_prior}, "recall_by_prior_iou": [...],
"ground_truths": [{"image", "box" [x, y, w, h], "class", "outcome", "cause", "best_prior_iou",
"positives", ...}], "health": [...]}``

Every AP and dAP is in AP points (0-100) at IoU 0.5, ``ap`` of a size range at IoU .5:.95.
Boxes are pixel ``xyxy`` in the network's square input (``[x, y, w, h]`` in the JSON).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ssd.analysis.sizes import APBySize, SizeAP, ap_by_size
from ssd.analysis.story import Stories, ground_truth_stories, recall_by_prior_iou
from ssd.analysis.tide import TideResult, tide_errors

if TYPE_CHECKING:
    from ssd.analysis.tide import DetectionSet
    from ssd.config import Config

__all__ = ["Analysis", "analyze"]


def _points(value: float) -> float | None:
    return None if math.isnan(value) else round(100.0 * value, 2)


def _size(s: SizeAP) -> dict[str, Any]:
    return {"label": s.label, "ap": _points(s.ap), "ap50": _points(s.ap50), "num_gt": s.num_gt}


@dataclass(frozen=True)
class Analysis:
    """TIDE, AP by size and the ground truths' stories of one set of detections."""

    images: int
    tide: TideResult
    sizes: APBySize
    stories: Stories
    health: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the module's docstring (NaN as None)."""
        summary = self.tide.to_dict()
        return {
            "images": self.images,
            "ap50": None if summary["ap50"] is None else round(summary["ap50"], 2),
            "tide": {k: None if v is None else round(v, 2) for k, v in summary["tide"].items()},
            "counts": summary["counts"],
            "ap_by_size": {s.label: _size(s) for s in self.sizes.coco},
            "ap_by_bucket": [_size(s) for s in self.sizes.buckets],
            "causes": self.stories.counts(),
            "recall_by_prior_iou": recall_by_prior_iou(self.stories),
            "ground_truths": self.stories.to_list(),
            "health": list(self.health),
        }


def analyze(
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    detections: Sequence[DetectionSet],
    config: Config,
    priors: np.ndarray,
    *,
    ignore: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> Analysis:
    """The analysis of ``detections`` on images whose ground truth is ``gt_boxes``/``gt_labels``.

    Args:
        gt_boxes: per image float [K, 4] pixel ``xyxy`` in the ``data.image_size`` square input.
        gt_labels: per image int [K].
        detections: per image (:class:`ssd.detect.Detections`: boxes [D, 4] ``xyxy``, scores, labels).
        config: the checkpoint's config (classes, input size, matching rule).
        priors: float32 [P, 4] ``xyxy``, the config's priors (:func:`ssd.priors.make_priors`).
        ignore: per image crowd/difficult regions ``(boxes [M, 4], labels [M])``.
    """
    num_classes = config.model.num_classes
    tide = tide_errors(gt_boxes, gt_labels, detections, num_classes=num_classes, ignore=ignore)
    sizes = ap_by_size(
        gt_boxes,
        gt_labels,
        detections,  # type: ignore[arg-type]  # DetectionSet: what COCOeval reads of Detections
        num_classes=num_classes,
        image_size=config.data.image_size,
        ignore=ignore,
    )
    m = config.matching
    stories = ground_truth_stories(
        gt_boxes, gt_labels, tide, priors, iou_threshold=m.iou_threshold, force_best=m.force_best
    )
    return Analysis(images=len(gt_boxes), tide=tide, sizes=sizes, stories=stories)
