"""A recipe fitted to the data: the choices a run on an imported dataset makes from its boxes.

The ``default`` preset was tuned on the generator (``mnist``); nothing in it looks at the data.
When a job names an imported dataset and leaves a key unset, :func:`fit_recipe` chooses it from
the training split and says why:

- ``data.image_size``: the smallest of :data:`SIZES` at which the 10th percentile of the boxes'
  shorter sides is at least :data:`MIN_SIDE` px, the smallest box a stride-4 layer's priors
  match at IoU 0.5 wherever it lies (:func:`ssd.prior_grid.full_cover_size`), no larger than the
  images are (upscaling adds no detail) nor than :data:`SIZES`' last;
- ``priors``: fitted to the training boxes at that size by :func:`ssd.suggest.fit`, as many per
  cell as the preset has;
- ``augment.expand``: SSD's zoom-out shrinks boxes by up to its ratio (4 in the preset); where
  that would take the 10th percentile of the boxes' shorter sides below :data:`MIN_SIDE` px at
  the chosen size, the largest ratio that does not (1: off). Boxes smaller than any prior teach
  nothing (on the DeepForest tiles, a 10th percentile of 16 px, this rule's 1.4x ended at mAP@.5
  0.320 against 0.244 with the preset's 4x, one seed each; other seeds spread as widely:
  docs/guide/small-data.md);
- ``train.steps``: for a small dataset, :data:`EPOCHS` passes over it rather than a fixed step
  count (within :data:`MIN_STEPS` .. the preset's steps x :data:`MAX_STEPS_FACTOR`);
- ``train.ema_decay``: for a small dataset trained by one worker, :data:`EMA_DECAY`: the average
  of the weights is what is evaluated, kept and exported, steadier than the last step's weights.

Weight decay is not chosen: on the 200-image raccoon set it did not measurably help.

A key the user set is never changed; the generator gets no choices. NumPy only (no TensorFlow):
the server fits a recipe when a job is submitted, and the choices are kept with the run
(:data:`ssd.checkpoint.RECIPE_FILE`).
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssd.config import from_dict
from ssd.datasets.source import DataSource
from ssd.prior_grid import full_cover_size
from ssd.suggest import fit, priors_section

SIZES = (128, 160, 192, 224, 256, 320, 384)
MIN_SIDE = full_cover_size(4, 0.5)  # 10.9 px
SMALL_DATASET = 2000  # training images: below this, the schedule is counted in epochs
# 150 passes: on the raccoon set 60 epochs gave mAP@.5 0.699, 120 gave 0.754 (docs/guide/small-data.md).
EPOCHS = 150
MIN_STEPS = 600
MAX_STEPS_FACTOR = 3
FIT_IMAGES = 2000  # images whose boxes the choices read (a seeded suggester samples further)
EMA_DECAY = 0.999  # DeepForest tiles: four seeds' mean mAP@.5 0.261 -> 0.283 (docs/guide/small-data.md)
EMA_REASON = (
    f"fewer than {SMALL_DATASET} training images: an average of the weights is evaluated, kept and "
    "exported, steadier on small data than the last step's weights"
)


@dataclass(frozen=True)
class Choice:
    """One key the recipe set: its dotted name, its value and the reason in words."""

    key: str
    value: Any
    reason: str

    @property
    def text(self) -> str:
        """``key = value: reason`` (a priors section without its strides)."""
        return f"{self.key} = {_short(self.value)}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "reason": self.reason, "text": self.text}


def _given(data: Mapping[str, Any], section: str, key: str) -> bool:
    part = data.get(section)
    return isinstance(part, Mapping) and key in part


def fit_recipe(data: Mapping[str, Any], source: DataSource) -> tuple[dict[str, Any], list[Choice]]:
    """``data`` (a config mapping bound to ``source``) with the keys it leaves unset chosen from the
    dataset, and the choices made. The generator's configs come back as they are.

    Raises:
        ssd.config.ConfigError: ``data`` is no valid config (as :func:`ssd.config.from_dict`).
    """
    out = copy.deepcopy(dict(data))
    config = from_dict(out)
    if source.meta.get("builtin"):
        return out, []
    choices = [Choice(**c) for c in _data_choices(out, source)]
    for choice in choices:
        if choice.key == "priors":
            out["priors"] = {**out.get("priors", {}), **choice.value}
        else:
            section, key = choice.key.split(".")
            out.setdefault(section, {})[key] = choice.value
    config = from_dict(out)
    train_images = source.size("train") or 0
    small = 0 < train_images < SMALL_DATASET
    if small and not _given(data, "train", "steps"):
        steps, reason = choose_steps(train_images, config.train.batch_size, config.train.steps)
        out.setdefault("train", {})["steps"] = steps
        choices.append(Choice("train.steps", steps, reason))
    if small and not _given(data, "train", "ema_decay") and config.train.workers == 1:
        out.setdefault("train", {})["ema_decay"] = EMA_DECAY
        choices.append(Choice("train.ema_decay", EMA_DECAY, EMA_REASON))
    from_dict(out)  # every choice is a valid config
    return out, choices


_CACHE: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 16


def _data_choices(data: dict[str, Any], source: DataSource) -> list[dict[str, Any]]:
    """The choices read from the boxes (``data.image_size``, ``priors``, ``augment.expand``) as ``Choice`` keyword
    dicts; cached by the dataset and the sections they depend on, so a sweep's jobs, which differ
    in other keys, fit once (a 5,000-image dataset takes seconds)."""
    sections = {k: data.get(k) for k in ("data", "model", "priors", "matching", "augment", "seed", "preset")}
    key = json.dumps([source.meta.get("id"), source.meta.get("created"), sections], sort_keys=True, default=str)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return copy.deepcopy(_CACHE[key])
    made = _fit_data_choices(data, source)
    with _CACHE_LOCK:
        _CACHE[key] = made
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return copy.deepcopy(made)


def _fit_data_choices(data: dict[str, Any], source: DataSource) -> list[dict[str, Any]]:
    out = copy.deepcopy(data)
    config = from_dict(out)
    made: list[dict[str, Any]] = []
    n_boxes = source.count("train", FIT_IMAGES)
    boxes = source.boxes(config, "train", n_boxes)
    if not boxes.valid.any():
        return made
    if not _given(data, "data", "image_size"):
        size, reason = choose_image_size(boxes.boxes[boxes.valid], config.data.image_size, _image_side(source))
        out.setdefault("data", {})["image_size"] = size
        made.append({"key": "data.image_size", "value": size, "reason": reason})
        if size != config.data.image_size:
            config = from_dict(out)
            boxes = source.boxes(config, "train", n_boxes)
    if not (_given(data, "priors", "scales") or _given(data, "priors", "ratios")):
        fitted = fit(boxes, config, per_cell=max(config.priors.priors_per_cell), seed=config.seed)
        section = priors_section(fitted.suggestion.priors)
        before = fitted.before.matched / max(fitted.before.num_gt, 1)
        after = fitted.after.matched / max(fitted.after.num_gt, 1)
        reason = (
            f"fitted to {fitted.after.num_gt} training boxes at {config.data.image_size} px: they match a "
            f"prior at IoU {config.matching.iou_threshold:g} {before:.1%} -> {after:.1%}"
        )
        made.append({"key": "priors", "value": section, "reason": reason})
    if not _given(data, "augment", "expand"):
        p10 = shorter_side_p10(boxes.boxes[boxes.valid])
        chosen = choose_expand(p10, config.data.image_size, config.augment.expand)
        if chosen is not None:
            made.append({"key": "augment.expand", "value": chosen[0], "reason": chosen[1]})
    return made


def shorter_side_p10(boxes: np.ndarray) -> float:
    """The 10th percentile of the shorter sides of boxes ``[N, 4]`` pixel ``xyxy``, in pixels."""
    return float(np.percentile(np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 10))


def choose_expand(p10: float, image_size: int, preset: float) -> tuple[float, str] | None:
    """The zoom-out ratio for boxes whose shorter sides' 10th percentile is ``p10`` px at
    ``image_size`` px, and why; None where the preset's ratio keeps it at :data:`MIN_SIDE` px."""
    limit = p10 / MIN_SIDE
    if limit >= preset:
        return None
    ratio = max(1.0, math.floor(limit * 10) / 10)  # one decimal, rounded down: never below MIN_SIDE
    at = f"the 10th percentile of the boxes' shorter sides is {p10:.1f} px at {image_size} px"
    shrunk = f"zoom-out by up to {preset:g}x would take it to {p10 / preset:.1f} px, below {MIN_SIDE:.1f} px"
    if ratio == 1.0:
        return 1.0, f"{at}: {shrunk}, so zoom-out is off"
    return ratio, f"{at}: {shrunk}; {ratio:g}x keeps it above"


def choose_image_size(boxes: np.ndarray, image_size: int, image_side: float | None) -> tuple[int, str]:
    """The input size for boxes ``[N, 4]`` pixel ``xyxy`` at ``image_size`` px, and why.

    ``image_side``: the images' median side in pixels (None: unknown), the size past which a
    larger input only upscales.
    """
    p10 = shorter_side_p10(boxes) / image_size  # share of the input side
    cap = SIZES[-1]
    if image_side is not None:
        cap = max(SIZES[0], min(cap, next((s for s in SIZES if s >= image_side), SIZES[-1])))
    fits = [s for s in SIZES if s <= cap and p10 * s >= MIN_SIDE]
    size = fits[0] if fits else cap
    at = f"the 10th percentile of the boxes' shorter sides is {p10 * size:.1f} px at {size} px"
    if fits:
        why = f"{at}, at least {MIN_SIDE:.1f} px (the smallest box a stride-4 layer's priors match anywhere)"
        if size > SIZES[0]:
            why += f"; at {SIZES[0]} px it would be {p10 * SIZES[0]:.1f} px"
        return size, why
    limit = "the images' own size" if image_side is not None and cap < SIZES[-1] else "the largest size chosen"
    return size, f"{at} ({limit}); smaller boxes than {MIN_SIDE:.1f} px may be missed"


def choose_steps(train_images: int, batch_size: int, preset_steps: int) -> tuple[int, str]:
    """Steps for :data:`EPOCHS` passes over ``train_images`` at ``batch_size``, within bounds; and why."""
    wanted = math.ceil(EPOCHS * train_images / batch_size)
    top = preset_steps * MAX_STEPS_FACTOR
    steps = min(max(wanted, MIN_STEPS), top)
    why = f"{EPOCHS} epochs of {train_images} training images at batch {batch_size}"
    if steps != wanted:
        why += f" would be {wanted} steps; kept within {MIN_STEPS}..{top}"
    return steps, why


def _image_side(source: DataSource) -> float | None:
    """The median of the training images' longer sides, where the dataset records them."""
    records = [source.record("train", i) for i in range(min(source.size("train") or 0, FIT_IMAGES))]
    sides = [max(r.width, r.height) for r in records if r is not None]
    return float(np.median(sides)) if sides else None


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items() if k != "strides") + "}"
    return str(value)
