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
from ssd.coverage import BUCKET_LABELS, size_bucket

if TYPE_CHECKING:
    from ssd.analysis.tide import DetectionSet
    from ssd.config import Config

__all__ = ["MAX_LISTED_FALSE_POSITIVES", "Analysis", "analyze", "false_positive_list"]

MAX_LISTED_FALSE_POSITIVES = 1000  # the document lists the best-scored ones (a gallery shows the worst first)


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
    false_positives: list[dict[str, Any]] = field(default_factory=list)
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
            "false_positives": self.false_positives[:MAX_LISTED_FALSE_POSITIVES],
            "false_positives_total": len(self.false_positives),
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
    return Analysis(
        images=len(gt_boxes),
        tide=tide,
        sizes=sizes,
        stories=stories,
        false_positives=false_positive_list(tide, detections),
    )


def false_positive_list(tide: TideResult, detections: Sequence[DetectionSet]) -> list[dict[str, Any]]:
    """Every false positive of ``tide``, best scored first: ``image``, ``detection`` (its index in
    the image's detections), ``box`` (``[x, y, w, h]``), ``class``, ``score``, ``type`` (TIDE's),
    ``gt`` (the object the error is about, or -1), ``iou`` with it, and ``size_bucket``."""
    out: list[dict[str, Any]] = []
    for image, det, kind, gt, overlap in zip(
        tide.fp_image, tide.fp_detection, tide.fp_type, tide.fp_gt, tide.fp_iou, strict=True
    ):
        d = detections[int(image)]
        box = np.asarray(d.boxes, np.float32)[int(det)]
        x1, y1, x2, y2 = (float(v) for v in box)
        out.append(
            {
                "image": int(image),
                "detection": int(det),
                "box": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "class": int(np.asarray(d.labels)[int(det)]),
                "score": round(float(np.asarray(d.scores)[int(det)]), 4),
                "type": str(kind),
                "gt": int(gt),
                "iou": round(float(overlap), 4),
                "size_bucket": BUCKET_LABELS[int(size_bucket(box[None])[0])],
            }
        )
    out.sort(key=lambda f: -f["score"])
    return out
