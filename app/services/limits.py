"""Limits on what the server agrees to train, beyond what ``ssd.config`` checks field by field.

``ssd.config`` bounds each value on its own (image size <= 1024, steps <= 10^7, ...); together
they can still describe a job no machine here finishes: millions of priors, tens of GiB of
memory, or 10^10 training images. These checks reject such configs at submit time with a
:class:`ssd.config.ConfigError` naming the field to change, which the API answers as a 422.

The memory check uses :func:`memory_estimate`, a model of a training worker's peak resident
memory fitted to measured peaks (``python -m benchmarks.memory``; the table and the test that
holds the estimate to it are in ``tests/app/test_limits.py``). NumPy-free and TensorFlow-free:
the server never imports TensorFlow.
"""

from __future__ import annotations

from ssd import precision
from ssd.backbones import BACKBONES, EXTRA_WIDTH, extra_name
from ssd.config import BASE_LAYERS, BLOCK_WIDTHS, Config, ConfigError, layer_stride
from ssd.priors import feature_size

GIB = 2**30

# The constants below were fitted (least squares on the relative error) to the peaks that
# ``python -m benchmarks.memory --fit`` measured on two cores of an AMD EPYC with TensorFlow 2 on
# CPU; each multiplies a size the training step really allocates (:func:`memory_sizes`), so the
# estimate grows as the worker does with every field (batch, image size, width, priors, objects).

# A process that imported TensorFlow, Keras and ``ssd.train`` and built nothing (measured VmHWM).
BASELINE_BYTES = int(0.63 * GIB)
# Fitted: the built model, traced train and eval functions, the tf.data runtime, oneDNN caches.
FIXED_BYTES = int(0.07 * GIB)
# Per value of a conv output (the base network's 11 convs, per image of the batch): the conv +
# ReLU output and the BatchNorm output kept for the backward pass, and their gradients, in the
# compute dtype (bf16 under ``mixed_bfloat16``, with float32 statistics and some float32 casts).
# "auto" counts as what this machine's CPU gets; float16 is taken to cost what bf16 does.
ACTIVATION_BYTES = {"float32": 10.1, "mixed_bfloat16": 4.2, "mixed_float16": 4.2}
# Per weight: the float32 variable, its gradient, Adam's two slots, the bf16 cast under mixed
# precision, and the NumPy copies a checkpoint makes of the weights and slots while writing.
PARAM_BYTES = 31
# Per [B, P, num_classes + 1 + 4] value (P priors), about 11 float32 copies: y_true as the input
# pipeline holds it (two batches matched at once, two prefetched, one training), the head's
# outputs and their float32 concatenation, the loss's slices, log-softmax and products, their
# gradients, and hard-negative mining's sort of the per-prior losses.
PRIOR_BYTES = 45
# Per [B, K, P] value (K = data.max_digits ground-truth slots, padded), about 10 float32 copies:
# matching's IoU matrix and what box_iou builds on the way ([B, K, P, 2] corner maxima and
# minima, widths and heights, intersection, union), the masked IoU and force_best's masks, for
# the two batches the input pipeline matches at once (``num_parallel_calls=2``). Evaluation
# matches at most 64 images eagerly, never more than a training batch: it does not raise the peak.
MATCH_BYTES = 39
# Per input pixel channel: the uint8 batch as the pipeline buffers it (generated, loaded,
# matched, prefetched twice: 5 bytes) and its float32 copy scaled to 0..1.
INPUT_BYTES = 5 + 4


def prior_count(config: Config) -> int:
    """Prior boxes of a config: per source layer, cells times shapes per cell."""
    size = config.data.image_size
    return sum(
        feature_size(size, stride) ** 2 * per_cell
        for stride, per_cell in zip(config.priors.strides, config.priors.priors_per_cell, strict=True)
    )


def _conv_layers(config: Config) -> list[tuple[str, int, int, int]]:
    """``(name, side, in_channels, out_channels)`` of each conv of the notebook's base network."""
    size, units = config.data.image_size, config.model.num_units
    out, channels = [], 3
    for name in BASE_LAYERS[::2]:  # conv{b}_{i}; the norm layer after it has the same shape
        width = units * BLOCK_WIDTHS[int(name[-3]) - 1]
        out.append((name, feature_size(size, layer_stride(name)), channels, width))
        channels = width
    return out


def _extra_layers(config: Config) -> list[tuple[str, int, int, int, int]]:
    """``(name, side, in_channels, out_channels, kernel)`` of each conv of the extra layers."""
    model, size = config.model, config.data.image_size
    spec = BACKBONES[model.backbone]
    if model.backbone == "notebook":
        channels = width = model.num_units * BLOCK_WIDTHS[-1]
    else:
        channels, width = spec.channels[list(spec.layers)[-1]], EXTRA_WIDTH
    out = []
    for k in range(1, model.extra_layers + 1):
        before, side = feature_size(size, spec.last_stride * 2 ** (k - 1)), feature_size(size, spec.last_stride * 2**k)
        out += [
            (f"{extra_name(k)}_reduce", before, channels, width // 2, 1),
            (extra_name(k), side, width // 2, width, 3),
        ]
        channels = width
    return out


def _source_channels(config: Config) -> dict[str, int]:
    """Channels of every layer a head can attach to."""
    model = config.model
    if model.backbone == "notebook":
        channels = {name.replace("conv", "norm"): c_out for name, _, _, c_out in _conv_layers(config)}
    else:
        channels = dict(BACKBONES[model.backbone].channels)
    channels.update({name: c_out for name, _, _, c_out, _ in _extra_layers(config)})
    return channels


def conv_values(config: Config) -> int:
    """Conv output values of one image: the base network's and the extra layers'."""
    if config.model.backbone == "notebook":
        base = sum(side * side * c_out for _, side, _, c_out in _conv_layers(config))
    else:
        base = round(BACKBONES[config.model.backbone].conv_values * config.data.image_size**2)
    return base + sum(side * side * c_out for _, side, _, c_out, _ in _extra_layers(config))


def param_count(config: Config) -> int:
    """Weights of the model of :func:`ssd.model.build_ssd`: base network, extra layers and heads."""
    if config.model.backbone == "notebook":
        total = sum(9 * c_in * c_out + c_out + 4 * c_out for _, _, c_in, c_out in _conv_layers(config))  # conv + BN
    else:
        total = BACKBONES[config.model.backbone].params
    total += sum(k * k * c_in * c_out + c_out for _, _, c_in, c_out, k in _extra_layers(config))
    total += 4 * sum(c_out for _, _, _, c_out, k in _extra_layers(config) if k == 3)  # their BatchNorms
    width = _source_channels(config)
    classes = config.model.num_classes + 1
    for layer, per_cell in zip(config.model.source_layers, config.priors.priors_per_cell, strict=True):
        outputs = per_cell * (classes + 4)  # the class conv and the offset conv
        total += 9 * width[layer] * outputs + outputs
    return total


def memory_sizes(config: Config, max_objects: int | None = None) -> dict[str, int]:
    """What each per-value constant multiplies: counts of values a training step holds.

    ``activations``: conv output values of a batch; ``weights``: parameters; ``priors``:
    ``B * P * (num_classes + 1 + 4)``; ``matching``: ``B * K * P``; ``input``: ``B * S * S * 3``.
    ``max_objects`` is K, the ground-truth slots of a batch: ``data.max_digits`` for the
    generator, the most boxes an image has for an imported dataset (the caller knows it).
    """
    b, s = config.train.batch_size, config.data.image_size
    k = config.data.max_digits if max_objects is None else max_objects
    priors = prior_count(config)
    return {
        "activations": b * conv_values(config),
        "weights": param_count(config),
        "priors": b * priors * (config.model.num_classes + 5),
        "matching": b * k * priors,
        "input": b * s * s * 3,
    }


def memory_terms(config: Config, max_objects: int | None = None) -> dict[str, float]:
    """Bytes of each part of :func:`memory_estimate` (what to lower when the sum is too large)."""
    sizes = memory_sizes(config, max_objects)
    per_value = {
        "activations": ACTIVATION_BYTES[
            precision.choose(config.train.precision, backbone=config.model.backbone).policy
        ],
        "weights": PARAM_BYTES,
        "priors": PRIOR_BYTES,
        "matching": MATCH_BYTES,
        "input": INPUT_BYTES,
    }
    terms = {"baseline": float(BASELINE_BYTES + FIXED_BYTES)}
    terms.update({name: float(size * per_value[name]) for name, size in sizes.items()})
    return terms


def memory_estimate(config: Config, max_objects: int | None = None) -> float:
    """Peak resident bytes of a training worker for ``config`` (its whole process)."""
    return sum(memory_terms(config, max_objects).values())


# What to lower, per term of the estimate (the largest term's advice comes first).
_ADVICE = {
    "activations": "data.image_size, model.num_units or model.backbone",
    "priors": "data.image_size, priors.scales or priors.ratios, or use sources with larger strides",
    "matching": "data.max_digits, data.image_size or the priors per cell",
    "weights": "model.num_units, model.backbone or model.extra_layers",
    "input": "data.image_size",
}


def check_limits(
    config: Config,
    *,
    max_priors: int,
    max_memory_gib: float,
    max_train_images: int,
    max_objects: int | None = None,
) -> None:
    """Raise :class:`ConfigError` naming the field when a config exceeds a limit.

    ``max_objects``: ground-truth boxes per image when not ``data.max_digits`` (an imported dataset).
    """
    priors = prior_count(config)
    if priors > max_priors:
        raise ConfigError(
            "priors",
            f"{priors} prior boxes exceed the limit of {max_priors}: use fewer scales or ratios, "
            "larger strides or a smaller data.image_size",
        )
    terms = memory_terms(config, max_objects)
    gib = sum(terms.values()) / GIB
    if gib > max_memory_gib:
        largest = max((t for t in terms if t in _ADVICE), key=terms.__getitem__)
        raise ConfigError(
            "train.batch_size",
            f"training would need about {gib:.1f} GiB (limit {max_memory_gib:.1f} GiB; "
            f"{largest} {terms[largest] / GIB:.1f} GiB): lower train.batch_size, or {_ADVICE[largest]}",
        )
    images = config.train.steps * config.train.batch_size
    if images > max_train_images:
        raise ConfigError(
            "train.steps",
            f"steps * batch_size = {images} training images exceed the limit of {max_train_images}",
        )
