"""The SSD: a base network (the notebook's VGG-like one, or a keras.applications backbone,
:mod:`ssd.backbones`), the paper's extra feature layers, and a multibox head on named source layers.

Input: uint8 or float [B, H, W, 3] RGB pixels in 0..255 (each backbone scales them inside).
Output: float32 [B, P, num_classes + 1 + 4] = class **logits** (background last), then the 4
predicted offsets, in the prior order of :mod:`ssd.priors`. Apply a softmax over the first
``num_classes + 1`` channels for probabilities (:func:`ssd.detect.split_predictions` does).
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from ssd.backbone_nets import add_extra_layers, keras_backbone
from ssd.backbones import EXTRA_WIDTH
from ssd.checkpoint import init_kind
from ssd.config import BLOCK_WIDTHS, ModelConfig, PriorConfig
from ssd.layers import FusedBatchNormalization


def build_base_network(
    num_units: int = 16,
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    dtype: str | None = None,
    fused_batchnorm: bool = True,
) -> keras.Model:
    """Five blocks of 3x3 conv + ReLU + BatchNorm, ``num_units * BLOCK_WIDTHS`` (1, 2, 4, 8, 8) filters.

    Block 1 has three convs, blocks 2-5 two, of which the second has stride 2. Layers are named
    ``conv{b}_{i}`` and ``norm{b}_{i}``; ``norm{b}_2`` has stride ``2 ** (b - 1)`` for b >= 2.
    Input: uint8 or float [B, H, W, 3] pixels in 0..255 (scaled to 0..1 inside). ``dtype`` is a
    Keras dtype policy such as ``"mixed_bfloat16"`` (bf16 compute runs on AMX/AVX-512 here).
    """
    # ``fused_batchnorm=False`` gives Keras' own layer (same variables): the notebook's code as is.
    norm = FusedBatchNormalization if fused_batchnorm else layers.BatchNormalization
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale", dtype=dtype)(inputs)
    for b, width in enumerate(BLOCK_WIDTHS, start=1):
        for i in range(1, 4 if b == 1 else 3):
            stride = 2 if (b >= 2 and i == 2) else 1
            x = layers.Conv2D(
                num_units * width,
                3,
                strides=stride,
                padding="same",
                activation="relu",
                name=f"conv{b}_{i}",
                dtype=dtype,
            )(x)
            x = norm(name=f"norm{b}_{i}", dtype=dtype)(x)
    return keras.Model(inputs, x, name="base_network")


def attach_multibox_head(
    base: keras.Model,
    source_layers: tuple[str, ...],
    priors_per_cell: tuple[int, ...],
    num_classes: int,
    dtype: str | None = None,
) -> keras.Model:
    """Per source layer, a 3x3 conv to ``A * (num_classes + 1)`` logits and one to ``A * 4`` offsets.

    Each is reshaped ``[B, H, W, A * C] -> [B, H * W * A, C]`` (row, column, prior shape: the
    prior order) and the layers are concatenated.
    """
    clf, loc = [], []
    for name, a in zip(source_layers, priors_per_cell, strict=True):
        feature = base.get_layer(name).output
        c = layers.Conv2D(a * (num_classes + 1), 3, padding="same", name=f"{name}_clf", dtype=dtype)(feature)
        r = layers.Conv2D(a * 4, 3, padding="same", name=f"{name}_loc", dtype=dtype)(feature)
        clf.append(layers.Reshape((-1, num_classes + 1), name=f"{name}_clf_flat")(c))
        loc.append(layers.Reshape((-1, 4), name=f"{name}_loc_flat")(r))
    clf_all = layers.Concatenate(axis=1, name="clf")(clf) if len(clf) > 1 else clf[0]
    loc_all = layers.Concatenate(axis=1, name="loc")(loc) if len(loc) > 1 else loc[0]
    out = layers.Concatenate(axis=-1, name="predictions", dtype="float32")([clf_all, loc_all])
    return keras.Model(base.input, out, name="ssd")


def backbone_weights(model: ModelConfig) -> str:
    """What keras.applications loads for ``model.init``: ``"imagenet"``, a weights file's path, or
    ``"none"`` (no init, or a run's weights, which :func:`ssd.init.apply_init` copies after)."""
    kind = init_kind(model.init)
    if kind == "imagenet":
        return "imagenet"
    return str(Path(model.init).expanduser()) if kind == "file" else "none"


def build_ssd(
    model: ModelConfig,
    priors: PriorConfig,
    image_size: int | None = None,
    dtype: str | None = None,
    fused_batchnorm: bool = True,
    *,
    pretrained: bool = True,
) -> keras.Model:
    """The whole detector for a config; ``image_size`` fixes the input shape (None: any size).

    ``pretrained=True`` gives a keras.applications backbone the weights ``model.init`` names for
    it: ``imagenet`` or a weights file (:func:`backbone_weights`); ``pretrained=False`` skips them
    (a checkpoint's weights follow). Weights from another run are :func:`ssd.init.apply_init`'s.
    The output is float32 whatever ``dtype`` policy the layers compute in.

    Raises:
        ssd.config.ConfigError: on ``model.weights`` when the ImageNet weights cannot be had.
    """
    shape = (image_size, image_size, 3)
    if model.backbone == "notebook":
        base = build_base_network(model.num_units, shape, dtype, fused_batchnorm)
        extra_width = model.num_units * BLOCK_WIDTHS[-1]
    else:
        base = keras_backbone(model.backbone, backbone_weights(model) if pretrained else "none", shape, dtype)
        extra_width = EXTRA_WIDTH
    if model.extra_layers:
        base = add_extra_layers(base, model.extra_layers, extra_width, dtype, fused_batchnorm)
    return attach_multibox_head(base, model.source_layers, priors.priors_per_cell, model.num_classes, dtype)
