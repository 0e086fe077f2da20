"""TIDE's error breakdown: why each false positive is false, why each ground truth was missed,
and how much AP each kind of error costs.

Bolya et al., ECCV 2020, "TIDE: A General Toolbox for Identifying Object Detection Errors"
(the reference implementation is the ``tidecv`` package; ``tests/ssd/test_analysis.py`` checks
this module against it).

Inputs, as :func:`ssd.evaluate.coco_evaluate`: per image, ground truth boxes float [K, 4] pixel
``xyxy`` and labels int [K]; detections with ``boxes`` float [D, 4] pixel ``xyxy``, ``scores``
float [D] and ``labels`` int [D] (:class:`ssd.detect.Detections`); optionally crowd or difficult
regions ``(boxes float [M, 4] xyxy, labels int [M])``.

Matching, per image, at ``pos_iou`` (0.5): the ``max_dets`` best-scored detections (of all
classes), in descending score order, each take the unmatched ground truth of their class of
highest IoU if it is ``>= pos_iou`` (true positives). An unmatched detection inside an ignore
region of its class (intersection over the detection's area ``>= pos_iou``, COCO's crowd rule)
counts neither way. Every other detection is a false positive of the first type that fits
(TIDE's order; IoU ``pos`` 0.5, background ``bg`` 0.1):

- ``bkg`` the image has no ground truth at all;
- ``loc`` its best IoU with a ground truth of its class is in ``[bg, pos]``: well classified,
  badly localized;
- ``cls`` its best IoU with a ground truth of another class is ``>= pos``: well localized,
  wrong class;
- ``dupe`` its best IoU with an already matched ground truth of its class is ``>= pos``: a
  second detection of a found object, scored lower than the first;
- ``bkg`` its best IoU with any ground truth is ``<= bg``: fired on background;
- ``both`` the rest: wrong class and badly localized (IoU in ``(bg, pos)`` with another class).

A ground truth no detection matched is claimed by the best-scored ``cls`` or ``loc`` error on it
(its outcome is then ``"cls"`` or ``"loc"``: the detector saw it and got the class or the box
wrong), else it is ``"missed"``.

dAP, TIDE's definition: AP after an oracle fixes every error of one type, minus the baseline AP,
each type fixed alone from the baseline, clamped at 0. The oracle turns the detection claiming a
ground truth into a true positive (``cls``: of the ground truth's class) and drops the other
``cls``/``loc`` errors; drops ``dupe``, ``bkg`` and ``both`` errors; removes ``missed`` ground
truths from the count. ``false_pos``: every false positive scored below every true positive
(perfect precision at the same recall); ``false_neg``: every unmatched ground truth removed from
the count (perfect recall at the same precision). Neither is clamped.

AP is TIDE's: per class, COCO's 101-point interpolated AP at ``pos_iou``; the mean is over the
classes with ground truth or detections, a class with detections but no ground truth scoring 0
(COCO leaves such a class out, so ``ap50`` can be below :func:`ssd.evaluate.coco_evaluate`'s
``map50`` when a class is predicted that no image holds). Values are AP points, 0-100.

Where this differs from ``tidecv`` 1.0.1, on purpose: a detection on an ignore region is not
classified as an error (tidecv classifies it, and its oracle may turn it into a true positive);
the ignore rule takes ``>= pos_iou`` as COCO does (tidecv ``>``); detections of equal score may
be ranked differently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ssd.evaluate import match_detections
from ssd.geometry import box_area, intersection

__all__ = [
    "ERROR_TYPES",
    "OUTCOMES",
    "SPECIAL_TYPES",
    "DetectionSet",
    "TideResult",
    "tide_errors",
]

# TIDE's order: the order of the tests, and of the bars of its plot.
ERROR_TYPES: tuple[str, ...] = ("cls", "loc", "both", "dupe", "bkg", "missed")
SPECIAL_TYPES: tuple[str, ...] = ("false_pos", "false_neg")
# A ground truth's outcome: matched, claimed by a cls or loc error, or missed outright.
OUTCOMES: tuple[str, ...] = ("found", "cls", "loc", "missed")

_CLS, _LOC, _BOTH, _DUPE, _BKG = range(5)  # codes of the false positive types in ERROR_TYPES
_TP = -1
# TIDE's recall points, x / 100 (not linspace: a recall of 7/100 must reach the point 0.07).
_RECALLS = np.arange(101) / 100


class DetectionSet(Protocol):
    """One image's detections (:class:`ssd.detect.Detections` has these fields)."""

    @property
    def boxes(self) -> np.ndarray: ...  # float [D, 4] pixel xyxy

    @property
    def scores(self) -> np.ndarray: ...  # float [D]

    @property
    def labels(self) -> np.ndarray: ...  # int [D]


@dataclass(frozen=True, eq=False)
class TideResult:
    """TIDE's breakdown of a set of detections (see the module's docstring).

    Attributes:
        ap50: baseline AP at ``pos_iou`` in points (TIDE's class mean); NaN with no ground truth
            and no detections.
        dap: dAP in AP points for each of :data:`ERROR_TYPES` and :data:`SPECIAL_TYPES`.
        counts: errors of each of :data:`ERROR_TYPES` (``missed`` counts ground truths).
        gt_image: int64 [G] image of every ground truth, in input order (image by image).
        gt_index: int64 [G] its index in that image's ground truth.
        gt_outcome: str [G] one of :data:`OUTCOMES`.
        gt_detection: int64 [G] the detection (index in the image's detections as passed) that
            matched it (``found``) or claims it (``cls``, ``loc``); -1 when ``missed``.
        fp_image: int64 [F] image of every false positive, images in order, each by score.
        fp_detection: int64 [F] its index in that image's detections as passed.
        fp_type: str [F] one of :data:`ERROR_TYPES` but ``missed``.
        fp_gt: int64 [F] the ground truth (index in its image) the error is about: the one it
            overlaps for ``loc`` and ``cls``, the one already matched for ``dupe``; -1 for
            ``bkg`` and ``both``.
        fp_iou: float64 [F] its IoU with ``fp_gt`` (0 where -1).
        num_ignored: detections on ignore regions, counted neither way.
        pos_iou, bg_iou: the foreground and background IoU thresholds.
    """

    ap50: float
    dap: dict[str, float]
    counts: dict[str, int]
    gt_image: np.ndarray
    gt_index: np.ndarray
    gt_outcome: np.ndarray
    gt_detection: np.ndarray
    fp_image: np.ndarray
    fp_detection: np.ndarray
    fp_type: np.ndarray
    fp_gt: np.ndarray
    fp_iou: np.ndarray
    num_ignored: int
    pos_iou: float
    bg_iou: float

    def to_dict(self) -> dict[str, Any]:
        """The summary, JSON-safe (NaN becomes None): ``ap50``, ``tide`` (the dAPs), ``counts``."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "ap50": num(self.ap50),
            "tide": {k: num(v) for k, v in self.dap.items()},
            "counts": dict(self.counts),
        }


@dataclass(frozen=True)
class _Image:
    """One image's verdicts; detection indices are into the detections as passed."""

    det: np.ndarray  # int64 [S] scored detections (the max_dets best), not ignored, by score
    det_type: np.ndarray  # int64 [S] _TP or a false positive code
    det_gt: np.ndarray  # int64 [S] matched gt (TP) or the gt of the error (-1 none)
    det_iou: np.ndarray  # float64 [S] IoU with det_gt
    det_fix_class: np.ndarray  # int64 [S] class it scores as when its cls/loc error is fixed, -1: dropped
    gt_outcome: np.ndarray  # int64 [G] index into OUTCOMES
    gt_detection: np.ndarray  # int64 [G]
    num_ignored: int


def _classify(
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    det: DetectionSet,
    ignore_boxes: np.ndarray,
    ignore_labels: np.ndarray,
    *,
    pos_iou: float,
    bg_iou: float,
    max_dets: int,
) -> _Image:
    scores = np.asarray(det.scores, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")[:max_dets]
    boxes = np.asarray(det.boxes, np.float64).reshape(-1, 4)[order]
    labels = np.asarray(det.labels, np.int64).reshape(-1)[order]
    g = len(gt_labels)
    m = match_detections(
        gt_boxes, gt_labels, boxes, scores[order], labels, iou_threshold=pos_iou, score_threshold=-np.inf
    )
    ious, used = m.iou, m.gt_matched
    false = m.det_gt < 0

    ignored = np.zeros(len(order), bool)
    if len(ignore_labels) and false.any():
        area = box_area(boxes, dtype=np.float64)[:, None]
        inter = intersection(boxes, ignore_boxes, dtype=np.float64)
        covered = np.where(area > 0, inter / np.where(area > 0, area, 1.0), 0.0) >= pos_iou
        ignored = false & (covered & (labels[:, None] == ignore_labels[None, :])).any(axis=1)

    det_type = np.full(len(order), _TP, np.int64)
    det_gt = m.det_gt.copy()
    det_iou = np.where(det_gt >= 0, ious[np.arange(len(order)), np.maximum(det_gt, 0)] if g else 0.0, 0.0)
    fp = false & ~ignored
    if g == 0:
        det_type[fp] = _BKG
    elif fp.any():
        same = labels[:, None] == gt_labels[None, :]
        own = np.where(same, ious, 0.0)  # IoU with ground truths of the detection's class
        other = np.where(same, 0.0, ious)
        found = np.where(used[None, :], own, 0.0)
        rows = np.arange(len(order))
        own_g, other_g, found_g = own.argmax(1), other.argmax(1), found.argmax(1)
        own_v, other_v, found_v = own[rows, own_g], other[rows, other_g], found[rows, found_g]
        tests = [(own_v >= bg_iou) & (own_v <= pos_iou), other_v >= pos_iou, found_v >= pos_iou, ious.max(1) <= bg_iou]
        kind = np.select(tests, [_LOC, _CLS, _DUPE, _BKG], _BOTH)
        about = np.select(tests, [own_g, other_g, found_g, -1], -1)
        det_type[fp] = kind[fp]
        det_gt[fp] = about[fp]
        det_iou[fp] = np.where(about >= 0, ious[rows, np.maximum(about, 0)], 0.0)[fp]

    # Each unmatched ground truth is claimed by the best-scored cls or loc error on it (TIDE's
    # oracle can turn only one detection into its true positive).
    gt_detection = np.full(g, -1, np.int64)
    gt_outcome = np.full(g, OUTCOMES.index("missed"), np.int64)
    det_fix_class = np.full(len(order), -1, np.int64)
    for d in np.flatnonzero((det_type == _CLS) | (det_type == _LOC)):  # by score
        t = det_gt[d]
        if not used[t] and gt_detection[t] < 0:
            gt_detection[t] = d
            gt_outcome[t] = OUTCOMES.index("cls" if det_type[d] == _CLS else "loc")
            det_fix_class[d] = gt_labels[t]
    tp = np.flatnonzero(det_gt >= 0)
    tp = tp[det_type[tp] == _TP]
    gt_detection[det_gt[tp]] = tp
    gt_outcome[used] = OUTCOMES.index("found")
    gt_detection[gt_detection >= 0] = order[gt_detection[gt_detection >= 0]]

    kept = ~ignored
    return _Image(
        det=order[kept],
        det_type=det_type[kept],
        det_gt=det_gt[kept],
        det_iou=det_iou[kept],
        det_fix_class=det_fix_class[kept],
        gt_outcome=gt_outcome,
        gt_detection=gt_detection,
        num_ignored=int(ignored.sum()),
    )


def _class_ap(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """COCO's 101-point interpolated AP of one class, 0-1 (TIDE's: 0 without ground truth)."""
    if num_gt <= 0 or len(scores) == 0:
        return 0.0
    hits = np.cumsum(tp[np.argsort(-scores, kind="stable")])
    precision = hits / np.arange(1, len(hits) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope: max precision to the right
    at = np.searchsorted(hits / num_gt, _RECALLS, side="left")
    return float(np.where(at < len(hits), precision[np.minimum(at, len(hits) - 1)], 0.0).mean())


def _mean_ap(labels: np.ndarray, scores: np.ndarray, tp: np.ndarray, num_gt: np.ndarray) -> float:
    """TIDE's mAP in points: the mean over classes with ground truth or detections."""
    classes = np.union1d(np.unique(labels), np.flatnonzero(num_gt > 0))
    if not len(classes):
        return float("nan")
    return 100.0 * float(np.mean([_class_ap(scores[labels == c], tp[labels == c], int(num_gt[c])) for c in classes]))


def tide_errors(
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    detections: Sequence[DetectionSet],
    *,
    num_classes: int,
    ignore: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    pos_iou: float = 0.5,
    bg_iou: float = 0.1,
    max_dets: int = 100,
) -> TideResult:
    """TIDE's error breakdown of ``detections`` against the ground truth.

    Args:
        gt_boxes: per image, float [K, 4] pixel ``xyxy``.
        gt_labels: per image, int [K] classes ``0..num_classes - 1``.
        detections: per image, :class:`ssd.detect.Detections` (same order).
        num_classes: number of classes (labels are checked against it).
        ignore: per image, crowd/difficult regions ``(boxes float [M, 4] xyxy, labels int [M])``:
            an unmatched detection of that class inside one counts neither way (COCO's rule).
        pos_iou: foreground IoU: a match, and the least IoU of a ``cls`` or ``dupe`` error.
        bg_iou: background IoU: the least IoU of a ``loc`` error, the most of a ``bkg`` one.
        max_dets: the best-scored detections kept per image (TIDE's and COCO's 100).

    Returns:
        :class:`TideResult`.
    """
    if not len(gt_boxes) == len(gt_labels) == len(detections):
        raise ValueError(f"{len(gt_boxes)} box arrays, {len(gt_labels)} label arrays, {len(detections)} detection sets")
    if not 0.0 < bg_iou < pos_iou <= 1.0:
        raise ValueError(f"need 0 < bg_iou < pos_iou <= 1, got bg_iou={bg_iou}, pos_iou={pos_iou}")
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    no_regions = (np.zeros((0, 4)), np.zeros(0, np.int64))
    regions = ignore if ignore is not None else [no_regions] * len(gt_boxes)
    if len(regions) != len(gt_boxes):
        raise ValueError(f"{len(regions)} ignore region sets for {len(gt_boxes)} images")

    images: list[_Image] = []
    labels_all: list[np.ndarray] = []
    for i, (boxes, labels, det, (r_boxes, r_labels)) in enumerate(
        zip(gt_boxes, gt_labels, detections, regions, strict=True)
    ):
        gb = np.asarray(boxes, np.float64).reshape(-1, 4)
        gl = np.asarray(labels, np.int64).reshape(-1)
        dl = np.asarray(det.labels, np.int64).reshape(-1)
        rb = np.asarray(r_boxes, np.float64).reshape(-1, 4)
        rl = np.asarray(r_labels, np.int64).reshape(-1)
        if len(gb) != len(gl) or len(rb) != len(rl):
            raise ValueError(f"image {i}: {len(gb)} boxes, {len(gl)} labels; {len(rb)} ignore boxes, {len(rl)} labels")
        for what, lab in (("label", gl), ("detection label", dl), ("ignore label", rl)):
            if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
                raise ValueError(f"image {i}: {what} out of 0..{num_classes - 1}: {sorted(set(lab.tolist()))}")
        images.append(_classify(gb, gl, det, rb, rl, pos_iou=pos_iou, bg_iou=bg_iou, max_dets=max_dets))
        labels_all.append(gl)

    def cat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)

    # Every scored detection, image by image.
    image_of = cat([np.full(len(im.det), i) for i, im in enumerate(images)], np.int64)
    det_index = cat([im.det for im in images], np.int64)
    kind = cat([im.det_type for im in images], np.int64)
    about = cat([im.det_gt for im in images], np.int64)
    about_iou = cat([im.det_iou for im in images], np.float64)
    fix_class = cat([im.det_fix_class for im in images], np.int64)
    det_class = cat(
        [np.asarray(d.labels, np.int64).reshape(-1)[im.det] for d, im in zip(detections, images, strict=True)], np.int64
    )
    det_score = cat(
        [np.asarray(d.scores, np.float64).reshape(-1)[im.det] for d, im in zip(detections, images, strict=True)],
        np.float64,
    )
    # Every ground truth, image by image.
    gt_class = cat(labels_all, np.int64)
    outcome = cat([im.gt_outcome for im in images], np.int64)
    num_gt = np.bincount(gt_class, minlength=num_classes)
    tp = kind == _TP

    base = _mean_ap(det_class, det_score, tp, num_gt)
    dap: dict[str, float] = {}
    for code, name in enumerate(ERROR_TYPES[:-1]):
        fixed = (kind == code) & (fix_class >= 0)
        keep = (kind != code) | fixed
        labels_fixed = np.where(fixed, fix_class, det_class)[keep]
        dap[name] = max(_mean_ap(labels_fixed, det_score[keep], (tp | fixed)[keep], num_gt) - base, 0.0)
    missed = np.bincount(gt_class[outcome == OUTCOMES.index("missed")], minlength=num_classes)
    dap["missed"] = max(_mean_ap(det_class, det_score, tp, num_gt - missed) - base, 0.0)
    dap["false_pos"] = _mean_ap(det_class, tp.astype(np.float64), tp, num_gt) - base
    unmatched = np.bincount(gt_class[outcome != OUTCOMES.index("found")], minlength=num_classes)
    dap["false_neg"] = _mean_ap(det_class, det_score, tp, num_gt - unmatched) - base

    fp = ~tp
    counts = {name: int((kind == code).sum()) for code, name in enumerate(ERROR_TYPES[:-1])}
    counts["missed"] = int((outcome == OUTCOMES.index("missed")).sum())
    return TideResult(
        ap50=base,
        dap=dap,
        counts=counts,
        gt_image=cat([np.full(len(lab), i) for i, lab in enumerate(labels_all)], np.int64),
        gt_index=cat([np.arange(len(lab)) for lab in labels_all], np.int64),
        gt_outcome=np.asarray(OUTCOMES)[outcome],
        gt_detection=cat([im.gt_detection for im in images], np.int64),
        fp_image=image_of[fp],
        fp_detection=det_index[fp],
        fp_type=np.asarray(ERROR_TYPES)[kind[fp]],
        fp_gt=about[fp],
        fp_iou=about_iou[fp],
        num_ignored=sum(im.num_ignored for im in images),
        pos_iou=pos_iou,
        bg_iou=bg_iou,
    )
