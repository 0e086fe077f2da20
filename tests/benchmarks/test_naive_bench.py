"""benchmarks.naive: the notebook's targets and loss must equal the project's (same matching, same loss)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from benchmarks.naive import ClassSoftmax, naive_iou, naive_targets, notebook_loss
from ssd.boxes import box_iou
from ssd.config import PriorConfig
from ssd.data import DetectionDataset
from ssd.loss import loss_components
from ssd.matching import match
from ssd.priors import make_priors


def test_naive_iou_matches_box_iou() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (5, 2)).astype(np.float32)
    gt = np.concatenate([xy, xy + rng.uniform(1, 30, (5, 2)).astype(np.float32)], axis=1)
    priors = make_priors(PriorConfig(), 32).boxes
    np.testing.assert_allclose(naive_iou(gt, priors), np.asarray(box_iou(gt, priors)), atol=1e-6)


def _assert_same_targets(boxes: np.ndarray, labels: np.ndarray, priors: np.ndarray, num_classes: int) -> None:
    ours = naive_targets(boxes, labels, priors, num_classes)
    ref = np.asarray(match(boxes, labels, priors, num_classes=num_classes, iou_threshold=0.5))
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_array_equal(ours[..., : num_classes + 1], ref[..., : num_classes + 1])
    np.testing.assert_allclose(ours[..., num_classes + 1 :], ref[..., num_classes + 1 :], atol=1e-5)


def test_naive_targets_hand_case_matches_match() -> None:
    # Three 4x4 priors in a row; image 0: a box on prior 0 (IoU 1) and one half on prior 2
    # (IoU 1/3, below 0.5); image 1: no boxes at all (padding only).
    priors = np.array([[0, 0, 4, 4], [4, 0, 8, 4], [8, 0, 12, 4]], np.float32)
    boxes = np.array([[[0, 0, 4, 4], [10, 0, 14, 4]], [[0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
    labels = np.array([[2, 1], [-1, -1]], np.int32)
    y = naive_targets(boxes, labels, priors, num_classes=3)
    np.testing.assert_array_equal(y[0, 0], [0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(y[0, 1:], [[0, 0, 0, 1, 0, 0, 0, 0]] * 2)
    np.testing.assert_array_equal(y[1], [[0, 0, 0, 1, 0, 0, 0, 0]] * 3)
    _assert_same_targets(boxes, labels, priors, 3)


def test_naive_targets_generated_batch_matches_match() -> None:
    priors = make_priors(PriorConfig(), 128).boxes  # the notebook's priors
    _, boxes, labels, counts = DetectionDataset("train").batch(0, 3)
    assert counts.min() >= 1
    y = naive_targets(boxes, labels, priors, 10)
    assert y[..., :10].sum() > 0  # some positives, so offsets are compared too
    _assert_same_targets(boxes, labels, priors, 10)


def test_notebook_loss_equals_project_loss() -> None:
    rng = np.random.default_rng(1)
    num_classes, priors = 3, 50
    labels = rng.integers(0, num_classes + 1, (2, priors))
    labels[:, ::2] = num_classes  # mostly background
    y_true = np.concatenate([np.eye(num_classes + 1)[labels], rng.normal(size=(2, priors, 4))], axis=-1)
    y_true[labels == num_classes, num_classes + 1 :] = 0.0
    logits = rng.normal(size=(2, priors, num_classes + 1 + 4)).astype(np.float32)
    probs = np.asarray(ClassSoftmax(num_classes + 1)(logits))
    np.testing.assert_allclose(probs[..., : num_classes + 1].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs[..., num_classes + 1 :], logits[..., num_classes + 1 :])
    y_true_t = tf.constant(y_true, tf.float32)
    ours = float(notebook_loss()(y_true_t, tf.constant(probs)))
    ref = float(loss_components(y_true_t, tf.constant(probs))["total"])
    assert ours == pytest.approx(ref, rel=1e-5)
