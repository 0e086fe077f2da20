"""Limits on what the server agrees to train, beyond what ``ssd.config`` checks field by field.

``ssd.config`` bounds each value on its own (image size <= 1024, steps <= 10^7, ...); together
they can still describe a job no machine here finishes: millions of priors, tens of GiB of
activations, or 10^10 training images. These checks reject such configs at submit time with a
:class:`ssd.config.ConfigError` naming the field to change, which the API answers as a 422.
"""

from __future__ import annotations

from ssd.config import BASE_LAYERS, BLOCK_WIDTHS, Config, ConfigError, layer_stride
from ssd.priors import feature_size

BYTES_PER_VALUE = 4
# Conv output + BatchNorm output kept for the backward pass, their gradients, and slack for
# the optimizer and the input pipeline: a rough factor, enough to tell 2 GiB from 200 GiB.
ACTIVATION_FACTOR = 6


def prior_count(config: Config) -> int:
    """Prior boxes of a config: per source layer, cells times shapes per cell."""
    size = config.data.image_size
    return sum(
        feature_size(size, stride) ** 2 * per_cell
        for stride, per_cell in zip(config.priors.strides, config.priors.priors_per_cell, strict=True)
    )


def memory_estimate(config: Config) -> float:
    """Rough bytes a training step needs: base-network activations and the per-prior tensors."""
    size, units, batch = config.data.image_size, config.model.num_units, config.train.batch_size
    per_image = 0
    for name in BASE_LAYERS[::2]:  # conv{b}_{i}; the norm layer after it has the same shape
        block = int(name[-3])
        per_image += feature_size(size, layer_stride(name)) ** 2 * units * BLOCK_WIDTHS[block - 1]
    per_image *= ACTIVATION_FACTOR
    channels = config.model.num_classes + 1 + 4
    per_image += prior_count(config) * channels * ACTIVATION_FACTOR
    return float(per_image * batch * BYTES_PER_VALUE)


def check_limits(config: Config, *, max_priors: int, max_memory_gib: float, max_train_images: int) -> None:
    """Raise :class:`ConfigError` naming the field when a config exceeds a limit."""
    priors = prior_count(config)
    if priors > max_priors:
        raise ConfigError(
            "priors",
            f"{priors} prior boxes exceed the limit of {max_priors}: use fewer scales or ratios, "
            "larger strides or a smaller data.image_size",
        )
    gib = memory_estimate(config) / 2**30
    if gib > max_memory_gib:
        raise ConfigError(
            "train.batch_size",
            f"a step would need about {gib:.0f} GiB (limit {max_memory_gib:g}): lower train.batch_size, "
            "data.image_size or model.num_units",
        )
    images = config.train.steps * config.train.batch_size
    if images > max_train_images:
        raise ConfigError(
            "train.steps",
            f"steps * batch_size = {images} training images exceed the limit of {max_train_images}",
        )
