"""benchmarks.flops: FLOP counting by hand-worked layers and against TensorFlow's profiler."""

from __future__ import annotations

import keras
import pytest

from benchmarks.flops import conv_flops, forward_flops, profiler_flops


def test_conv_flops_hand_worked() -> None:
    # One 3x3 conv, 2 -> 4 channels, 8x8 'same': 2 * 8 * 8 * (3 * 3 * 2) * 4 = 9216.
    inputs = keras.Input((8, 8, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", name="c")(inputs))
    assert conv_flops(model) == {"c": 9216}
    assert forward_flops(model) == 9216


def test_profiler_agrees_on_conv_flops() -> None:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, padding="same", name="a")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", name="b")(x))
    prof = profiler_flops(model, 8)
    if prof is None:
        pytest.skip("the TF profiler is unavailable")
    assert prof["Conv2D"] == forward_flops(model) == 2 * 64 * 9 * (3 * 2 + 2 * 4)
    assert prof["total"] >= prof["Conv2D"]


def test_conv_flops_stride_valid_and_dense() -> None:
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="s")(inputs)  # 4x4x4 out
    x = keras.layers.Conv2D(6, 3, padding="valid", name="v")(x)  # 2x2x6 out
    x = keras.layers.Dense(5, name="d")(x)  # per position 4 -> ... 6 -> 5
    model = keras.Model(inputs, keras.layers.BatchNormalization()(x))
    assert conv_flops(model) == {
        "s": 2 * 4 * 4 * 9 * 2 * 4,
        "v": 2 * 2 * 2 * 9 * 4 * 6,
        "d": 2 * 2 * 2 * 6 * 5,
    }
