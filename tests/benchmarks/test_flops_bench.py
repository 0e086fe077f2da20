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


def test_depthwise_pointwise_and_separable_by_hand() -> None:
    # MobileNetV2's pieces on an 8x8x3 input:
    # dw:  3x3 depthwise, multiplier 2, 'same' -> 8x8x6: 2 * 64 * 9 * 3 * 2 = 6912
    # pw:  1x1 conv 6 -> 4, 8x8:                         2 * 64 * 6 * 4     = 3072
    # sep: 3x3 separable, stride 2, 4 -> 5, 4x4 out: depthwise 2 * 16 * 9 * 4 = 1152
    #      plus pointwise 2 * 16 * 4 * 5 = 640
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(inputs)
    x = keras.layers.Conv2D(4, 1, name="pw")(x)
    model = keras.Model(inputs, keras.layers.SeparableConv2D(5, 3, strides=2, padding="same", name="sep")(x))
    assert conv_flops(model) == {"dw": 6912, "pw": 3072, "sep": 1152 + 640}
    prof = profiler_flops(model, 8)
    if prof is None:
        pytest.skip("the TF profiler is unavailable")
    # TensorFlow runs the separable layer as a depthwise op and a Conv2D: the same split.
    assert prof["DepthwiseConv2dNative"] == 6912 + 1152
    assert prof["Conv2D"] == 3072 + 640
