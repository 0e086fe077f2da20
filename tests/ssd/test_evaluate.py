"""Tests for ssd.evaluate: COCO metrics against pycocotools and the confusion matrix."""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ssd.config import Config, DataConfig, ModelConfig, PriorConfig
from ssd.data import DetectionDataset
from ssd.detect import Detections, Detector, to_coco_results
from ssd.evaluate import coco_evaluate, confusion_matrix, evaluate_model, match_detections, to_coco_gt
from ssd.model import build_ssd


def _det(boxes: list[list[float]], scores: list[float], labels: list[int]) -> Detections:
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32), np.asarray(labels, np.int32)
    )


def _gt(boxes: list[list[float]]) -> np.ndarray:
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def _pycocotools_stats(gt: dict[str, Any], results: list[dict[str, Any]]) -> np.ndarray:
    """COCOeval stats computed directly, as a user of pycocotools would."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def test_to_coco_gt() -> None:
    gt = to_coco_gt([_gt([[1, 2, 11, 7]]), _gt([])], [np.asarray([4]), np.asarray([], np.int32)], (20, 30))
    assert gt["images"] == [
        {"id": 0, "width": 30, "height": 20, "file_name": "0.png"},
        {"id": 1, "width": 30, "height": 20, "file_name": "1.png"},
    ]
    assert gt["annotations"] == [
        {"id": 1, "image_id": 0, "category_id": 4, "bbox": [1.0, 2.0, 10.0, 5.0], "area": 50.0, "iscrowd": 0}
    ]
    assert gt["categories"] == [{"id": c, "name": str(c)} for c in range(10)]
    json.dumps(gt)
    with pytest.raises(ValueError, match="label 10"):
        to_coco_gt([_gt([[0, 0, 1, 1]])], [np.asarray([10])], 8)


def test_perfect_detections_map_one() -> None:
    boxes = [_gt([[0, 0, 10, 10], [20, 20, 36, 30]]), _gt([[5, 5, 25, 15]])]
    labels = [np.asarray([0, 2]), np.asarray([2])]
    dets = [_det(b.tolist(), [0.9] * len(b), lab.tolist()) for b, lab in zip(boxes, labels, strict=True)]
    r = coco_evaluate(boxes, labels, dets, num_classes=3, image_size=64)
    assert r.map == pytest.approx(1.0) and r.map50 == pytest.approx(1.0) and r.map75 == pytest.approx(1.0)
    assert r.mar100 == pytest.approx(1.0)
    assert r.ap_per_class[0] == pytest.approx(1.0) and r.ap_per_class[2] == pytest.approx(1.0)
    assert math.isnan(r.ap_per_class[1]) and math.isnan(r.ap50_per_class[1])  # class 1: no ground truth
    assert r.num_gt == [1, 0, 2] and r.num_detections == 3 and r.num_images == 2
    assert len(r.recall_thresholds) == 101 and r.recall_thresholds[0] == 0.0 and r.recall_thresholds[-1] == 1.0
    np.testing.assert_allclose(r.pr_curves[0], 1.0)  # tp / (tp + fp + eps) in pycocotools
    assert len(r.pr_curves[0]) == 101 and all(math.isnan(p) for p in r.pr_curves[1])
    d = r.to_dict()
    assert d["ap_per_class"][1] is None and d["pr_curves"][1][0] is None and d["map"] == pytest.approx(1.0)
    json.dumps(d, allow_nan=False)


def test_one_detection_iou_063_against_pycocotools() -> None:
    # gt [0,0,10,10], detection [0,0,10,6.3]: IoU 63/100 = 0.63 passes the IoU thresholds
    # .50, .55, .60 (AP 1 each: one TP, recall 1, precision 1) and fails .65 .. .95 (AP 0):
    # AP@[.5:.95] = 3/10 = 0.3, AP@.5 = 1, AP@.75 = 0.
    gt_boxes, gt_labels = [_gt([[0, 0, 10, 10]])], [np.asarray([1])]
    dets = [_det([[0, 0, 10, 6.3]], [0.8], [1])]
    r = coco_evaluate(gt_boxes, gt_labels, dets, num_classes=2, image_size=32)
    assert r.map == pytest.approx(0.3) and r.map50 == pytest.approx(1.0) and r.map75 == pytest.approx(0.0)
    assert r.ap_per_class[1] == pytest.approx(0.3) and r.ap50_per_class[1] == pytest.approx(1.0)
    assert math.isnan(r.ap_per_class[0])
    stats = _pycocotools_stats(to_coco_gt(gt_boxes, gt_labels, 32, num_classes=2), to_coco_results(dets))
    np.testing.assert_allclose([r.map, r.map50, r.map75, r.mar100], stats[[0, 1, 2, 8]])


def test_ranked_false_positive_against_pycocotools() -> None:
    # Two gts of class 0; detections by score: TP (0.9), FP elsewhere (0.8), TP (0.7).
    # Cumulative (recall, precision): (.5, 1), (.5, .5), (1, 2/3). Interpolated precision is 1 for
    # the 51 recall points 0 .. .50 and 2/3 for the 50 points .51 .. 1:
    # AP = (51 * 1 + 50 * 2/3) / 101 = 0.834983..., at every IoU threshold (boxes are exact).
    gt_boxes, gt_labels = [_gt([[0, 0, 10, 10], [30, 30, 40, 40]])], [np.asarray([0, 0])]
    dets = [_det([[0, 0, 10, 10], [60, 0, 70, 10], [30, 30, 40, 40]], [0.9, 0.8, 0.7], [0, 0, 0])]
    r = coco_evaluate(gt_boxes, gt_labels, dets, num_classes=1, image_size=80)
    expected = (51 + 50 * 2 / 3) / 101
    assert r.map == pytest.approx(expected) and r.map50 == pytest.approx(expected)
    np.testing.assert_allclose(r.pr_curves[0], [1.0] * 51 + [2 / 3] * 50)
    stats = _pycocotools_stats(to_coco_gt(gt_boxes, gt_labels, 80, num_classes=1), to_coco_results(dets))
    np.testing.assert_allclose([r.map, r.map50, r.map75], stats[:3])


def test_no_detections_and_no_ground_truth() -> None:
    gt_boxes, gt_labels = [_gt([[0, 0, 10, 10]]), _gt([])], [np.asarray([3]), np.asarray([], np.int32)]
    r = coco_evaluate(gt_boxes, gt_labels, [Detections.empty(), Detections.empty()], num_classes=10, image_size=32)
    assert r.map == 0.0 and r.map50 == 0.0 and r.ap_per_class[3] == 0.0 and r.num_detections == 0
    assert r.pr_curves[3] == [0.0] * 101
    fp_only = [_det([[0, 0, 5, 5]], [0.9], [0])]
    r = coco_evaluate([_gt([])], [np.asarray([], np.int32)], fp_only, num_classes=2, image_size=8)
    assert math.isnan(r.map) and r.to_dict()["map"] is None


def test_confusion_matrix_hand_worked() -> None:
    # Image 0: gt class 0 at A, gt class 1 at B, gt class 2 at C (missed).
    #   det class 0 on A (correct), det class 2 on B (confusion 1 -> 2), det class 1 on empty
    #   ground (false positive), det class 0 on A again, lower score (duplicate -> false positive),
    #   det class 1 on C with score 0.3 < 0.5 (ignored, so C is missed).
    # Image 1: gt class 1 with a detection at IoU 0.4 (< 0.5): a miss and a false positive.
    a, b, c = [0.0, 0, 10, 10], [20.0, 0, 30, 10], [40.0, 0, 50, 10]
    gt_boxes = [_gt([a, b, c]), _gt([[0, 0, 10, 10]])]
    gt_labels = [np.asarray([0, 1, 2]), np.asarray([1])]
    dets = [
        _det([a, b, [60, 60, 70, 70], [0, 0, 10, 9], c], [0.9, 0.8, 0.7, 0.6, 0.3], [0, 2, 1, 0, 1]),
        _det([[0, 0, 4, 10]], [0.95], [1]),
    ]
    m = confusion_matrix(gt_boxes, gt_labels, dets, num_classes=3)
    expected = np.zeros((4, 4), np.int64)
    expected[0, 0] = 1  # correct
    expected[1, 2] = 1  # class 1 detected as 2
    expected[3, 1] = 2  # false positives of class 1 (empty ground; IoU 0.4)
    expected[3, 0] = 1  # duplicate of A
    expected[2, 3] = 1  # C missed
    expected[1, 3] = 1  # image 1 gt missed
    np.testing.assert_array_equal(m, expected)
    assert m.sum(axis=1)[:3].tolist() == [1, 2, 1]  # every gt counted exactly once per row
    m2 = confusion_matrix(gt_boxes, gt_labels, dets, num_classes=3, iou_threshold=0.35, score_threshold=0.25)
    assert m2[1, 1] == 1 and m2[2, 1] == 1 and m2[2, 3] == 0 and m2[1, 3] == 0


def test_match_detections_per_class_and_class_agnostic() -> None:
    # gt 0: class 0 at A; gt 1: class 1 at B. Detections, by score: class 1 on A (0.9), class 0 on
    # A shifted by 5 px (IoU 50/150, 0.8), class 1 on B (0.7), class 1 on B again (0.6).
    a, b = [0.0, 0, 10, 10], [20.0, 0, 30, 10]
    gt_boxes, gt_labels = _gt([a, b]), np.asarray([0, 1])
    det = _det([a, [5, 0, 15, 10], b, b], [0.9, 0.8, 0.7, 0.6], [1, 0, 1, 1])
    m = match_detections(gt_boxes, gt_labels, det.boxes, det.scores, det.labels, iou_threshold=0.3)
    assert m.iou.dtype == np.float64 and m.iou.shape == (4, 2)
    assert m.iou[1, 0] == pytest.approx(1 / 3)
    assert m.det_gt.tolist() == [-1, 0, 1, -1]  # per class: the class-1 detection on A matches nothing
    assert m.gt_matched.tolist() == [True, True] and m.det_tp.tolist() == [False, True, True, False]
    agnostic = match_detections(
        gt_boxes, gt_labels, det.boxes, det.scores, det.labels, iou_threshold=0.3, class_agnostic=True
    )
    assert agnostic.det_gt.tolist() == [0, -1, 1, -1]  # A taken by the higher-scoring class-1 detection
    high = match_detections(gt_boxes, gt_labels, det.boxes, det.scores, det.labels, score_threshold=0.75)
    assert high.det_kept.tolist() == [True, True, False, False] and high.det_gt.tolist() == [-1, -1, -1, -1]


def test_match_detections_compares_scores_in_their_precision() -> None:
    # float32(0.7) is just below 0.7: a Detections score that prints as the threshold passes it.
    det = _det([[0, 0, 10, 10]], [0.7], [0])
    assert float(det.scores[0]) < 0.7
    m = match_detections(_gt([[0, 0, 10, 10]]), np.asarray([0]), det.boxes, det.scores, det.labels, score_threshold=0.7)
    assert m.det_kept.tolist() == [True] and m.det_gt.tolist() == [0]
    with pytest.raises(ValueError, match="2 scores"):
        match_detections(_gt([]), np.asarray([]), det.boxes, [0.5, 0.6], det.labels)


def test_confusion_matrix_agrees_with_class_agnostic_matching() -> None:
    rng = np.random.default_rng(1)
    gt_boxes, gt_labels, dets = [], [], []
    for _ in range(40):
        g, d = int(rng.integers(0, 5)), int(rng.integers(0, 7))
        xy = rng.integers(0, 30, (g + d, 2))
        boxes = np.concatenate([xy, xy + rng.integers(1, 15, (g + d, 2))], axis=1).astype(np.float32)
        gt_boxes.append(boxes[:g])
        gt_labels.append(rng.integers(0, 3, g))
        dets.append(_det(boxes[g:].tolist(), rng.random(d).tolist(), rng.integers(0, 3, d).tolist()))
    matrix = confusion_matrix(gt_boxes, gt_labels, dets, num_classes=3, iou_threshold=0.3, score_threshold=0.4)
    tp = fp = missed = 0
    for boxes, labels, det in zip(gt_boxes, gt_labels, dets, strict=True):
        m = match_detections(
            boxes,
            labels,
            det.boxes,
            det.scores,
            det.labels,
            iou_threshold=0.3,
            score_threshold=0.4,
            class_agnostic=True,
        )
        tp += int(m.det_tp.sum())
        fp += int((m.det_kept & ~m.det_tp).sum())
        missed += int((~m.gt_matched).sum())
    assert matrix[:3, :3].sum() == tp and matrix[3].sum() == fp and matrix[:, 3].sum() == missed
    assert matrix[:3].sum() == sum(len(lab) for lab in gt_labels)  # every ground truth in one cell


def test_evaluate_model_runs() -> None:
    config = Config(
        model=ModelConfig(num_units=2, source_layers=("norm3_2",)),
        priors=PriorConfig(strides=(4,), scales=((10.0,),), ratios=(1.0,)),
        data=DataConfig(image_size=32, scale_range=(0.8, 1.1)),
    )
    detector = Detector(build_ssd(config.model, config.priors, None), config)
    dataset = DetectionDataset("val", image_size=32, min_digits=1, max_digits=2, scale_range=(0.8, 1.1), seed=0)
    r = evaluate_model(detector, dataset, num_images=3, batch_size=2)
    assert r.num_images == 3 and sum(r.num_gt) == sum(len(dataset[i].labels) for i in range(3))
    assert 0.0 <= r.map <= 1.0 and len(r.ap_per_class) == 10
    json.dumps(r.to_dict(), allow_nan=False)
