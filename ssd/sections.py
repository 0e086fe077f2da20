"""The sections of a training config, one frozen dataclass each, validated on construction.

:mod:`ssd.config` assembles them into a :class:`~ssd.config.Config`, parses JSON and TOML into
them and holds the presets; import from there (it re-exports every name here). The dataclass
defaults are the tutorial notebook's values. A bad value raises :class:`ConfigError` whose
``field`` is the dotted key, e.g. ``priors.strides``.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Literal

from ssd.backbones import (
    BACKBONE_NAMES,
    BACKBONES,
    MAX_EXTRA_LAYERS,
    NOTEBOOK_LAYERS,
    BackboneName,
    extra_index,
    layer_names,
    notebook_stride,
    stride_of,
)
from ssd.precision import PRECISIONS, XLA_MODES, Requested, XlaRequested

MAX_IMAGE_SIZE = 1024
MAX_STEPS = 10_000_000
MAX_BATCH = 4096
MAX_WORKERS = 16
MAX_INIT_LENGTH = 1000
MAX_BUDGET_MINUTES = 7 * 24 * 60
JOB_PREFIX = "job:"  # model.init = "job:<id>": another run's weights (ssd.init)


class ConfigError(ValueError):
    """A configuration value is invalid; ``field`` is its dotted key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise ConfigError(field, message)


# Bidirectional controls (U+202A-U+202E, U+2066-U+2069): the "Trojan Source" characters
# (CVE-2021-42574) that make a name display as another.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable_text(text: str) -> bool:
    """Whether ``text`` holds no control character (NUL, newline, ...), no lone surrogate and no
    bidirectional control.

    Such a name cannot be stored everywhere (PostgreSQL refuses NUL, UTF-8 refuses surrogates)
    nor shown on a page as typed (a right-to-left override makes it read as another name). The
    one rule for names given to the API and names read from a dataset.
    """
    if text.isprintable():  # C speed, and false for every character refused below
        return True
    return not any(ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def layer_stride(name: str) -> int:
    """Stride in pixels of a notebook-network layer named ``conv{b}_{i}`` or ``norm{b}_{i}``.

    Blocks 2-5 halve the resolution in their second conv, so ``norm3_2`` has stride 4.
    Raises ``KeyError`` for a name that is not a layer of the base network.
    """
    if name not in BASE_LAYERS:
        raise KeyError(name)
    return notebook_stride(name)


BASE_LAYERS: tuple[str, ...] = NOTEBOOK_LAYERS
# Filters of block b's convs: num_units * BLOCK_WIDTHS[b - 1] (ssd.model.build_base_network).
BLOCK_WIDTHS: tuple[int, ...] = (1, 2, 4, 8, 8)
DEFAULT_UNITS = 16


@dataclass(frozen=True)
class ModelConfig:
    """The base network, the layers the multibox heads attach to, and the classes.

    ``source_layers`` left empty means the backbone's defaults (:data:`ssd.backbones.BACKBONES`);
    ``extra1`` .. ``extraN`` are the SSD paper's extra feature layers (``extra_layers = N``).
    """

    backbone: BackboneName = "notebook"
    weights: Literal["none", "imagenet"] = "none"  # imagenet: Keras' own download, or an error naming this key
    # Where the weights start (ssd.init): none, imagenet, job:<id>, a checkpoint directory, or
    # a Keras weights file of the backbone. "imagenet" and model.weights say the same thing.
    init: str = "none"
    num_units: int = DEFAULT_UNITS  # the notebook network's width; the others have their own
    extra_layers: int = 0
    source_layers: tuple[str, ...] = ()
    num_classes: int = 10

    def __post_init__(self) -> None:
        _check(
            self.backbone in BACKBONES,
            "model.backbone",
            f"must be one of {', '.join(BACKBONE_NAMES)}, got {self.backbone!r}",
        )
        spec = BACKBONES[self.backbone]
        _check(self.weights in ("none", "imagenet"), "model.weights", "must be 'none' or 'imagenet'")
        _check(
            0 < len(self.init) <= MAX_INIT_LENGTH and printable_text(self.init),
            "model.init",
            "must be none, imagenet, job:<id>, a checkpoint directory or a Keras weights file "
            f"(1..{MAX_INIT_LENGTH} printable characters)",
        )
        # model.weights is the older name of model.init = "imagenet": either says it, both agree.
        _check(
            self.weights == "none" or self.init in ("none", "imagenet"),
            "model.weights",
            f"is imagenet but model.init is {self.init!r}: set one of them",
        )
        if self.weights == "imagenet" or self.init == "imagenet":
            object.__setattr__(self, "weights", "imagenet")
            object.__setattr__(self, "init", "imagenet")
        _check(
            self.weights == "none" or spec.pretrained,
            "model.weights",
            f"the {self.backbone} backbone has no ImageNet weights (mobilenet_v2 and resnet50 do)",
        )
        _check(
            not self.init.startswith(JOB_PREFIX) or len(self.init) > len(JOB_PREFIX),
            "model.init",
            "job: needs a job id, e.g. job:3f2a9c1b",
        )
        _check(1 <= self.num_units <= 256, "model.num_units", f"must be in 1..256, got {self.num_units}")
        _check(
            self.backbone == "notebook" or self.num_units == DEFAULT_UNITS,
            "model.num_units",
            f"sets the notebook network's width; the {self.backbone} backbone has its own",
        )
        _check(
            0 <= self.extra_layers <= MAX_EXTRA_LAYERS,
            "model.extra_layers",
            f"must be in 0..{MAX_EXTRA_LAYERS}, got {self.extra_layers}",
        )
        if not self.source_layers:
            available = set(layer_names(self.backbone, self.extra_layers))
            object.__setattr__(self, "source_layers", tuple(n for n in spec.default_layers if n in available))
        names = layer_names(self.backbone, self.extra_layers)
        for name in self.source_layers:
            if extra_index(name) is not None and name not in names:
                _check(
                    False,
                    "model.source_layers",
                    f"{name!r} needs model.extra_layers >= {extra_index(name)}, got {self.extra_layers}",
                )
            _check(
                name in names,
                "model.source_layers",
                f"{name!r} is not a layer of the {self.backbone} backbone (one of {', '.join(names)})",
            )
        _check(len(set(self.source_layers)) == len(self.source_layers), "model.source_layers", "has duplicates")
        _check(1 <= self.num_classes <= 1000, "model.num_classes", f"must be in 1..1000, got {self.num_classes}")

    @property
    def strides(self) -> tuple[int, ...]:
        """Stride in pixels of each source layer."""
        return tuple(stride_of(self.backbone, name) for name in self.source_layers)


@dataclass(frozen=True)
class PriorConfig:
    """Prior (default) boxes, one entry of ``strides`` and ``scales`` per source layer.

    A scales entry is one size in pixels or a list of sizes; every size is combined with every
    ratio: ``w = scale * sqrt(ratio)``, ``h = scale / sqrt(ratio)``. Left empty, ``strides``
    follow the source layers; ``scales = "auto"`` (stored empty until the :class:`Config` fills
    it) spreads sizes over the layers by the SSD paper's rule, see :func:`paper_scales`.
    """

    strides: tuple[int, ...] = (4, 8, 16)  # from_dict leaves them empty unless given: the layers' own
    scales: tuple[tuple[float, ...], ...] = ((10.0,), (25.0,), (40.0,))
    ratios: tuple[float, ...] = (0.4, 0.8, 1.2)
    min_scale: float = 0.2  # "auto": the smallest layer's size as a share of the image side
    max_scale: float = 0.9  # "auto": the largest layer's

    def __post_init__(self) -> None:
        for s in self.strides:
            _check(
                isinstance(s, int) and 1 <= s <= 4096, "priors.strides", f"must be whole numbers in 1..4096, got {s}"
            )
        _check(len(self.ratios) > 0, "priors.ratios", "must not be empty")
        for r in self.ratios:
            _check(0.05 <= r <= 20 and math.isfinite(r), "priors.ratios", f"must be in 0.05..20, got {r}")
        _check(
            0 < self.min_scale <= self.max_scale <= 2,
            "priors.min_scale",
            f"must satisfy 0 < min_scale <= max_scale <= 2, got {self.min_scale} and {self.max_scale}",
        )
        _check(
            not self.strides or not self.scales or len(self.scales) == len(self.strides),
            "priors.scales",
            f"needs one entry per stride ({len(self.strides)}), got {len(self.scales)}",
        )
        for group in self.scales:
            _check(len(group) > 0, "priors.scales", "an entry has no sizes")
            for size in group:
                _check(
                    1 <= size <= MAX_IMAGE_SIZE * 2 and math.isfinite(size),
                    "priors.scales",
                    f"must be in 1..{MAX_IMAGE_SIZE * 2}, got {size}",
                )

    @property
    def priors_per_cell(self) -> tuple[int, ...]:
        """Number of prior shapes per cell of each source layer."""
        return tuple(len(g) * len(self.ratios) for g in self.scales)


def paper_scales(num_layers: int, image_size: int, min_scale: float, max_scale: float) -> tuple[tuple[float, ...], ...]:
    """Prior sizes in pixels per layer by the SSD paper's rule (eq. 4).

    ``s_k = s_min + (s_max - s_min) (k - 1) / (m - 1)`` for layers ``k = 1..m``, times the image
    side; each layer gets ``s_k`` and the paper's extra ``sqrt(s_k s_{k+1})``, with
    ``s_{m+1} = s_m + (s_m - s_{m-1})`` at most 1 (the image), rounded to 0.1 px.
    """
    m = num_layers
    s = [min_scale + (max_scale - min_scale) * k / (m - 1) if m > 1 else min_scale for k in range(m)]
    s.append(min(1.0, s[-1] + (s[-1] - s[-2])) if m > 1 else min(1.0, max_scale))
    return tuple((round(s[k] * image_size, 1), round(math.sqrt(s[k] * s[k + 1]) * image_size, 1)) for k in range(m))


@dataclass(frozen=True)
class MatchingConfig:
    """Ground truth to prior assignment (SSD paper, sec. 2.2)."""

    iou_threshold: float = 0.5
    force_best: bool = False  # paper: each ground truth also gets its best prior
    variances: tuple[float, float] | None = None  # paper: (0.1, 0.2); notebook: none
    # Unmatched priors overlapping an object by at least this IoU are ignored, neither positive
    # nor background (RetinaNet: 0.4); null: all are background (SSD, the notebook).
    neg_iou: float | None = None

    def __post_init__(self) -> None:
        _check(
            0.0 < self.iou_threshold <= 1.0, "matching.iou_threshold", f"must be in (0, 1], got {self.iou_threshold}"
        )
        if self.neg_iou is not None:
            _check(
                0.0 < self.neg_iou < self.iou_threshold,
                "matching.neg_iou",
                f"must be in (0, matching.iou_threshold {self.iou_threshold}) or null, got {self.neg_iou}",
            )
        if self.variances is not None:
            _check(
                len(self.variances) == 2 and all(v > 0 for v in self.variances),
                "matching.variances",
                "must be two positive numbers (centre, size) or null",
            )


@dataclass(frozen=True)
class LossConfig:
    """The notebook's loss; see :func:`ssd.loss.loss_components`."""

    alpha: float = 1.0
    pos_neg_ratio: float = 3.0
    normalization: Literal["notebook", "paper"] = "notebook"
    mining: Literal["batch", "image"] = "batch"

    def __post_init__(self) -> None:
        _check(
            0.0 <= self.alpha <= 1000 and math.isfinite(self.alpha),
            "loss.alpha",
            f"must be in 0..1000, got {self.alpha}",
        )
        _check(0.0 <= self.pos_neg_ratio <= 1000, "loss.pos_neg_ratio", f"must be in 0..1000, got {self.pos_neg_ratio}")
        _check(self.normalization in ("notebook", "paper"), "loss.normalization", "must be 'notebook' or 'paper'")
        _check(self.mining in ("batch", "image"), "loss.mining", "must be 'batch' or 'image'")


MNIST_DIGIT_SIZE = 28  # side of an MNIST digit at scale 1 (ssd.data.DIGIT_SIZE)


MAX_LOADER_PROCESSES = 64


@dataclass(frozen=True)
class DataConfig:
    """The training data: the built-in MNIST-detection generator (:mod:`ssd.data`; the digit
    keys below) or an imported dataset (:mod:`ssd.datasets`) named by ``dataset``."""

    dataset: str = "mnist"  # "mnist" (the generator) or an imported dataset's id or name
    image_size: int = 128
    resize: Literal["stretch", "letterbox"] = "stretch"  # imported images to the square input
    min_digits: int = 2
    max_digits: int = 6
    scale_range: tuple[float, float] = (0.8, 2.5)
    val_images: int = 500
    # Training images only: how much of a digit's box another digit may cover (ssd.data's
    # max_cover). Validation keeps the generator's 0.25, so runs stay comparable.
    train_overlap: float = 0.25
    # Training images only: the share of digits resized nearest-neighbour rather than antialiased
    # bilinear (ssd.data's nearest_share), so the detector does not learn one resampling's look.
    train_nearest: float = 0.0
    # Processes making training batches (ssd.loader_pool); -1: auto, none on CPUs, up to 8 with a GPU
    loader_processes: int = -1

    def __post_init__(self) -> None:
        _check(
            0 < len(self.dataset) <= 100 and printable_text(self.dataset),
            "data.dataset",
            "must be 'mnist' or an imported dataset's id or name (1..100 printable characters)",
        )
        _check(self.resize in ("stretch", "letterbox"), "data.resize", "must be 'stretch' or 'letterbox'")
        _check(
            32 <= self.image_size <= MAX_IMAGE_SIZE,
            "data.image_size",
            f"must be in 32..{MAX_IMAGE_SIZE}, got {self.image_size}",
        )
        _check(1 <= self.min_digits <= 50, "data.min_digits", f"must be in 1..50, got {self.min_digits}")
        _check(self.min_digits <= self.max_digits <= 50, "data.max_digits", "must be >= min_digits and <= 50")
        lo, hi = self.scale_range
        _check(0.1 <= lo <= hi <= 10, "data.scale_range", f"must be 0.1 <= low <= high <= 10, got {self.scale_range}")
        digit = round(MNIST_DIGIT_SIZE * hi)
        _check(
            digit <= self.image_size,
            "data.scale_range",
            f"high {hi} makes digits of {digit} px, larger than data.image_size {self.image_size}",
        )
        _check(1 <= self.val_images <= 100_000, "data.val_images", "must be in 1..100000")
        _check(0.0 <= self.train_overlap <= 1.0, "data.train_overlap", f"must be in [0, 1], got {self.train_overlap}")
        _check(0.0 <= self.train_nearest <= 1.0, "data.train_nearest", f"must be in [0, 1], got {self.train_nearest}")
        _check(
            -1 <= self.loader_processes <= MAX_LOADER_PROCESSES,
            "data.loader_processes",
            f"must be -1 (auto) or 0..{MAX_LOADER_PROCESSES}, got {self.loader_processes}",
        )


@dataclass(frozen=True)
class AugmentConfig:
    """SSD augmentation of an imported dataset's training images (paper, sec. 2.2 and 3.6; see
    :mod:`ssd.augment`). The generator draws a fresh image every step and does not use it."""

    photometric: bool = True  # brightness, contrast, saturation, hue
    expand: float = 4.0  # largest zoom-out ratio; 1 turns zoom-out off
    crop: bool = True  # the IoU-constrained random crop
    flip: bool = True  # horizontal flip
    top_down: bool = False  # images taken straight down (aerial, microscopy): vertical flips, quarter turns

    def __post_init__(self) -> None:
        _check(1.0 <= self.expand <= 16.0, "augment.expand", f"must be in 1..16, got {self.expand}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule."""

    steps: int = 1000  # with time_budget: the most steps
    batch_size: int = 32
    learning_rate: float = 1e-3
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0  # capped at steps // 2 when steps is smaller
    weight_decay: float = 0.0
    # Exponential moving average of the weights (ssd.ema): evaluated, kept as best, saved and
    # exported in their stead; 0: off. The decay ramps up as (1 + n) / (10 + n) over the first steps.
    ema_decay: float = 0.0
    # Train only the layers after the backbone (extra layers and heads) for the first N steps:
    # the weights model.init loaded stay as they are while the new layers settle.
    freeze_backbone_steps: int = 0
    eval_every: int = 0  # 0: only at the end
    eval_images: int = 100
    checkpoint_every: int = 200
    # Minutes to train (0: off): the run measures its speed and fits its steps and its schedule to
    # end on time (ssd.budget), train.steps at most.
    time_budget: float = 0.0
    # Stop after this many evaluations (train.eval_every) without a new best mAP@.5; 0: never.
    early_stop_patience: int = 0
    # auto: bf16 on CPUs with bf16 units, float16 + loss scaling on GPUs with tensor cores (ssd.precision)
    precision: Requested = "float32"
    # auto: XLA compiles the training step on GPUs, not on CPUs (ssd.precision.choose_xla)
    xla: XlaRequested = "off"
    # Processes that train one job together, each on a slice of every batch (ssd.distributed).
    workers: int = 1

    def __post_init__(self) -> None:
        _check(1 <= self.steps <= MAX_STEPS, "train.steps", f"must be in 1..{MAX_STEPS}, got {self.steps}")
        _check(
            1 <= self.batch_size <= MAX_BATCH, "train.batch_size", f"must be in 1..{MAX_BATCH}, got {self.batch_size}"
        )
        _check(0 < self.learning_rate <= 10, "train.learning_rate", f"must be in (0, 10], got {self.learning_rate}")
        _check(self.schedule in ("constant", "cosine"), "train.schedule", "must be 'constant' or 'cosine'")
        _check(0 <= self.warmup_steps <= MAX_STEPS, "train.warmup_steps", f"must be in 0..{MAX_STEPS}")
        _check(0 <= self.weight_decay < 1, "train.weight_decay", "must be in [0, 1)")
        _check(
            0 <= self.time_budget <= MAX_BUDGET_MINUTES,
            "train.time_budget",
            f"must be in 0..{MAX_BUDGET_MINUTES} minutes (0: off), got {self.time_budget}",
        )
        _check(0 <= self.ema_decay < 1, "train.ema_decay", f"must be in [0, 1) (0: off), got {self.ema_decay}")
        _check(
            0 <= self.freeze_backbone_steps <= MAX_STEPS,
            "train.freeze_backbone_steps",
            f"must be in 0..{MAX_STEPS}, got {self.freeze_backbone_steps}",
        )
        _check(self.eval_every >= 0, "train.eval_every", "must be >= 0")
        _check(1 <= self.eval_images <= 100_000, "train.eval_images", "must be in 1..100000")
        _check(self.checkpoint_every >= 0, "train.checkpoint_every", "must be >= 0")
        _check(
            0 <= self.early_stop_patience <= MAX_STEPS,
            "train.early_stop_patience",
            f"must be in 0..{MAX_STEPS} (0: off), got {self.early_stop_patience}",
        )
        _check(self.precision in PRECISIONS, "train.precision", f"must be one of {', '.join(PRECISIONS)}")
        _check(self.xla in XLA_MODES, "train.xla", f"must be one of {', '.join(XLA_MODES)}")
        _check(
            self.xla != "on" or self.workers == 1,
            "train.xla",
            "must not be 'on' with train.workers > 1: the workers' collectives run outside XLA",
        )
        _check(1 <= self.workers <= MAX_WORKERS, "train.workers", f"must be in 1..{MAX_WORKERS}, got {self.workers}")
        # Not built for multi-worker training: the average and the frozen step would need the
        # workers' mirrored variables (ssd.distributed).
        single: tuple[tuple[str, float], ...] = (
            ("ema_decay", self.ema_decay),
            ("freeze_backbone_steps", self.freeze_backbone_steps),
            ("time_budget", self.time_budget),
        )
        for name, value in single:
            _check(value == 0 or self.workers == 1, f"train.{name}", "needs train.workers 1 (not built for several)")
        _check(
            self.batch_size % self.workers == 0,
            "train.workers",
            f"must divide train.batch_size ({self.batch_size}): each worker takes an equal slice of a batch",
        )


@dataclass(frozen=True)
class DetectConfig:
    """Post-processing with the SSD paper's defaults."""

    score_threshold: float = 0.01
    nms_iou: float = 0.45
    max_detections: int = 100
    pre_nms_top_k: int = 400

    def __post_init__(self) -> None:
        _check(0 <= self.score_threshold <= 1, "detect.score_threshold", "must be in [0, 1]")
        _check(0 < self.nms_iou <= 1, "detect.nms_iou", "must be in (0, 1]")
        _check(1 <= self.max_detections <= 10_000, "detect.max_detections", "must be in 1..10000")
        _check(1 <= self.pre_nms_top_k <= 100_000, "detect.pre_nms_top_k", "must be in 1..100000")
