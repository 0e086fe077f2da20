"""Tests for ssd.boxes: hand-worked IoU, format conversions and the SSD offset coding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssd.boxes import box_area, box_iou, cxcywh_to_xyxy, decode, encode, xyxy_to_cxcywh


def _np(x: object) -> np.ndarray:
    return np.asarray(x)


@pytest.mark.parametrize(
    ("a", "b", "iou"),
    [
        ((0, 0, 4, 4), (0, 0, 4, 4), 1.0),  # identical
        ((0, 0, 2, 2), (3, 3, 5, 5), 0.0),  # disjoint
        ((0, 0, 2, 2), (2, 0, 4, 2), 0.0),  # sharing an edge only
        ((0, 0, 2, 2), (1, 0, 3, 2), 1 / 3),  # half of each overlaps: 2 / (4 + 4 - 2)
        ((0, 0, 4, 4), (1, 1, 3, 3), 0.25),  # contained: 4 / 16
        ((0, 0, 10, 10), (0, 0, 10, 5), 0.5),  # 50 / 100
        ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7),  # corner overlap: 1 / (4 + 4 - 1)
    ],
)
def test_iou_hand_worked(a: tuple[float, ...], b: tuple[float, ...], iou: float) -> None:
    got = _np(box_iou(np.array([a], np.float32), np.array([b], np.float32)))
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx(iou, abs=1e-7)
    assert _np(box_iou(np.array([b], np.float32), np.array([a], np.float32)))[0, 0] == pytest.approx(iou, abs=1e-7)


def test_iou_shapes_and_degenerate_boxes() -> None:
    a = np.array([[0, 0, 2, 2], [0, 0, 4, 4]], np.float32)
    b = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [5, 5, 5, 5]], np.float32)
    expected = [[1.0, 1 / 3, 0.0], [4 / 16, 4 / 16, 0.0]]  # (1, 0, 3, 2) lies inside (0, 0, 4, 4)
    np.testing.assert_allclose(_np(box_iou(a, b)), expected, atol=1e-7)
    # A zero-area box against itself has an empty union: 0, not NaN.
    assert _np(box_iou(b[2:], b[2:]))[0, 0] == 0.0
    # Leading batch dimensions on the first argument broadcast against [M, 4].
    batched = _np(box_iou(np.stack([a, a[::-1]]), b))
    assert batched.shape == (2, 2, 3)
    np.testing.assert_allclose(batched[1], np.array(expected)[::-1], atol=1e-7)


def test_area() -> None:
    np.testing.assert_array_equal(_np(box_area(np.array([[0, 0, 2, 3], [4, 4, 2, 2]], np.float32))), [6.0, 0.0])


def test_conversions() -> None:
    xyxy = np.array([[2, 2, 6, 10], [-1, 0, 1, 1]], np.float32)
    cxcywh = np.array([[4, 6, 4, 8], [0, 0.5, 2, 1]], np.float32)
    np.testing.assert_array_equal(_np(xyxy_to_cxcywh(xyxy)), cxcywh)
    np.testing.assert_array_equal(_np(cxcywh_to_xyxy(cxcywh)), xyxy)


def test_encode_hand_worked() -> None:
    # gt (2, 2, 6, 10): centre (4, 6), size 4x8; prior (0, 0, 4, 4): centre (2, 2), size 4x4.
    # ((4 - 2) / 4, (6 - 2) / 4, log(4 / 4), log(8 / 4)).
    gt = np.array([2, 2, 6, 10], np.float32)
    prior = np.array([0, 0, 4, 4], np.float32)
    np.testing.assert_allclose(_np(encode(gt, prior)), [0.5, 1.0, 0.0, math.log(2)], rtol=1e-6)
    # Paper variances divide centre offsets by 0.1 and size offsets by 0.2.
    np.testing.assert_allclose(_np(encode(gt, prior, (0.1, 0.2))), [5.0, 10.0, 0.0, math.log(2) / 0.2], rtol=1e-6)
    # A prior equal to the box encodes to zeros.
    np.testing.assert_array_equal(_np(encode(prior, prior)), [0.0, 0.0, 0.0, 0.0])


def test_encode_broadcasts_priors() -> None:
    gt = np.array([[2, 2, 6, 10], [0, 0, 4, 4]], np.float32)
    prior = np.array([0, 0, 4, 4], np.float32)
    got = _np(encode(gt, prior))
    assert got.shape == (2, 4)
    np.testing.assert_allclose(got[0], [0.5, 1.0, 0.0, math.log(2)], rtol=1e-6)


def test_decode_hand_worked() -> None:
    prior = np.array([0, 0, 4, 4], np.float32)
    np.testing.assert_allclose(_np(decode([0.5, 1.0, 0.0, math.log(2)], prior)), [2, 2, 6, 10], rtol=1e-6)
    np.testing.assert_allclose(
        _np(decode([5.0, 10.0, 0.0, math.log(2) / 0.2], prior, (0.1, 0.2))), [2, 2, 6, 10], rtol=1e-6
    )


@pytest.mark.parametrize("variances", [None, (0.1, 0.2)])
def test_decode_inverts_encode(variances: tuple[float, float] | None) -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (64, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 50, (64, 2))], axis=1).astype(np.float32)
    pxy = rng.uniform(0, 100, (64, 2))
    priors = np.concatenate([pxy, pxy + rng.uniform(4, 60, (64, 2))], axis=1).astype(np.float32)
    np.testing.assert_allclose(_np(decode(encode(boxes, priors, variances), priors, variances)), boxes, atol=1e-3)


def test_decode_keeps_wild_sizes_finite() -> None:
    prior = np.array([0, 0, 4, 4], np.float32)
    box = _np(decode([0.0, 0.0, 1000.0, 1000.0], prior))
    assert np.all(np.isfinite(box))
    np.testing.assert_allclose(box[2] - box[0], 4 * math.exp(10), rtol=1e-5)
