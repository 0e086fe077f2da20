"""Tests for ssd.model: the notebook's layer names, widths, strides and the output layout."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from ssd.config import BASE_LAYERS, ModelConfig, PriorConfig, layer_stride
from ssd.model import build_base_network, build_ssd
from ssd.priors import make_priors

UNITS = 2
SIZE = 32


@pytest.fixture(scope="module")
def base() -> keras.Model:
    return build_base_network(UNITS, (SIZE, SIZE, 3))


def test_layer_names(base: keras.Model) -> None:
    names = {layer.name for layer in base.layers}
    assert set(BASE_LAYERS) <= names
    assert {"conv1_3", "norm5_2"} <= names and "conv1_4" not in names and "conv2_3" not in names


def test_filters_follow_the_block_widths(base: keras.Model) -> None:
    for b, width in enumerate((1, 2, 4, 8, 8), start=1):
        for i in range(1, 4 if b == 1 else 3):
            assert base.get_layer(f"conv{b}_{i}").filters == UNITS * width
            assert base.get_layer(f"norm{b}_{i}").output.shape[-1] == UNITS * width


def test_source_layer_strides(base: keras.Model) -> None:
    for name in BASE_LAYERS:
        side = math.ceil(SIZE / layer_stride(name))
        assert tuple(base.get_layer(name).output.shape[1:3]) == (side, side), name
    assert tuple(base.get_layer("norm3_2").output.shape[1:3]) == (SIZE // 4, SIZE // 4)


def test_output_shape_matches_the_priors() -> None:
    model_config = ModelConfig(num_units=UNITS, num_classes=4)
    prior_config = PriorConfig(scales=((6.0, 10.0), (16.0, 24.0), (30.0, 40.0)), ratios=(0.5, 1.0, 2.0))
    model = build_ssd(model_config, prior_config, image_size=SIZE)
    assert prior_config.priors_per_cell == (6, 6, 6)  # 2 scales x 3 ratios
    for name in model_config.source_layers:
        assert model.get_layer(f"{name}_clf").filters == 6 * (4 + 1)
        assert model.get_layer(f"{name}_loc").filters == 6 * 4
    out = model(np.zeros((2, SIZE, SIZE, 3), np.float32), training=False)
    num_priors = len(make_priors(prior_config, SIZE))
    assert num_priors == 6 * (8 * 8 + 4 * 4 + 2 * 2)
    assert tuple(out.shape) == (2, num_priors, 4 + 1 + 4)


def test_any_input_size_when_none_is_fixed() -> None:
    model = build_ssd(
        ModelConfig(num_units=UNITS, source_layers=("norm3_2",), num_classes=1),
        PriorConfig(strides=(4,), scales=((8.0,),), ratios=(1.0,)),
    )
    for size in (16, 24):
        out = model(np.zeros((1, size, size, 3), np.float32), training=False)
        assert tuple(out.shape) == (1, (size // 4) ** 2, 1 + 1 + 4)


def test_fused_batchnorm_matches_keras_batchnorm() -> None:
    """Same output, gradients and moving statistics as Keras' own layer (float32)."""
    import numpy as np
    import tensorflow as tf

    from ssd.layers import FusedBatchNormalization

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, size=(4, 6, 5, 3)).astype(np.float32))
    ours, ref = FusedBatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    ours.build(x.shape)
    ref.build(x.shape)
    for layer in (ours, ref):
        layer.gamma.assign([1.0, 2.0, 0.5])
        layer.beta.assign([0.0, -1.0, 3.0])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_ours, y_ref = ours(x, training=True), ref(x, training=True)
        w = tf.constant(rng.normal(size=(4, 6, 5, 3)).astype(np.float32))
        l_ours, l_ref = tf.reduce_sum(y_ours * w), tf.reduce_sum(y_ref * w)
    np.testing.assert_allclose(y_ours, y_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tape.gradient(l_ours, x), tape.gradient(l_ref, x), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(tape.gradient(l_ours, ours.gamma), tape.gradient(l_ref, ref.gamma), rtol=1e-3)
    # moving = 0.9 * init + 0.1 * batch statistics (biased variance, as Keras).
    mean = tf.reduce_mean(x, axis=[0, 1, 2])
    np.testing.assert_allclose(ours.moving_mean, 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_mean, ref.moving_mean, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_variance, 0.9 + 0.1 * tf.math.reduce_variance(x, axis=[0, 1, 2]), rtol=1e-5)
    np.testing.assert_allclose(ours.moving_variance, ref.moving_variance, rtol=1e-5)
    # Inference uses the moving statistics, exactly as Keras.
    np.testing.assert_allclose(ours(x, training=False), ref(x, training=False), rtol=1e-5, atol=1e-5)


def test_fused_batchnorm_runs_in_bfloat16() -> None:
    import numpy as np
    import tensorflow as tf

    from ssd.layers import FusedBatchNormalization

    layer = FusedBatchNormalization(dtype="mixed_bfloat16")
    x = tf.constant(np.arange(2 * 3 * 3 * 2, dtype=np.float32).reshape(2, 3, 3, 2))
    y = layer(x, training=True)
    assert y.dtype == tf.bfloat16
    assert abs(float(tf.reduce_mean(tf.cast(y, tf.float32)))) < 0.05
