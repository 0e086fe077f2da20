"""The keras.applications backbones and the SSD paper's extra feature layers (TensorFlow).

:mod:`ssd.backbones` says what each backbone offers (layer names, strides) without building it;
this module builds them. Each network takes RGB pixels in 0..255 and applies the input scaling
its ImageNet weights were trained with, so every backbone is fed the same images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf
from keras import layers

from ssd.backbones import extra_name
from ssd.config import ConfigError
from ssd.layers import FusedBatchNormalization

# Caffe-style ImageNet means (BGR) that keras.applications.resnet50.preprocess_input subtracts.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="ssd")
class CaffePreprocess(layers.Layer):
    """RGB 0..255 -> BGR minus the ImageNet mean: ResNet-50's input, as ``preprocess_input``."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x = keras.ops.cast(inputs, self.compute_dtype)
        return keras.ops.flip(x, axis=-1) - keras.ops.convert_to_tensor(CAFFE_BGR_MEAN, self.compute_dtype)


@contextlib.contextmanager
def _dtype_policy(dtype: str | None) -> Iterator[None]:
    """keras.applications builds its layers under the global policy: set it for the build only."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype or "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def _application(name: str) -> Any:
    return {"mobilenet_v2": keras.applications.MobileNetV2, "resnet50": keras.applications.ResNet50}[name]


def keras_backbone(
    name: str, weights: str, input_shape: tuple[int | None, int | None, int], dtype: str | None = None
) -> keras.Model:
    """``mobilenet_v2`` or ``resnet50`` without its classifier, on an input named ``image``.

    Every layer keeps its Keras name, so ``get_layer("out_relu")`` finds a source layer.
    ``weights="imagenet"`` uses Keras' own download and cache (``~/.keras/models``).

    Raises:
        ConfigError: on ``model.weights`` when the ImageNet weights cannot be fetched or read.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    if name == "mobilenet_v2":
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale", dtype=dtype)(inputs)  # to -1..1
    else:
        x = CaffePreprocess(name="rescale", dtype=dtype)(inputs)
    with _dtype_policy(dtype):
        try:
            net = _application(name)(input_tensor=x, include_top=False, weights=None if weights == "none" else weights)
        except Exception as exc:  # Keras raises a bare Exception for a failed download
            if weights == "none":
                raise
            if weights != "imagenet":
                raise ConfigError("model.init", f"the weights file {weights} does not fit {name}: {exc}") from exc
            raise ConfigError(
                "model.weights",
                f"the ImageNet weights of {name} could not be had ({exc}); this machine may not reach the "
                f"internet: download Keras' weights file once and set model.init to its path, or put it in "
                f'~/.keras/models, or use "none"',
            ) from exc
    return keras.Model(inputs, net.output, name=f"{name}_backbone")


def add_extra_layers(
    base: keras.Model, count: int, width: int, dtype: str | None = None, fused_batchnorm: bool = True
) -> keras.Model:
    """The SSD paper's extra feature layers after ``base``'s output: each a 1x1 conv to ``width / 2``
    channels and a 3x3 stride-2 conv to ``width`` (ReLU, BatchNorm), named ``extra1`` .. ``extraN``
    (the BatchNorm; the convs are ``extraK_reduce`` and ``extraK_conv``).

    'same' padding: a map of side n becomes ``ceil(n / 2)``, down to 1x1.
    """
    norm = FusedBatchNormalization if fused_batchnorm else layers.BatchNormalization
    x = base.output
    for k in range(1, count + 1):
        name = extra_name(k)
        x = layers.Conv2D(max(width // 2, 1), 1, activation="relu", name=f"{name}_reduce", dtype=dtype)(x)
        x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name=f"{name}_conv", dtype=dtype)(x)
        x = norm(name=name, dtype=dtype)(x)
    return keras.Model(base.input, x, name=f"{base.name}_extra")
