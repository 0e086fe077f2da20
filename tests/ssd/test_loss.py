"""Tests for ssd.loss: the notebook's reference cases, hand-worked mining, XLA and gradients."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from ssd.loss import EPSILON, loss_components

ORACLE = Path(__file__).resolve().parents[3] / "shared" / "oracles" / "seed_loss_cases.npz"
PARTS = ("pos_clf", "neg_clf", "loc")


def _oracle_params() -> list[Any]:
    if not ORACLE.exists():
        reason = f"reference cases not found at {ORACLE} (the project's ../shared/oracles)"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]
    with np.load(ORACLE) as data:
        return sorted({key.split("_", 1)[0] for key in data.files}, key=int)


def _oracle_case(case: str) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray]:
    with np.load(ORACLE) as data:
        alpha, ratio = (float(v) for v in data[f"{case}_params"])
        return data[f"{case}_y_true"], data[f"{case}_y_pred"], alpha, ratio, data[f"{case}_parts"]


def _check_parts(got: dict[str, tf.Tensor], parts: np.ndarray, alpha: float) -> None:
    for name, want in zip(PARTS, parts, strict=True):
        np.testing.assert_allclose(float(got[name]), want, rtol=1e-5, err_msg=name)
    total = parts[0] + parts[1] + alpha * parts[2]
    np.testing.assert_allclose(float(got["total"]), total, rtol=1e-5, err_msg="total")


@pytest.mark.parametrize("case", _oracle_params())
def test_reference_cases(case: str) -> None:
    y_true, y_pred, alpha, ratio, parts = _oracle_case(case)
    _check_parts(loss_components(y_true, y_pred, alpha=alpha, pos_neg_ratio=ratio), parts, alpha)


@pytest.mark.parametrize("case", _oracle_params())
def test_reference_cases_under_xla(case: str) -> None:
    y_true, y_pred, alpha, ratio, parts = _oracle_case(case)

    @tf.function(jit_compile=True)
    def compiled(y_true: tf.Tensor, y_pred: tf.Tensor) -> dict[str, tf.Tensor]:
        return loss_components(y_true, y_pred, alpha=alpha, pos_neg_ratio=ratio)

    _check_parts(compiled(tf.constant(y_true), tf.constant(y_pred)), parts, alpha)


def _rows(positives: list[tuple[float, list[float], list[float]]], negatives: list[float]) -> tuple[list, list]:
    """One image with one object class (channels: class 0, background, 4 offsets).

    A positive is ``(ce, true offsets, predicted offsets)`` and is predicted with probability
    ``exp(-ce)`` for class 0, so its cross-entropy is ``ce``; a negative's entry is its
    cross-entropy, its background probability ``exp(-ce)``. Negatives predict offsets of 100,
    which the loss must ignore.
    """
    y_true, y_pred = [], []
    for ce, true_loc, pred_loc in positives:
        p = math.exp(-ce)
        y_true.append([1.0, 0.0, *true_loc])
        y_pred.append([p, 1.0 - p, *pred_loc])
    for ce in negatives:
        p = math.exp(-ce)
        y_true.append([0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
        y_pred.append([1.0 - p, p, 100.0, 100.0, 100.0, 100.0])
    return y_true, y_pred


def _tiny() -> tuple[np.ndarray, np.ndarray]:
    """Two positives (CE 0.5 and 1.5) and ten negatives with CE 1..10 in shuffled order."""
    y_true, y_pred = _rows(
        [
            (0.5, [0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),  # smooth L1: 0.5 * 0.5^2 = 0.125
            (1.5, [2.0, 0.0, 0.0, -1.5], [0.0, 0.0, 0.0, 0.0]),  # (2 - 0.5) + (1.5 - 0.5) = 2.5
        ],
        [3, 7, 1, 10, 5, 2, 9, 4, 8, 6],
    )
    return np.array([y_true], np.float32), np.array([y_pred], np.float32)


def _values(parts: dict[str, tf.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in parts.items()}


def test_hand_worked_case() -> None:
    got = _values(loss_components(*_tiny(), alpha=2.0, pos_neg_ratio=3.0))
    # 2 positives x ratio 3 = 6 negatives: the six largest CEs 10 + 9 + 8 + 7 + 6 + 5 = 45.
    expected = {
        "pos_clf": (0.5 + 1.5) / 2,
        "neg_clf": 45 / 6,
        "loc": (0.125 + 2.5) / 2,
        "total": 1.0 + 7.5 + 2.0 * 1.3125,
        "num_pos": 2.0,
        "num_neg": 6.0,
    }
    assert got == pytest.approx(expected, rel=1e-5)


def test_negatives_are_capped_by_the_background_count() -> None:
    got = _values(loss_components(*_tiny(), pos_neg_ratio=10.0))
    assert got["num_neg"] == 10.0  # min(10 * 2, 10 background priors)
    assert got["neg_clf"] == pytest.approx(55 / 10, rel=1e-5)


def test_fractional_negative_count_truncates_like_the_notebook() -> None:
    # num_neg = 1.75 * 2 = 3.5: top_k takes int(3.5) = 3 negatives, the division keeps 3.5.
    got = _values(loss_components(*_tiny(), pos_neg_ratio=1.75))
    assert got["neg_clf"] == pytest.approx((10 + 9 + 8) / 3.5, rel=1e-5)


def test_paper_normalization_divides_by_positives() -> None:
    got = _values(loss_components(*_tiny(), pos_neg_ratio=3.0, normalization="paper"))
    assert got["pos_clf"] == pytest.approx(1.0, rel=1e-5)
    assert got["neg_clf"] == pytest.approx(45 / 2, rel=1e-5)
    assert got["loc"] == pytest.approx(1.3125, rel=1e-5)


def _three_images() -> tuple[np.ndarray, np.ndarray]:
    """Image A: a positive (CE 1), negatives CE 1..5; B: a positive (CE 2), negatives 6..10;
    C: no positive, negatives 11..15."""
    zeros = [0.0, 0.0, 0.0, 0.0]
    a = _rows([(1.0, zeros, zeros)], [1, 2, 3, 4, 5])
    b = _rows([(2.0, zeros, zeros)], [6, 7, 8, 9, 10])
    c = _rows([], [11, 12, 13, 14, 15, 0.5])
    return np.array([a[0], b[0], c[0]], np.float32), np.array([a[1], b[1], c[1]], np.float32)


def test_batch_mining_versus_per_image_mining() -> None:
    y_true, y_pred = _three_images()
    # Notebook: one top-k over the flattened batch takes 2 negatives, both from image C.
    batch = _values(loss_components(y_true, y_pred, pos_neg_ratio=1.0))
    assert batch["pos_clf"] == pytest.approx(1.5, rel=1e-5)
    assert batch["neg_clf"] == pytest.approx((15 + 14) / 2, rel=1e-5)
    # Paper: 1 negative per positive in each image; C has no positive, so none of its negatives.
    image = _values(loss_components(y_true, y_pred, pos_neg_ratio=1.0, mining="image"))
    assert image["pos_clf"] == pytest.approx(1.5, rel=1e-5)
    assert image["neg_clf"] == pytest.approx((5 + 10) / 2, rel=1e-5)
    assert image["num_neg"] == 2.0
    paper = _values(loss_components(y_true, y_pred, pos_neg_ratio=1.0, mining="image", normalization="paper"))
    assert paper["neg_clf"] == pytest.approx(15 / 2, rel=1e-5)


def test_no_positives_gives_zero_not_nan() -> None:
    y_true, y_pred = _three_images()
    got = _values(loss_components(y_true[2:], y_pred[2:]))
    assert got == pytest.approx(
        {"pos_clf": 0.0, "neg_clf": 0.0, "loc": 0.0, "total": 0.0, "num_pos": 0.0, "num_neg": 0.0}
    )


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 [2, 30, 5 + 4] one-hot targets (about a third positive) and logits-plus-offsets."""
    rng = np.random.default_rng(seed)
    labels = np.where(rng.uniform(size=(2, 30)) < 0.3, rng.integers(0, 4, (2, 30)), 4)
    y_true = np.concatenate([np.eye(5)[labels], rng.normal(size=(2, 30, 4)) * (labels < 4)[..., None]], -1)
    y_pred = np.concatenate([rng.normal(scale=2.0, size=(2, 30, 5)), rng.normal(size=(2, 30, 4))], -1)
    return y_true.astype(np.float32), y_pred.astype(np.float32)


@pytest.mark.parametrize("options", [{}, {"mining": "image", "normalization": "paper"}])
def test_logits_path_equals_probabilities_path(options: dict[str, Any]) -> None:
    y_true, y_logits = _random_case(0)
    probs = np.asarray(tf.nn.softmax(y_logits[..., :5], axis=-1))
    assert EPSILON < probs.min() and probs.max() < 1 - EPSILON  # no clipping on the probability path
    y_probs = np.concatenate([probs, y_logits[..., 5:]], -1)
    from_logits = _values(loss_components(y_true, y_logits, from_logits=True, **options))
    from_probs = _values(loss_components(y_true, y_probs, **options))
    assert from_logits == pytest.approx(from_probs, rel=1e-5)


@pytest.mark.parametrize("from_logits", [False, True])
def test_gradient_is_finite(from_logits: bool) -> None:
    y_true, y_pred = _random_case(1)
    if not from_logits:  # probabilities at exactly 0 and 1 exercise the clipping
        y_pred[..., :5] = np.eye(5)[np.arange(60).reshape(2, 30) % 5]
    all_background = np.zeros_like(y_true)
    all_background[..., 4] = 1.0  # no positive: every part divides by (nearly) zero counts
    variable = tf.Variable(y_pred)
    for target in (y_true, all_background):
        with tf.GradientTape() as tape:
            total = loss_components(target, variable, from_logits=from_logits)["total"]
        grad = tape.gradient(total, variable)
        assert np.isfinite(float(total))
        assert grad is not None and np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("jit", [False, True])
def test_top_k_sum_keeps_each_rows_own_k_with_and_without_xla(jit: bool) -> None:
    """``top_k`` outside XLA, a sort under it: the same sums, and gradients on the kept entries."""
    from ssd.loss import _top_k_sum

    values = tf.constant([[5.0, 1.0, 3.0, 0.0], [2.0, 2.5, 9.0, 1.0]])

    @tf.function(jit_compile=jit)
    def run(values: tf.Tensor, k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(values)
            sums = _top_k_sum(values, k)
            total = tf.reduce_sum(sums)
        return sums, tape.gradient(total, values)

    sums, grad = run(values, tf.constant([2, 0]))
    np.testing.assert_allclose(sums.numpy(), [8.0, 0.0])
    np.testing.assert_allclose(grad.numpy(), [[1, 0, 1, 0], [0, 0, 0, 0]])
    sums, grad = run(values, tf.constant([4, 3]))
    np.testing.assert_allclose(sums.numpy(), [9.0, 13.5])
    np.testing.assert_allclose(grad.numpy(), [[1, 1, 1, 1], [1, 1, 1, 0]])
