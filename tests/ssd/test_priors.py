"""Tests for ssd.priors: counts, hand-listed boxes, rounding and the one prior order."""

from __future__ import annotations

import numpy as np

from ssd.config import PriorConfig
from ssd.priors import feature_size, make_priors, prior_shapes


def test_notebook_set_up_on_128_pixels() -> None:
    layout = make_priors(PriorConfig(), 128)
    # seed/NOTES.md: 3 x (32^2 + 16^2 + 8^2) = 4032.
    assert len(layout) == 4032
    assert layout.grid == ((32, 32), (16, 16), (8, 8))
    assert layout.boxes.shape == (4032, 4) and layout.boxes.dtype == np.float32
    for name in ("layer", "row", "col", "shape"):
        assert getattr(layout, name).shape == (4032,) and getattr(layout, name).dtype == np.int32
    assert np.bincount(layout.layer).tolist() == [3 * 32 * 32, 3 * 16 * 16, 3 * 8 * 8]


def test_tiny_case_by_hand() -> None:
    # An 8x8 image, stride 4 -> a 2x2 grid with centres at 2 and 6; scale 4 with ratio 1 gives
    # 4x4, with ratio 4 gives w = 4 * 2 = 8, h = 4 / 2 = 2.
    layout = make_priors(PriorConfig(strides=(4,), scales=((4.0,),), ratios=(1.0, 4.0)), 8)
    expected = [
        [0, 0, 4, 4],  # row 0, col 0, centre (2, 2): 4x4
        [-2, 1, 6, 3],  #                              8x2
        [4, 0, 8, 4],  # row 0, col 1, centre (6, 2)
        [2, 1, 10, 3],
        [0, 4, 4, 8],  # row 1, col 0, centre (2, 6)
        [-2, 5, 6, 7],
        [4, 4, 8, 8],  # row 1, col 1, centre (6, 6)
        [2, 5, 10, 7],
    ]
    np.testing.assert_array_equal(layout.boxes, np.array(expected, np.float32))
    assert layout.row.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert layout.col.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert layout.shape.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert layout.layer.tolist() == [0] * 8
    assert layout.grid == ((2, 2),)
    np.testing.assert_array_equal(layout.shapes[0], [[4, 4], [8, 2]])


def test_shapes_are_rounded_like_the_notebook() -> None:
    # w = round(scale * sqrt(ratio)), h = round(scale / sqrt(ratio)); e.g. 10 * sqrt(0.4) = 6.32 -> 6,
    # 10 / sqrt(0.4) = 15.81 -> 16.
    ratios = (0.4, 0.8, 1.2)
    np.testing.assert_array_equal(prior_shapes((10.0,), ratios), [[6, 16], [9, 11], [11, 9]])
    np.testing.assert_array_equal(prior_shapes((25.0,), ratios), [[16, 40], [22, 28], [27, 23]])
    np.testing.assert_array_equal(prior_shapes((40.0,), ratios), [[25, 63], [36, 45], [44, 37]])
    # Scale-major, then ratio; never below one pixel (1 * sqrt(0.05) = 0.22 -> 1).
    np.testing.assert_array_equal(prior_shapes((4.0, 1.0), (1.0, 0.05)), [[4, 4], [1, 18], [1, 1], [1, 4]])
    assert prior_shapes((10.0,), ratios).dtype == np.float32


def test_feature_size_rounds_up() -> None:
    assert feature_size(128, 4) == 32
    assert feature_size(10, 4) == 3  # 'same' padding keeps the partial cell
    assert feature_size(3, 8) == 1


def test_order_is_layer_then_row_major_then_shape() -> None:
    config = PriorConfig(strides=(4, 8), scales=((6.0,), (12.0, 20.0)), ratios=(0.5, 1.0, 2.0))
    layout = make_priors(config, 20)
    assert layout.grid == ((5, 5), (3, 3))
    counts = [5 * 5 * 3, 3 * 3 * 6]
    assert len(layout) == sum(counts)
    assert layout.layer.tolist() == [0] * counts[0] + [1] * counts[1]

    # Within a layer the flat index is (row * cols + col) * A + shape: the head's reshape order.
    start = 0
    for index, ((rows, cols), a) in enumerate(zip(layout.grid, config.priors_per_cell, strict=True)):
        sl = slice(start, start + rows * cols * a)
        k = np.arange(rows * cols * a)
        np.testing.assert_array_equal(layout.row[sl], k // (cols * a))
        np.testing.assert_array_equal(layout.col[sl], (k // a) % cols)
        np.testing.assert_array_equal(layout.shape[sl], k % a)
        assert np.all(layout.layer[sl] == index)
        start = sl.stop

    # Box centres lie on the cell given by row/col, sizes are the shape given by `shape`.
    # Stride 4 divides 20: centres 2, 6, .., 18. Stride 8 does not: 3 cells spread over 20 px,
    # centres (k + 0.5) * 20 / 3 = 3.33, 10, 16.67.
    centre = {0: lambda k: 2 + 4 * k, 1: lambda k: (k + 0.5) * 20 / 3}
    cx = (layout.boxes[:, 0] + layout.boxes[:, 2]) / 2
    cy = (layout.boxes[:, 1] + layout.boxes[:, 3]) / 2
    for index in (0, 1):
        mine = layout.layer == index
        np.testing.assert_allclose(cx[mine], centre[index](layout.col[mine]), atol=1e-5)
        np.testing.assert_allclose(cy[mine], centre[index](layout.row[mine]), atol=1e-5)
    wh = layout.boxes[:, 2:] - layout.boxes[:, :2]
    for i in range(len(layout)):
        np.testing.assert_array_equal(wh[i], layout.shapes[layout.layer[i]][layout.shape[i]])
