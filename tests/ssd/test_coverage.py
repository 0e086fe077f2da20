"""Prior coverage on hand-worked cases, and agreement with ssd.boxes / ssd.matching."""

from __future__ import annotations

import numpy as np
import pytest

from ssd.config import PriorConfig, from_dict
from ssd.coverage import BUCKET_LABELS, DatasetBoxes, assign, coverage, dataset_boxes, describe, size_bucket
from ssd.geometry import iou
from ssd.priors import make_priors

# A 16x16 image, one layer of stride 8 with one 8x8 prior per cell: four priors tiling the image,
# 0 = [0, 0, 8, 8], 1 = [8, 0, 16, 8], 2 = [0, 8, 8, 16], 3 = [8, 8, 16, 16].
TINY = make_priors(PriorConfig(strides=(8,), scales=((8.0,),), ratios=(1.0,)), 16)
A = [0.0, 0.0, 8.0, 8.0]  # exactly prior 0: IoU 1
B = [8.0, 8.0, 16.0, 28.0]  # 8x20 below prior 3: inter 64, union 160, IoU 0.4; no other overlap
C = [0.0, 0.0, 4.0, 8.0]  # left half of prior 0: IoU 0.5


def test_tiny_priors_are_the_four_quadrants() -> None:
    np.testing.assert_array_equal(TINY.boxes, [[0, 0, 8, 8], [8, 0, 16, 8], [0, 8, 8, 16], [8, 8, 16, 16]])


def test_iou_by_hand_and_equal_to_box_iou() -> None:
    np.testing.assert_allclose(iou(np.array([A, B, C]), TINY.boxes), [[1, 0, 0, 0], [0, 0, 0, 0.4], [0.5, 0, 0, 0]])
    from ssd.boxes import box_iou

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (20, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 40, (20, 2))], axis=1).astype(np.float32)
    np.testing.assert_allclose(iou(boxes, boxes[:7]), box_iou(boxes, boxes[:7]).numpy(), atol=1e-6)


def test_exact_prior_matched_low_iou_unmatched_but_forced() -> None:
    a = assign(np.array([A, B]), np.array([0, 0]), TINY.boxes, iou_threshold=0.5)
    np.testing.assert_allclose(a.best_iou, [1.0, 0.4])
    np.testing.assert_array_equal(a.best_prior, [0, 3])
    assert list(zip(a.at_threshold.gt, a.at_threshold.prior, strict=True)) == [(0, 0)]
    assert sorted(zip(a.forced.gt.tolist(), a.forced.prior.tolist(), strict=True)) == [(0, 0), (1, 3)]
    np.testing.assert_array_equal(a.at_threshold.per_gt(2), [1, 0])
    np.testing.assert_array_equal(a.forced.per_gt(2), [1, 1])


def test_shared_best_prior_goes_to_the_better_overlap() -> None:
    # A (IoU 1) and C (IoU 0.5) both have prior 0 as their best: A keeps it, C owns nothing.
    a = assign(np.array([C, A]), np.array([0, 0]), TINY.boxes, iou_threshold=0.6)
    assert list(zip(a.forced.gt.tolist(), a.forced.prior.tolist(), strict=True)) == [(1, 0)]
    # In different images they do not compete.
    a = assign(np.array([C, A]), np.array([0, 1]), TINY.boxes, iou_threshold=0.6)
    assert sorted(zip(a.forced.gt.tolist(), a.forced.prior.tolist(), strict=True)) == [(0, 0), (1, 0)]


def test_coverage_numbers_by_hand() -> None:
    data = DatasetBoxes(
        boxes=np.array([[A, B], [C, [0, 0, 0, 0]]], np.float32),
        labels=np.array([[1, 2], [3, -1]], np.int32),
        counts=np.array([2, 1], np.int32),
    )
    r = coverage(data, TINY.boxes, TINY.shapes[0], iou_threshold=0.5, force_best=False)
    assert (r.num_images, r.num_gt, r.matched, r.matched_forced, r.unmatched) == (2, 3, 2, 3, 1)
    np.testing.assert_allclose(r.best_iou, [1.0, 0.4, 0.5])
    np.testing.assert_array_equal(r.positives, [1, 1])  # prior 0 in each image
    np.testing.assert_array_equal(r.positives_forced, [2, 1])
    # sqrt(area): A 8, B 12.6, C 5.7: all in the smallest bucket.
    assert [b.count for b in r.buckets] == [3, 0, 0, 0, 0]
    assert (r.buckets[0].matched, r.buckets[0].matched_forced) == (2, 3)
    words = describe(r)
    assert words[0].startswith("33.3% of ground truths (1 of 3) have no prior with IoU ≥ 0.5: 1 in the < 16 px bucket")
    assert "8x8 px" in words[0]
    assert "Forced matching is off" in words[2] and "100.0%" in words[2]
    assert "1.0 positive priors per image" in words[3]


def test_size_buckets_edges_go_up() -> None:
    sides = [15.9, 16.0, 24.0, 31.9, 47.9, 48.0, 100.0]
    boxes = np.array([[0, 0, s, s] for s in sides], np.float32)
    np.testing.assert_array_equal(size_bucket(boxes), [0, 1, 2, 2, 3, 4, 4])
    assert len(BUCKET_LABELS) == 5


@pytest.mark.parametrize("force_best", [False, True])
def test_assignment_equals_ssd_matching(force_best: bool) -> None:
    from ssd.matching import match

    layout = make_priors(PriorConfig(), 64)
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 48, (3, 4, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 30, (3, 4, 2))], axis=-1).astype(np.float32)
    labels = np.array([[0, 1, 2, 3], [4, 5, -1, -1], [6, -1, -1, -1]], np.int32)
    y_true = match(boxes, labels, layout.boxes, num_classes=10, iou_threshold=0.5, force_best=force_best).numpy()
    expected = y_true[..., :11].argmax(-1)  # [B, P] class, 10 = background
    valid = labels >= 0
    image = np.nonzero(valid)[0]
    a = assign(boxes[valid], image, layout.boxes, iou_threshold=0.5)
    pairs = a.forced if force_best else a.at_threshold
    got = np.full(expected.shape, 10)
    got[image[pairs.gt], pairs.prior] = labels[valid][pairs.gt]
    np.testing.assert_array_equal(got, expected)


def test_notebook_priors_leave_a_gap_on_the_validation_set() -> None:
    config = from_dict({"preset": "notebook"})
    data = dataset_boxes(config, "val", 300)
    assert dataset_boxes(config, "val", 300) is data  # cached
    layout = make_priors(config.priors, config.data.image_size)
    r = coverage(data, layout.boxes, np.concatenate(layout.shapes), iou_threshold=0.5, force_best=False)
    assert 0.05 < r.unmatched / r.num_gt < 0.15
    assert r.matched_forced == r.num_gt
    assert (r.best_iou[~r.is_matched] < 0.5).all()
