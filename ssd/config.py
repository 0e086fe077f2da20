"""Typed training configuration, validated on construction.

One document configures a run: ``ssdboard train --config`` and the body of ``POST /api/jobs``
take the same keys (see DESIGN.md). Every key is optional. Two named presets exist:

- ``notebook``: the tutorial notebook's exact set-up (priors, threshold-only matching, no
  variances, constant Adam learning rate). Kept so its behaviour can be reproduced.
- ``default``: what reaches validation mAP@.5 0.95 on two CPU cores in under 6 minutes
  (see docs/guide/training.md, "Training recipe"). Used whenever no preset is named.

A bad value raises :class:`ConfigError` whose ``field`` is the dotted key, e.g.
``priors.strides``; the CLI and the REST layer show that name to the user.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_type_hints

from ssd.backbones import BACKBONES, stride_of
from ssd.sections import (
    BASE_LAYERS,
    BLOCK_WIDTHS,
    DEFAULT_UNITS,
    MAX_BATCH,
    MAX_IMAGE_SIZE,
    MAX_STEPS,
    MNIST_DIGIT_SIZE,
    AugmentConfig,
    ConfigError,
    DataConfig,
    DetectConfig,
    LossConfig,
    MatchingConfig,
    ModelConfig,
    PriorConfig,
    TrainConfig,
    _check,
    layer_stride,
    paper_scales,
    printable_text,
)

__all__ = [
    "BASE_LAYERS",
    "BLOCK_WIDTHS",
    "DEFAULT_UNITS",
    "MAX_BATCH",
    "MAX_IMAGE_SIZE",
    "MAX_STEPS",
    "MNIST_DIGIT_SIZE",
    "PRESETS",
    "SECTIONS",
    "AugmentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DetectConfig",
    "LossConfig",
    "MatchingConfig",
    "ModelConfig",
    "PriorConfig",
    "TrainConfig",
    "from_dict",
    "layer_stride",
    "load",
    "paper_scales",
    "printable_text",
    "read_mapping",
    "scale_groups",
]


@dataclass(frozen=True)
class Config:
    """A whole training run."""

    name: str = "ssd"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    priors: PriorConfig = field(default_factory=PriorConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)

    def __post_init__(self) -> None:
        _check(0 < len(self.name) <= 200, "name", "must be 1..200 characters")
        _check(
            printable_text(self.name),
            "name",
            "must be text without control characters, bidirectional controls or lone surrogates",
        )
        _check(0 <= self.seed < 2**31, "seed", "must be in 0..2^31-1")
        layers, p = self.model.source_layers, self.priors
        if not p.scales:  # "auto"
            scales = paper_scales(len(layers), self.data.image_size, p.min_scale, p.max_scale)
            p = dataclasses.replace(p, scales=scales)
        _check(
            len(p.scales) == len(layers),
            "priors.scales",
            f'needs one entry per source layer ({len(layers)}), got {len(p.scales)}; or "auto"',
        )
        if not p.strides:  # the source layers' own
            p = dataclasses.replace(p, strides=self.model.strides)
        _check(
            len(p.strides) == len(layers),
            "priors.strides",
            f"needs one entry per source layer ({len(layers)}), got {len(p.strides)}",
        )
        object.__setattr__(self, "priors", p)
        _check(
            self.train.freeze_backbone_steps == 0 or self.model.init != "none",
            "train.freeze_backbone_steps",
            "freezes the weights model.init loads; with model.init none the backbone is random",
        )
        for i, (layer, stride) in enumerate(zip(layers, p.strides, strict=True)):
            own = stride_of(self.model.backbone, layer)
            _check(own == stride, "priors.strides", f"entry {i} is {stride} but source layer {layer} has stride {own}")
            # A layer of stride s has a ceil(size / s) map: 1x1 from s >= size on. One 1x1 layer
            # is the paper's last; a second (s >= 2 * size) would only repeat it.
            _check(
                stride < 2 * self.data.image_size,
                "data.image_size",
                f"{self.data.image_size} px is too small for source layer {layer} (stride {stride}): the "
                f"layer before it already has a 1x1 map; use fewer extra layers or a larger image",
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "priors": PriorConfig,
    "matching": MatchingConfig,
    "loss": LossConfig,
    "data": DataConfig,
    "augment": AugmentConfig,
    "train": TrainConfig,
    "detect": DetectConfig,
}

T = TypeVar("T")


def _coerce(value: Any, annotation: Any, field: str) -> Any:
    """Convert a JSON value to ``annotation``, raising ConfigError naming ``field``."""
    origin = getattr(annotation, "__origin__", None)
    args = get_args(annotation)
    if annotation is bool:
        _check(isinstance(value, bool), field, f"must be true or false, got {value!r}")
        return value
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok or (isinstance(value, float) and value.is_integer())
        _check(ok, field, f"must be a whole number, got {value!r}")
        return int(value)
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        _check(ok and math.isfinite(float(value)), field, f"must be a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        _check(isinstance(value, str), field, f"must be a string, got {value!r}")
        return value
    if origin is Literal:
        _check(value in args, field, f"must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        _check(isinstance(value, list | tuple), field, f"must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], field) for v in value)
        _check(len(value) == len(args), field, f"must have {len(args)} entries, got {len(value)}")
        return tuple(_coerce(v, a, field) for v, a in zip(value, args, strict=True))
    if args and type(None) in args:  # Optional[...]
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _coerce(value, inner, field)
    raise TypeError(f"unsupported annotation {annotation!r} for {field}")


def _build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    _check(isinstance(data, Mapping), prefix or "config", "must be an object")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        _check(key in names, dotted, "unknown field")
        if key in SECTIONS and not prefix:
            kwargs[key] = _build(SECTIONS[key], value, key)
        elif cls is PriorConfig and key == "scales" and value == "auto":
            kwargs[key] = ()  # filled by Config from the layers and the image size
        elif cls is PriorConfig and key == "scales":
            _check(isinstance(value, list | tuple), dotted, 'must be a list or "auto"')
            kwargs[key] = tuple(
                _coerce(v if isinstance(v, list | tuple) else [v], tuple[float, ...], dotted) for v in value
            )
        else:
            kwargs[key] = _coerce(value, hints[key], dotted)
    return cls(**kwargs)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` on top, section by section (nested mappings merge, other values
    replace): a preset under a config, a draft over a job's config."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# Overrides on top of the dataclass defaults (which are the notebook's values).
PRESETS: dict[str, dict[str, Any]] = {
    "notebook": {"name": "notebook"},
    "default": {
        "name": "default",
        "priors": {"scales": [[10, 16], [25, 36], [48, 64]], "ratios": [0.35, 0.6, 1.0]},
        "matching": {"force_best": True, "variances": [0.1, 0.2]},
        # Half the training digits resized nearest-neighbour: trained on the antialiased filter
        # alone, the detector scored 0.920 on independently drawn nearest-neighbour digits and
        # 0.979 on the same images drawn bilinear; with the mix, 0.973 (docs/guide/training.md).
        "data": {"train_nearest": 0.5},
        # Issue 15's recipe (docs/guide/training.md): batch 16 at 2e-3 reaches mAP@.5 0.95 in
        # 14,400 images where batch 32 at 1e-3 needed 28,800; evaluations every 200 steps feed the
        # dashboard's mAP chart; with the checkpoints they cost 3% of the run's time.
        "train": {
            "steps": 1200,
            "batch_size": 16,
            "learning_rate": 2e-3,
            "schedule": "cosine",
            "warmup_steps": 100,
            "precision": "auto",
            "xla": "auto",
            "eval_every": 200,
        },
    },
}


def from_dict(data: Mapping[str, Any] | None = None) -> Config:
    """Build a :class:`Config` from a JSON-like mapping.

    ``preset`` (``"default"`` when absent) chooses the base; the other keys override it.
    Unknown keys and bad values raise :class:`ConfigError` naming the dotted field.
    """
    data = dict(data or {})
    preset = data.pop("preset", "default")
    _check(
        isinstance(preset, str) and preset in PRESETS, "preset", f"must be one of {', '.join(PRESETS)}, got {preset!r}"
    )
    merged = copy.deepcopy(merge(PRESETS[preset], data))  # the defaults below must not touch PRESETS
    priors = merged.setdefault("priors", {})
    if isinstance(priors, dict):
        priors.setdefault("strides", [])  # the source layers' own (Config fills them)
    _backbone_defaults(merged, data)
    try:
        return _build(Config, merged, "")
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # pragma: no cover - a bug in a section's checks
        raise ConfigError("config", str(exc)) from exc


def _backbone_defaults(merged: dict[str, Any], data: Mapping[str, Any]) -> None:
    """Give a keras.applications backbone what the notebook's values would not fit, for each key
    the caller did not set: its extra layers, ``priors.scales = "auto"`` and its ratios."""
    model = merged.get("model")
    if not isinstance(model, dict):
        return
    backbone = model.get("backbone", "notebook")
    # A backbone that is no string (a list from a sweep's values) is _build's to refuse, naming it.
    if not isinstance(backbone, str) or backbone not in set(BACKBONES) - {"notebook"}:
        return
    spec = BACKBONES[backbone]
    given_model, given_priors = data.get("model"), data.get("priors")
    if not (isinstance(given_model, Mapping) and "extra_layers" in given_model):
        # The paper's extra layers down to the first 1x1 map, no further (see Config's check).
        data_section = merged.get("data")
        size = data_section.get("image_size", DataConfig.image_size) if isinstance(data_section, Mapping) else 0
        size = size if isinstance(size, int) and size > 0 else DataConfig.image_size
        fits = [k for k in range(spec.default_extra_layers + 1) if spec.last_stride * 2**k < 2 * size]
        model["extra_layers"] = max(fits, default=0)
    priors = merged.setdefault("priors", {})
    given = given_priors if isinstance(given_priors, Mapping) else {}
    if isinstance(priors, dict) and "scales" not in given:
        priors["scales"] = "auto"
        if "ratios" not in given:
            priors["ratios"] = list(spec.default_ratios)


def load(path: str | Path) -> Config:
    """Read a ``.toml`` or ``.json`` config file."""
    return from_dict(read_mapping(path))


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping a ``.toml`` or ``.json`` config file holds, before presets and checks."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{path} is not valid TOML: {exc}") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("config", f"{path} is not valid JSON: {exc}") from exc
    _check(isinstance(data, dict), "config", f"{path} must hold an object")
    return dict(data)


def scale_groups(scales: Sequence[float | Sequence[float]]) -> tuple[tuple[float, ...], ...]:
    """Normalise ``[10, [25, 32]]`` to ``((10.0,), (25.0, 32.0))``."""
    return tuple(tuple(float(x) for x in (s if isinstance(s, Sequence) else [s])) for s in scales)
