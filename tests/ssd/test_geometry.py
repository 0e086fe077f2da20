"""Tests for ssd.geometry: NumPy box geometry, on hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest

from ssd.geometry import box_area, box_size, image_hw, intersection, iou, xyxy_to_xywh


def test_image_hw() -> None:
    assert image_hw(128) == (128, 128)
    assert image_hw(np.int64(64)) == (64, 64)
    assert image_hw((32, 48)) == (32, 48)
    hw = image_hw((np.int32(3), np.int64(5)))
    assert hw == (3, 5) and all(type(v) is int for v in hw)


def test_box_area_and_size() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 9, 14], [3, 3, 3, 8], [10, 0, 0, 10]], np.float32)
    area = box_area(boxes)
    assert area.dtype == np.float32
    np.testing.assert_array_equal(area, [100, 36, 0, 0])  # empty and inverted boxes: 0
    size = box_size(boxes)
    assert size.dtype == np.float32
    np.testing.assert_array_equal(size, [10, 6, 0, 0])
    assert box_area([[0, 0, 2, 3]], dtype=np.float64).dtype == np.float64
    assert box_area(np.zeros((2, 3, 4))).shape == (2, 3)


def test_intersection_hand_worked() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [10, 0, 20, 10], [2, 2, 4, 4], [-5, -5, 5, 5]], np.float32)
    # overlap 5 x 10; touching edges; contained 2 x 2; corner 5 x 5
    np.testing.assert_array_equal(intersection(a, b), [[50, 0, 4, 25]])


def test_iou_hand_worked() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [2, 2, 4, 4], [-5, -5, 5, 5]], np.float32)
    out = iou(a, b)
    assert out.dtype == np.float32 and out.shape == (2, 5)
    # two 10x10 boxes overlapping by 5 px in x: 50 / (100 + 100 - 50); identical: 1; disjoint: 0;
    # a 2x2 box inside: 4 / 100; quarter overlap at the corner: 25 / (100 + 100 - 25)
    expected = [50 / 150, 1.0, 0.0, 4 / 100, 25 / 175]
    np.testing.assert_allclose(out, [expected, expected], rtol=1e-6)
    np.testing.assert_allclose(iou(b, a), out.T, rtol=1e-6)  # symmetric


def test_iou_empty_union_and_empty_inputs() -> None:
    point = np.array([[3, 3, 3, 3]], np.float32)
    assert iou(point, point).tolist() == [[0.0]]  # no NaN from 0 / 0
    assert iou(np.zeros((0, 4)), point).shape == (0, 1)
    assert iou(point, np.zeros((0, 4))).shape == (1, 0)


def test_iou_dtype_and_batch() -> None:
    a = [[0.0, 0.0, 10.0, 10.0]]
    b = [[0.0, 0.0, 10.0, 5.0]]
    f64 = iou(a, b, dtype=np.float64)
    assert f64.dtype == np.float64 and f64[0, 0] == 0.5
    batch = np.stack([np.asarray(a, np.float32), np.asarray([[0, 0, 5, 10]], np.float32)])  # [2, 1, 4]
    out = iou(batch, b)
    assert out.shape == (2, 1, 1)
    np.testing.assert_allclose(out[:, 0, 0], [0.5, 25 / 75], rtol=1e-6)


def test_iou_equals_box_iou() -> None:
    from ssd.boxes import box_iou  # TensorFlow: the reference this NumPy version must equal

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (2, 40, 2)).astype(np.float32)
    wh = rng.uniform(0, 20, (2, 40, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], axis=-1)
    np.testing.assert_allclose(iou(boxes[0], boxes[1]), box_iou(boxes[0], boxes[1]).numpy(), atol=1e-6)


def test_xyxy_to_xywh() -> None:
    out = xyxy_to_xywh(np.array([[1.5, 2, 11.5, 7]], np.float32))
    assert out.dtype == np.float64
    assert out.tolist() == [[1.5, 2.0, 10.0, 5.0]]
    assert xyxy_to_xywh(np.zeros((0, 4))).shape == (0, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_intersection_dtype(dtype: type) -> None:
    assert intersection([[0, 0, 1, 1]], [[0, 0, 1, 1]], dtype=dtype).dtype == dtype
