"""Tests for ssd.matching: hand-worked assignments, and the proof that prediction i is prior i."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssd.boxes import encode
from ssd.config import ModelConfig, PriorConfig
from ssd.matching import best_prior_iou, match
from ssd.model import build_ssd
from ssd.priors import make_priors

NUM_CLASSES = 3
BACKGROUND = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # one-hot background (last class), zero offsets

# Three 4x4 priors side by side.
ROW_PRIORS = np.array([[0, 0, 4, 4], [4, 0, 8, 4], [8, 0, 12, 4]], np.float32)


def _match(boxes: Sequence[Sequence[float]], labels: Sequence[int], priors: np.ndarray, **kwargs: Any) -> np.ndarray:
    """``y_true`` of a single image, [P, NUM_CLASSES + 1 + 4]."""
    y = match(
        np.array([boxes], np.float32).reshape(1, -1, 4),
        np.array([labels], np.int32).reshape(1, -1),
        priors,
        num_classes=NUM_CLASSES,
        **kwargs,
    )
    assert y.shape == (1, len(priors), NUM_CLASSES + 1 + 4) and y.dtype == tf.float32
    return np.asarray(y[0])


def _one_hot(label: int) -> list[float]:
    return [1.0 if c == label else 0.0 for c in range(NUM_CLASSES + 1)]


def test_ground_truth_equal_to_a_prior() -> None:
    y = _match([[4, 0, 8, 4]], [2], ROW_PRIORS)
    np.testing.assert_array_equal(y[1], _one_hot(2) + [0, 0, 0, 0])
    np.testing.assert_array_equal(y[0], BACKGROUND)
    np.testing.assert_array_equal(y[2], BACKGROUND)


def test_a_prior_goes_to_the_ground_truth_it_overlaps_most() -> None:
    prior = np.array([[0, 0, 4, 4]], np.float32)
    a, b = [0, 0, 4, 5], [0, 0, 4, 6]  # IoU 16/20 = 0.8 and 16/24 = 0.67: both above 0.5
    # a: centre (2, 2.5), size 4x5 against centre (2, 2), size 4x4.
    offsets_a = [0.0, 0.5 / 4, 0.0, math.log(5 / 4)]
    for boxes, labels in (([a, b], [0, 1]), ([b, a], [1, 0])):
        y = _match(boxes, labels, prior)
        np.testing.assert_array_equal(y[0, :4], _one_hot(0))
        np.testing.assert_allclose(y[0, 4:], offsets_a, rtol=1e-6, atol=1e-7)


def test_threshold_is_inclusive() -> None:
    prior = np.array([[0, 0, 10, 10]], np.float32)
    at = _match([[0, 0, 10, 5]], [1], prior)  # IoU 50/100 = 0.5
    below = _match([[0, 0, 10, 4.9]], [1], prior)  # IoU 49/100 = 0.49
    np.testing.assert_array_equal(at[0, :4], _one_hot(1))
    # (0, 0, 10, 5) against (0, 0, 10, 10): centre y 2.5 vs 5 over height 10; log(5 / 10).
    np.testing.assert_allclose(at[0, 4:], [0.0, -0.25, 0.0, math.log(0.5)], rtol=1e-6)
    np.testing.assert_array_equal(below[0], BACKGROUND)
    lowered = _match([[0, 0, 10, 4.9]], [1], prior, iou_threshold=0.45)
    np.testing.assert_array_equal(lowered[0, :4], _one_hot(1))


def test_padding_is_ignored() -> None:
    # The padded slot's box equals prior 0 exactly; only its label (-1) says it is padding.
    y = _match([[4, 0, 8, 4], [0, 0, 4, 4], [0, 0, 0, 0]], [2, -1, -1], ROW_PRIORS)
    np.testing.assert_array_equal(y[0], BACKGROUND)
    np.testing.assert_array_equal(y[1, :4], _one_hot(2))
    np.testing.assert_array_equal(y[2], BACKGROUND)
    # An image with padding only is all background.
    empty = _match([[0, 0, 4, 4]], [-1], ROW_PRIORS)
    np.testing.assert_array_equal(empty, [BACKGROUND] * 3)


def test_variances_scale_the_offsets() -> None:
    prior = np.array([[0, 0, 4, 4]], np.float32)
    y = _match([[0, 0, 4, 5]], [0], prior, variances=(0.1, 0.2))
    np.testing.assert_allclose(y[0, 4:], [0.0, 0.125 / 0.1, 0.0, math.log(1.25) / 0.2], rtol=1e-6)


def test_force_best_matches_a_small_ground_truth() -> None:
    priors = ROW_PRIORS[:2]
    small = [[0, 0, 2, 2]]  # IoU with prior 0 is 4/16 = 0.25, with prior 1 zero
    assert np.asarray(best_prior_iou(np.array(small, np.float32), priors)).tolist() == [0.25]
    without = _match(small, [1], priors)
    np.testing.assert_array_equal(without, [BACKGROUND] * 2)  # never learned: the notebook's gap
    forced = _match(small, [1], priors, force_best=True)
    # centre (1, 1) vs (2, 2) over size 4; log(2 / 4).
    np.testing.assert_allclose(forced[0], _one_hot(1) + [-0.25, -0.25, math.log(0.5), math.log(0.5)], rtol=1e-6)
    np.testing.assert_array_equal(forced[1], BACKGROUND)


def test_force_best_shared_prior_goes_to_the_higher_iou() -> None:
    priors = ROW_PRIORS[:2]
    a, b = [0, 0, 2, 2], [0, 0, 2, 3]  # both best on prior 0, IoU 0.25 and 6/16 = 0.375
    for boxes, labels in (([a, b], [0, 2]), ([b, a], [2, 0])):
        y = _match(boxes, labels, priors, force_best=True)
        np.testing.assert_array_equal(y[0, :4], _one_hot(2))
        np.testing.assert_array_equal(y[1], BACKGROUND)


def test_force_best_ignores_padding() -> None:
    y = _match([[0, 0, 0, 0], [0, 0, 0, 0]], [-1, -1], ROW_PRIORS, force_best=True)
    np.testing.assert_array_equal(y, [BACKGROUND] * 3)


def test_force_best_skips_ground_truths_that_overlap_no_prior() -> None:
    # A zero-area box and one outside every prior have IoU 0 everywhere; forcing would hand them
    # prior 0 (the argmax of all zeros) with offsets pointing elsewhere.
    y = _match([[2, 2, 2, 3], [50, 50, 60, 60]], [0, 1], ROW_PRIORS, force_best=True)
    np.testing.assert_array_equal(y, [BACKGROUND] * 3)


def _batch() -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array(
        [
            [[4, 0, 8, 4], [0, 0, 0, 0]],
            [[0, 0, 4, 4], [8, 0, 12, 5]],  # IoU of the second with prior 2: 16/20
        ],
        np.float32,
    )
    labels = np.array([[2, -1], [0, 1]], np.int32)
    return boxes, labels


def test_batch_dimension() -> None:
    boxes, labels = _batch()
    y = np.asarray(match(boxes, labels, ROW_PRIORS, num_classes=NUM_CLASSES))
    assert y.shape == (2, 3, NUM_CLASSES + 1 + 4)
    np.testing.assert_array_equal(y[0], _match(boxes[0].tolist(), labels[0].tolist(), ROW_PRIORS))
    np.testing.assert_array_equal(y[1], _match(boxes[1].tolist(), labels[1].tolist(), ROW_PRIORS))
    np.testing.assert_array_equal(y[1, :, :4], [_one_hot(0), _one_hot(3), _one_hot(1)])
    expected = np.asarray(encode(np.array([8, 0, 12, 5], np.float32), ROW_PRIORS[2]))
    np.testing.assert_allclose(y[1, 2, 4:], expected, rtol=1e-6)


def test_runs_inside_tf_data_map() -> None:
    boxes, labels = _batch()
    expected = np.asarray(match(boxes, labels, ROW_PRIORS, num_classes=NUM_CLASSES, force_best=True))
    priors = tf.constant(ROW_PRIORS)

    def per_image(b: tf.Tensor, lab: tf.Tensor) -> tf.Tensor:
        return match(b[None], lab[None], priors, num_classes=NUM_CLASSES, force_best=True)[0]

    def per_batch(b: tf.Tensor, lab: tf.Tensor) -> tf.Tensor:
        return match(b, lab, priors, num_classes=NUM_CLASSES, force_best=True)

    ds = tf.data.Dataset.from_tensor_slices((boxes, labels))
    mapped = list(ds.map(per_image, num_parallel_calls=2).as_numpy_iterator())
    np.testing.assert_array_equal(np.stack(mapped), expected)
    batched = list(ds.batch(2).map(per_batch, num_parallel_calls=2).as_numpy_iterator())
    np.testing.assert_array_equal(batched[0], expected)


# The alignment proof (seed/NOTES.md, "Where it is wrong": the notebook's priors and predictions
# described different places). Two source layers, unequal priors per cell, a 20-pixel image so
# the feature maps (5x5, 3x3) keep a partial cell.
ALIGN_MODEL = ModelConfig(num_units=2, source_layers=("norm3_2", "norm4_2"), num_classes=2)
ALIGN_PRIORS = PriorConfig(strides=(4, 8), scales=((6.0,), (10.0, 16.0)), ratios=(0.5, 2.0))
ALIGN_SIZE = 20


@pytest.fixture(scope="module")
def aligned() -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    keras.utils.set_random_seed(0)
    model = build_ssd(ALIGN_MODEL, ALIGN_PRIORS, image_size=ALIGN_SIZE)
    names = ALIGN_MODEL.source_layers
    heads = [model.get_layer(f"{n}_clf").output for n in names] + [model.get_layer(f"{n}_loc").output for n in names]
    probe = keras.Model(model.input, [model.output, *heads])
    image = np.random.default_rng(1).uniform(0, 255, (2, ALIGN_SIZE, ALIGN_SIZE, 3)).astype(np.float32)
    out, *raw = (np.asarray(t) for t in probe(image, training=False))
    return out, raw[: len(names)], raw[len(names) :]


def test_prediction_i_belongs_to_prior_i(aligned: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]) -> None:
    out, raw_clf, raw_loc = aligned
    layout = make_priors(ALIGN_PRIORS, ALIGN_SIZE)
    c = ALIGN_MODEL.num_classes + 1
    assert out.shape == (2, len(layout), c + 4)
    assert len(layout) == 5 * 5 * 2 + 3 * 3 * 4
    for index, (rows, cols) in enumerate(layout.grid):
        a = ALIGN_PRIORS.priors_per_cell[index]
        assert raw_clf[index].shape == (2, rows, cols, a * c)  # the head's feature map is the prior grid
        assert raw_loc[index].shape == (2, rows, cols, a * 4)
    # Every raw head value differs from the others, so a permuted order could not pass.
    all_raw = np.concatenate([r.ravel() for r in raw_clf + raw_loc])
    assert len(np.unique(all_raw)) == all_raw.size
    for i in range(len(layout)):
        layer, r, col, k = layout.layer[i], layout.row[i], layout.col[i], layout.shape[i]
        np.testing.assert_array_equal(out[:, i, :c], raw_clf[layer][:, r, col, k * c : (k + 1) * c])
        np.testing.assert_array_equal(out[:, i, c:], raw_loc[layer][:, r, col, k * 4 : (k + 1) * 4])


def test_ignore_regions_take_priors_out_of_the_loss() -> None:
    """Prior 0 is an object, prior 1 lies on an ignore region, prior 2 on nothing, prior 3 on both
    (the object wins): only prior 1 gets all-zero class scores."""
    from ssd.loss import loss_components
    from ssd.matching import IGNORE

    priors = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]], np.float32)
    gt = np.array([[[0, 0, 10, 10], [20, 0, 30, 10], [60, 0, 70, 10], [60, 0, 70, 10]]], np.float32)
    labels = np.array([[1, IGNORE, 0, IGNORE]], np.int32)
    y = match(gt, labels, priors, num_classes=2).numpy()[0]
    np.testing.assert_array_equal(y[:, :3], [[0, 1, 0], [0, 0, 0], [0, 0, 1], [1, 0, 0]])
    # With the ignored prior predicted confidently wrong, the loss must not change.
    logits = np.zeros((1, 4, 7), np.float32)
    parts = loss_components(y[None], logits, from_logits=True)
    logits[0, 1, :3] = [9.0, 9.0, -9.0]
    same = loss_components(y[None], logits, from_logits=True)
    assert float(parts["num_pos"]) == 2 and float(parts["num_neg"]) == 1  # prior 2 only: min(3 * 2, 1)
    for key in ("pos_clf", "neg_clf", "loc", "total"):
        assert float(same[key]) == pytest.approx(float(parts[key]))


def test_neg_iou_ignores_the_band_between_background_and_object() -> None:
    # Priors 10 px wide against a box (0, 0, 10, h): IoU h / 10 for h <= 10.
    priors = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    ignored = [0.0] * (NUM_CLASSES + 1) + [0.0] * 4
    for h, expected in ((4.5, ignored), (3.9, BACKGROUND)):  # IoU 0.45 in the band [0.4, 0.5); 0.39 below
        y = _match([[0, 0, 10, h]], [1], priors[:1], neg_iou=0.4)
        np.testing.assert_array_equal(y[0], expected)
    y = _match([[0, 0, 10, 5]], [1], priors, neg_iou=0.4)  # IoU 0.5: positive, as without the band
    np.testing.assert_array_equal(y[0, :4], _one_hot(1))
    np.testing.assert_array_equal(y[2], BACKGROUND)  # no overlap: background
    # force_best's prior stays positive inside the band
    y = _match([[0, 0, 10, 4.5]], [1], priors[:1], neg_iou=0.4, force_best=True)
    np.testing.assert_array_equal(y[0, :4], _one_hot(1))
