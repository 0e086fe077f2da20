"""Detection metrics: COCO mAP via pycocotools (the reference) and a confusion matrix.

Boxes are float32 pixel ``xyxy`` (as everywhere in :mod:`ssd`); they are converted to COCO's
``[x, y, w, h]`` here. Image ids are the index of the image in the lists passed in, category ids
are the class indices ``0..num_classes - 1``.

COCO conventions kept as they are: a class with no ground truth in the evaluated images has no
defined AP (pycocotools marks it -1; here it is ``float('nan')``, ``None`` in :meth:`to_dict`)
and is left out of the mean, so its false positives do not lower mAP; at most 100 detections
per image and class are scored (``maxDets`` 100).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ssd.geometry import ImageSize, image_hw, iou, xyxy_to_xywh

if TYPE_CHECKING:
    from ssd.data import Sample
    from ssd.detect import Detections, Detector

__all__ = [
    "DetectionMatch",
    "EvalResult",
    "coco_evaluate",
    "confusion_matrix",
    "evaluate_model",
    "match_detections",
    "mean_defined",
    "run_cocoeval",
    "to_coco_gt",
]


def to_coco_gt(
    boxes_list: Sequence[np.ndarray],
    labels_list: Sequence[np.ndarray],
    image_size: ImageSize,
    *,
    num_classes: int = 10,
    class_names: Sequence[str] | None = None,
    ignore: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """A COCO ground-truth dataset dict.

    Args:
        boxes_list: per image, float [K, 4] pixel ``xyxy``.
        labels_list: per image, int [K] classes ``0..num_classes - 1``.
        image_size: ``S`` or ``(H, W)`` of every image.
        num_classes: number of categories.
        class_names: category names; default ``"0"``, ``"1"``, ...
        ignore: per image, ``(boxes float [M, 4] xyxy, labels int [M])`` crowd or difficult
            regions, written as ``iscrowd: 1`` annotations: COCOeval matches a detection of that
            class inside one to it without counting it as a true or a false positive.

    Returns:
        ``{"images", "annotations", "categories"}``: image ids = list index, category ids =
        class index, annotation ids from 1 (pycocotools treats id 0 as "unmatched"),
        ``bbox`` = ``[x, y, w, h]``, ``area = w * h``, ``iscrowd`` 0 (1 for ``ignore`` regions).
    """
    if len(boxes_list) != len(labels_list):
        raise ValueError(f"{len(boxes_list)} box arrays but {len(labels_list)} label arrays")
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    h, w = image_hw(image_size)
    images = [{"id": i, "width": w, "height": h, "file_name": f"{i}.png"} for i in range(len(boxes_list))]
    annotations: list[dict[str, Any]] = []
    no_regions = (np.zeros((0, 4)), np.zeros(0, np.int64))
    regions = ignore if ignore is not None else [no_regions] * len(boxes_list)
    if len(regions) != len(boxes_list):
        raise ValueError(f"{len(regions)} ignore region sets for {len(boxes_list)} images")
    for image_id, (boxes, labels) in enumerate(zip(boxes_list, labels_list, strict=True)):
        for crowd, (group_boxes, group_labels) in ((0, (boxes, labels)), (1, regions[image_id])):
            xywh = xyxy_to_xywh(np.asarray(group_boxes).reshape(-1, 4))
            group = np.asarray(group_labels).reshape(-1)
            if len(xywh) != len(group):
                raise ValueError(f"image {image_id}: {len(xywh)} boxes but {len(group)} labels")
            for bbox, label in zip(xywh.tolist(), group.tolist(), strict=True):
                if not 0 <= label < num_classes:
                    raise ValueError(f"image {image_id}: label {label} not in 0..{num_classes - 1}")
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": int(label),
                        "bbox": bbox,
                        "area": bbox[2] * bbox[3],
                        "iscrowd": crowd,
                    }
                )
    categories = [{"id": c, "name": names[c]} for c in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


@dataclass(frozen=True)
class EvalResult:
    """COCO bbox metrics (area range "all", at most 100 detections per image and class).

    Attributes:
        map: AP averaged over IoU .50:.05:.95 and classes with ground truth (COCO "mAP").
        map50: AP at IoU .5. map75: AP at IoU .75.
        mar100: recall averaged over IoU .50:.95 and classes (COCO AR@100).
        ap_per_class: per class AP@[.5:.95]; NaN for a class with no ground truth.
        ap50_per_class: per class AP@.5; NaN for a class with no ground truth.
        recall_thresholds: the 101 recall points 0, 0.01, ..., 1 of the PR curves.
        pr_curves: per class, 101 interpolated precisions at IoU .5 (COCO's
            ``eval['precision'][0, :, k, all, 100]``); NaN for a class with no ground truth.
        num_gt: per class, ground-truth boxes. num_detections: detections scored in total.
        num_images: images evaluated.

    The overall numbers are NaN when no image holds any ground truth.
    """

    map: float
    map50: float
    map75: float
    mar100: float
    ap_per_class: list[float]
    ap50_per_class: list[float]
    recall_thresholds: list[float]
    pr_curves: list[list[float]]
    num_gt: list[int]
    num_detections: int
    num_images: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: NaN becomes None."""
        return _nan_to_none(asdict(self))


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def mean_defined(values: np.ndarray) -> float:
    """Mean of the entries > -1 (pycocotools' "undefined" marker); NaN when there are none."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else float("nan")


def _stat(value: float) -> float:
    return float("nan") if value < 0 else float(value)


def run_cocoeval(
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    detections: Sequence[Detections],
    *,
    num_classes: int,
    image_size: ImageSize,
    ignore: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    area_ranges: Sequence[tuple[str, float, float]] | None = None,
) -> COCOeval:
    """pycocotools' COCOeval (bbox), evaluated and accumulated quietly (not summarized).

    Arguments as :func:`coco_evaluate`; ``area_ranges``: ``(label, min_area, max_area)`` in
    pixels², both ends included as in COCO, instead of COCO's ``all``/``small``/``medium``/``large``
    (``summarize`` needs COCO's labels). ``eval["precision"]`` is [T iou, R recall, K class,
    A area range, M maxDets]; ``cocoDt.anns`` holds the scored detections.
    """
    if len(detections) != len(gt_boxes):
        raise ValueError(f"{len(detections)} detection sets for {len(gt_boxes)} images")
    gt = to_coco_gt(gt_boxes, gt_labels, image_size, num_classes=num_classes, ignore=ignore)
    results: list[dict[str, Any]] = []
    for image_id, det in enumerate(detections):
        xywh = xyxy_to_xywh(det.boxes).tolist()
        for bbox, score, label in zip(xywh, det.scores.tolist(), det.labels.tolist(), strict=True):
            results.append({"image_id": image_id, "category_id": int(label), "bbox": bbox, "score": score})

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes indexes anns[0]: build the empty result set by hand
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(gt["images"]), "categories": list(gt["categories"]), "annotations": []}
            coco_dt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_dt, iouType="bbox")
        coco_eval.params.imgIds = list(range(len(gt_boxes)))
        coco_eval.params.catIds = list(range(num_classes))
        if area_ranges is not None:
            coco_eval.params.areaRng = [[float(lo), float(hi)] for _, lo, hi in area_ranges]
            coco_eval.params.areaRngLbl = [label for label, _, _ in area_ranges]
        coco_eval.evaluate()
        coco_eval.accumulate()
    return coco_eval


def coco_evaluate(
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    detections: Sequence[Detections],
    *,
    num_classes: int,
    image_size: ImageSize,
    ignore: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> EvalResult:
    """Run pycocotools' COCOeval (bbox) quietly.

    Args:
        gt_boxes: per image, float [K, 4] pixel ``xyxy``.
        gt_labels: per image, int [K] classes.
        detections: per image, :class:`ssd.detect.Detections` (same order).
        num_classes: number of classes.
        image_size: ``S`` or ``(H, W)`` (recorded in the COCO images; not used by the metric).
        ignore: per image, crowd/difficult regions ``(boxes xyxy [M, 4], labels [M])`` (see
            :func:`to_coco_gt`): detections on them count neither way, as in COCO.

    Returns:
        :class:`EvalResult`. No detections at all gives 0 for every class with ground truth.
    """
    coco_eval = run_cocoeval(
        gt_boxes, gt_labels, detections, num_classes=num_classes, image_size=image_size, ignore=ignore
    )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.summarize()
    num_detections = len(coco_eval.cocoDt.anns)

    params = coco_eval.params
    precision = np.asarray(coco_eval.eval["precision"])  # [T iou, R recall, K class, A area, M maxdets]
    area_all = params.areaRngLbl.index("all")
    iou50 = int(np.argmin(np.abs(np.asarray(params.iouThrs) - 0.5)))
    prec = precision[:, :, :, area_all, -1]  # [T, R, K]
    ap = [mean_defined(prec[:, :, k]) for k in range(num_classes)]
    ap50 = [mean_defined(prec[iou50, :, k]) for k in range(num_classes)]
    curves = [[float("nan") if p < 0 else float(p) for p in prec[iou50, :, k].tolist()] for k in range(num_classes)]
    num_gt = np.bincount(
        np.concatenate([np.asarray(lab, dtype=np.int64).reshape(-1) for lab in gt_labels] or [np.zeros(0, np.int64)]),
        minlength=num_classes,
    )
    stats = coco_eval.stats
    return EvalResult(
        map=_stat(stats[0]),
        map50=_stat(stats[1]),
        map75=_stat(stats[2]),
        mar100=_stat(stats[8]),
        ap_per_class=ap,
        ap50_per_class=ap50,
        recall_thresholds=[float(r) for r in params.recThrs],
        pr_curves=curves,
        num_gt=[int(n) for n in num_gt[:num_classes]],
        num_detections=num_detections,
        num_images=len(gt_boxes),
    )


@dataclass(frozen=True, eq=False)
class DetectionMatch:
    """Detections of one image matched to its ground truth (see :func:`match_detections`).

    Attributes:
        iou: float64 [D, G] IoU of every detection with every ground truth (any class).
        det_gt: int64 [D] the ground truth a detection matched, -1 for a false positive or a
            detection below the score threshold.
        det_kept: bool [D] the detection's score is ``>= score_threshold``.
        gt_matched: bool [G] some kept detection matched the ground truth (False: missed).
    """

    iou: np.ndarray
    det_gt: np.ndarray
    det_kept: np.ndarray
    gt_matched: np.ndarray

    @property
    def det_tp(self) -> np.ndarray:
        """bool [D]: kept and matched (a true positive)."""
        return self.det_gt >= 0


def match_detections(
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    det_labels: np.ndarray,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
    class_agnostic: bool = False,
) -> DetectionMatch:
    """Match one image's detections to its ground truth as COCOeval does at one IoU threshold.

    Detections with ``score >= score_threshold`` are taken in descending score order (ties:
    input order); each takes the still-unmatched ground truth *of its class* with the highest
    IoU (the first on a tie), provided that IoU is ``>= iou_threshold``; otherwise it is a false
    positive. A detection's outcome depends only on the higher-scoring ones, so raising the
    threshold never changes the outcome of a detection that stays.

    Args:
        gt_boxes: float [G, 4] pixel ``xyxy``. gt_labels: int [G].
        det_boxes: float [D, 4] pixel ``xyxy``. det_scores: float [D]. det_labels: int [D].
        iou_threshold: the least IoU of a match.
        score_threshold: scores are compared with it in their own precision (float32 for
            :class:`ssd.detect.Detections`, so a score that prints as the threshold passes it).
        class_agnostic: match ground truths of any class, not only the detection's (what
            :func:`confusion_matrix` needs to see class confusions).
    """
    gb = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    gl = np.asarray(gt_labels, dtype=np.int64).reshape(-1)
    db = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(det_scores).reshape(-1)
    dl = np.asarray(det_labels, dtype=np.int64).reshape(-1)
    if len(gb) != len(gl) or not len(db) == len(scores) == len(dl):
        raise ValueError(
            f"{len(gb)} gt boxes, {len(gl)} gt labels; {len(db)} boxes, {len(scores)} scores, {len(dl)} labels"
        )
    overlaps = iou(db, gb, dtype=np.float64)  # [D, G]
    kept = scores >= score_threshold
    det_gt = np.full(len(db), -1, dtype=np.int64)
    matched = np.zeros(len(gb), dtype=bool)
    for d in np.argsort(-scores.astype(np.float64), kind="stable"):
        if not kept[d]:
            continue
        taken = matched if class_agnostic else matched | (gl != dl[d])
        candidates = np.where(taken, -1.0, overlaps[d])
        if len(candidates) and candidates.max() >= iou_threshold:
            g = int(np.argmax(candidates))
            matched[g] = True
            det_gt[d] = g
    return DetectionMatch(iou=overlaps, det_gt=det_gt, det_kept=kept, gt_matched=matched)


def confusion_matrix(
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    detections: Sequence[Detections],
    *,
    num_classes: int,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
) -> np.ndarray:
    """Detection confusion matrix, int64 [num_classes + 1, num_classes + 1].

    ``m[t, p]`` counts boxes of true class ``t`` (rows) detected as class ``p`` (columns). The
    last row (background) counts false positives: detections matching no ground truth, by
    predicted class. The last column (missed) counts ground truths no detection matched, by true
    class. ``m[-1, -1]`` is always 0. The diagonal holds the correct detections; the rest of the
    top-left ``num_classes x num_classes`` block holds class confusions.

    Matching, per image: :func:`match_detections` with ``class_agnostic=True``: detections with
    ``score >= score_threshold`` are taken in descending score order; each matches the
    still-unmatched ground truth of highest IoU, provided that IoU is ``>= iou_threshold``,
    whatever the two classes are. Each ground truth is matched at most once, so a second
    detection of an already matched object counts as a false positive.

    Args:
        gt_boxes: per image, float [K, 4] pixel ``xyxy``.
        gt_labels: per image, int [K] classes.
        detections: per image, :class:`ssd.detect.Detections`.
    """
    if not len(gt_boxes) == len(gt_labels) == len(detections):
        raise ValueError(f"{len(gt_boxes)} box arrays, {len(gt_labels)} label arrays, {len(detections)} detection sets")
    bg = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for boxes, labels, det in zip(gt_boxes, gt_labels, detections, strict=True):
        m = match_detections(
            boxes,
            labels,
            det.boxes,
            det.scores,
            det.labels,
            iou_threshold=iou_threshold,
            score_threshold=score_threshold,
            class_agnostic=True,
        )
        gl = np.asarray(labels, dtype=np.int64).reshape(-1)
        dl = np.asarray(det.labels, dtype=np.int64).reshape(-1)
        tp = m.det_tp
        false_pos = m.det_kept & ~tp
        np.add.at(matrix, (gl[m.det_gt[tp]], dl[tp]), 1)
        np.add.at(matrix, (np.full(int(false_pos.sum()), bg), dl[false_pos]), 1)
        np.add.at(matrix, (gl[~m.gt_matched], np.full(int((~m.gt_matched).sum()), bg)), 1)
    return matrix


class Samples(Protocol):
    """What :func:`evaluate_model` reads of a split (:class:`ssd.datasets.source.SplitData`)."""

    image_size: int

    def __getitem__(self, index: int) -> Sample: ...

    def ignore_regions(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


def evaluate_model(detector: Detector, dataset: Samples, num_images: int, batch_size: int = 32) -> EvalResult:
    """COCO metrics of ``detector`` on ``dataset[0] .. dataset[num_images - 1]``, the crowd and
    difficult regions of each image (``dataset.ignore_regions(i)``) ignored."""
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    samples = [dataset[i] for i in range(num_images)]
    images = np.stack([s.image for s in samples])
    detections = detector.predict(images, batch_size=batch_size)
    return coco_evaluate(
        [s.boxes for s in samples],
        [s.labels for s in samples],
        detections,
        num_classes=detector.config.model.num_classes,
        image_size=dataset.image_size,
        ignore=[dataset.ignore_regions(i) for i in range(num_images)],
    )
