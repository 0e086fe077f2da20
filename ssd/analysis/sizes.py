"""AP by object size: COCO's small / medium / large, and the coverage report's size buckets.

Inputs as :func:`ssd.evaluate.coco_evaluate`: per image, ground truth boxes float [K, 4] pixel
``xyxy`` and labels int [K], detections (:class:`ssd.detect.Detections`: boxes float [D, 4]
pixel ``xyxy``, scores [D], labels [D]), optional ignore regions ``(boxes [M, 4], labels [M])``.

pycocotools' COCOeval computes each range (:func:`ssd.evaluate.run_cocoeval`), as COCO does: a
box's size is its area ``w * h`` in the image's pixels; ground truths outside the range are
ignored, and so are unmatched detections outside it, so a well-placed detection of a large
object does not count against the small ones. COCO's ranges are small ``area <= 32²``, medium
``32² - 96²``, large ``>= 96²`` (both ends included, as in pycocotools). The coverage buckets
(:data:`ssd.coverage.BUCKET_LABELS`, by ``sqrt(area)``: < 16, 16-24, 24-32, 32-48, >= 48 px)
are half-open, a box on an edge in the upper bucket, as :func:`ssd.coverage.size_bucket` puts
it, so a bucket's AP can be read next to its prior coverage.

AP values are 0-1 like :class:`ssd.evaluate.EvalResult`'s; NaN for a range without ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ssd.coverage import BUCKET_EDGES, BUCKET_LABELS
from ssd.evaluate import mean_defined, run_cocoeval
from ssd.geometry import ImageSize, box_area

if TYPE_CHECKING:
    from ssd.detect import Detections

__all__ = ["COCO_SIZES", "APBySize", "SizeAP", "ap_by_size", "bucket_ranges"]

# COCO's area ranges (pycocotools' Params.areaRng): (label, least area, most area), pixels².
COCO_SIZES: tuple[tuple[str, float, float], ...] = (
    ("small", 0.0, 32.0**2),
    ("medium", 32.0**2, 96.0**2),
    ("large", 96.0**2, 1e5**2),
)


def bucket_ranges() -> tuple[tuple[str, float, float], ...]:
    """The coverage buckets as area ranges: a range's top is just under the next bucket's edge²
    (COCOeval includes both ends; :func:`ssd.coverage.size_bucket` puts an edge in the upper one)."""
    edges = [0.0, *(e * e for e in BUCKET_EDGES), 1e5**2]
    return tuple(
        (label, lo, float(np.nextafter(hi, 0.0)) if i < len(BUCKET_LABELS) - 1 else hi)
        for i, (label, lo, hi) in enumerate(zip(BUCKET_LABELS, edges[:-1], edges[1:], strict=True))
    )


@dataclass(frozen=True)
class SizeAP:
    """AP of the objects of one size range.

    Attributes:
        label: ``"small"``, ... or a coverage bucket's label (``"< 16 px"``, ...).
        min_area, max_area: the range, pixels², both included.
        ap: AP@[.5:.95] over the classes with ground truth in the range; NaN if none has.
        ap50: AP at IoU .5, the same classes.
        num_gt: ground truths in the range.
    """

    label: str
    min_area: float
    max_area: float
    ap: float
    ap50: float
    num_gt: int


@dataclass(frozen=True)
class APBySize:
    """AP by size. ``coco``: small, medium, large; ``buckets``: one per coverage bucket."""

    coco: tuple[SizeAP, ...]
    buckets: tuple[SizeAP, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (NaN becomes None): ``{"coco": {label: {...}}, "buckets": [{...}]}``."""

        def clean(size: SizeAP) -> dict[str, Any]:
            return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(size).items()}

        return {"coco": {s.label: clean(s) for s in self.coco}, "buckets": [clean(s) for s in self.buckets]}


def ap_by_size(
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    detections: Sequence[Detections],
    *,
    num_classes: int,
    image_size: ImageSize,
    ignore: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> APBySize:
    """COCO's AP by object size and AP by coverage bucket, one COCOeval run for all ranges.

    Args:
        gt_boxes: per image, float [K, 4] pixel ``xyxy``.
        gt_labels: per image, int [K] classes ``0..num_classes - 1``.
        detections: per image, :class:`ssd.detect.Detections` (same order).
        num_classes: number of classes.
        image_size: ``S`` or ``(H, W)``.
        ignore: per image, crowd/difficult regions ``(boxes xyxy [M, 4], labels [M])``.
    """
    ranges = COCO_SIZES + bucket_ranges()
    coco_eval = run_cocoeval(
        gt_boxes,
        gt_labels,
        detections,
        num_classes=num_classes,
        image_size=image_size,
        ignore=ignore,
        area_ranges=ranges,
    )
    precision = np.asarray(coco_eval.eval["precision"])[..., -1]  # [T, R, K, A] at maxDets 100
    iou50 = int(np.argmin(np.abs(np.asarray(coco_eval.params.iouThrs) - 0.5)))
    areas = (
        np.concatenate([box_area(np.asarray(b).reshape(-1, 4), dtype=np.float64) for b in gt_boxes])
        if len(gt_boxes)
        else np.zeros(0)
    )
    sizes = tuple(
        SizeAP(
            label=label,
            min_area=lo,
            max_area=hi,
            ap=mean_defined(precision[:, :, :, a]),
            ap50=mean_defined(precision[iou50, :, :, a]),
            num_gt=int(((areas >= lo) & (areas <= hi)).sum()),
        )
        for a, (label, lo, hi) in enumerate(ranges)
    )
    return APBySize(coco=sizes[: len(COCO_SIZES)], buckets=sizes[len(COCO_SIZES) :])
