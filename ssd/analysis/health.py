"""A run's health: the conditions that make a detector learn little or nothing ("why is my mAP
zero?"), each found in the run's own records and data, with its evidence and the fix to try.

- From the step records (``metrics.jsonl``, the dashboard's metrics): steps whose batch held no
  positive prior (``num_pos == 0``); a loss that became NaN or infinite, or rose far above its best.
- From the evaluations (``evals.jsonl``): validation loss rising while the training loss falls.
- From the data (:class:`ssd.datasets.source.DataSource`) and the priors: ground truths no prior
  can match under the run's matching rule; boxes smaller than the smallest prior; classes with
  too few boxes; the same image in the training and the validation split.

Each check answers a :class:`Check`: ``status`` ``"ok"``, ``"warn"``, ``"fail"`` or ``"skipped"``
(nothing to judge yet, or it does not apply), the ``evidence`` in numbers, and the ``advice``.
NumPy only; the data checks read at most ``max_images`` images' boxes (from the index where
there is one: no image decoded) and hash the image files of an imported dataset.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ssd.coverage import DatasetBoxes, coverage
from ssd.geometry import box_size
from ssd.priors import make_priors

if TYPE_CHECKING:
    from ssd.config import Config
    from ssd.datasets.source import DataSource

__all__ = ["CHECKS", "Check", "check_data", "check_evals", "check_steps", "run_health"]

Status = Literal["ok", "warn", "fail", "skipped"]
CHECKS = (
    "no_positive_priors",
    "loss_diverged",
    "overfitting",
    "unmatched_boxes",
    "boxes_below_smallest_prior",
    "rare_classes",
    "train_val_overlap",
)
RARE_CLASS_BOXES = 10  # fewer training boxes than this: the class is hardly learned
DIVERGED_FACTOR = 2.0  # the recent loss this many times its best (smoothed): it diverged
WINDOW = 50  # steps averaged to judge the loss
MIN_EVALS_RISING = 3  # evaluations in a row with a rising validation loss


@dataclass(frozen=True)
class Check:
    """One condition: its name (one of :data:`CHECKS`), status, evidence and advice."""

    check: str
    status: Status
    evidence: str
    advice: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _value(record: Mapping[str, Any], key: str) -> float:
    """``record[key]`` as a float; NaN where absent or null (a store keeps a NaN loss as null)."""
    value = record.get(key)
    return math.nan if value is None else float(value)


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({100.0 * part / whole:.1f}%)" if whole else "0"


def check_steps(steps: Sequence[Mapping[str, Any]], error: str | None = None) -> list[Check]:
    """``no_positive_priors`` and ``loss_diverged`` from the step records (``num_pos``, ``total``)
    and the run's error, if it failed."""
    out = []
    num_pos = np.array([_value(s, "num_pos") for s in steps], np.float64)
    counted = np.isfinite(num_pos)
    empty = int((num_pos[counted] == 0).sum())
    if not counted.any():
        out.append(Check("no_positive_priors", "skipped", "no step recorded yet", ""))
    else:
        n = int(counted.sum())
        status: Status = "ok" if empty == 0 else ("fail" if empty * 2 >= n else "warn")
        out.append(
            Check(
                "no_positive_priors",
                status,
                f"{_share(empty, n)} steps had no positive prior in their batch"
                + (f"; {float(np.median(num_pos[counted])):.0f} positives a batch at the median" if n else ""),
                ""
                if status == "ok"
                else "the priors cannot match the boxes at this input size: look at the prior "
                "explorer's coverage, run `ssdboard priors suggest`, raise data.image_size, lower "
                "matching.iou_threshold or turn matching.force_best on",
            )
        )
    total = np.array([_value(s, "total") for s in steps], np.float64)
    bad = [int(s["step"]) for s, t in zip(steps, total, strict=True) if not math.isfinite(t)]
    non_finite = bad or (error is not None and ("became nan" in error or "became inf" in error))
    if non_finite:
        where = f"at step {bad[0]}" if bad else f"({error})"
        out.append(
            Check(
                "loss_diverged",
                "fail",
                f"the loss became NaN or infinite {where}",
                "lower train.learning_rate (or lengthen train.warmup_steps), and check the data for degenerate boxes",
            )
        )
    elif len(total) < 2 * WINDOW:
        out.append(Check("loss_diverged", "skipped", f"{len(total)} steps: too few to judge", ""))
    else:
        smooth = np.convolve(total, np.ones(WINDOW) / WINDOW, mode="valid")
        best, last = float(smooth.min()), float(smooth[-1])
        rising = last > DIVERGED_FACTOR * best
        out.append(
            Check(
                "loss_diverged",
                "warn" if rising else "ok",
                f"the training loss ({WINDOW}-step mean) is {last:.3f}, its best {best:.3f}",
                "the loss rose far above its best: lower train.learning_rate or lengthen train.warmup_steps"
                if rising
                else "",
            )
        )
    return out


def check_evals(steps: Sequence[Mapping[str, Any]], evals: Sequence[Mapping[str, Any]]) -> Check:
    """``overfitting``: the validation loss rose over the last :data:`MIN_EVALS_RISING`
    evaluations (and is above its best) while the training loss fell over the same steps."""
    points = [(int(e["step"]), float(e["val_total"])) for e in evals if e.get("val_total") is not None]
    if len(points) < MIN_EVALS_RISING + 1:
        return Check("overfitting", "skipped", f"{len(points)} evaluations: too few to judge", "")
    recent = points[-(MIN_EVALS_RISING + 1) :]
    val = [v for _, v in recent]
    val_rising = all(b > a for a, b in zip(val, val[1:], strict=False)) and val[-1] > min(v for _, v in points)
    first, last = recent[0][0], recent[-1][0]

    def train_near(step: int) -> float:
        window = [_value(s, "total") for s in steps if step - WINDOW < int(s["step"]) <= step]
        window = [v for v in window if math.isfinite(v)]
        return float(np.mean(window)) if window else math.nan

    before, after = train_near(first), train_near(last)
    train_falling = math.isfinite(before) and math.isfinite(after) and after < before
    if val_rising and train_falling:
        return Check(
            "overfitting",
            "warn",
            f"the validation loss rose from {val[0]:.3f} to {val[-1]:.3f} (steps {first}-{last}) while the "
            f"training loss fell from {before:.3f} to {after:.3f}",
            "the model learns the training images, not the task: more data, stronger augmentation "
            "(augment.*), or fewer steps",
        )
    return Check("overfitting", "ok", f"validation loss {val[-1]:.3f} at step {last}, best {min(val):.3f}", "")


def _file_hashes(source: DataSource, split: Literal["train", "val"], limit: int) -> dict[str, str]:
    """Content hash -> file of the first ``limit`` images of an imported split."""
    out: dict[str, str] = {}
    for i in range(min(limit, source.size(split) or 0)):
        record = source.record(split, i)
        root = getattr(source, "root", None)
        if record is None or root is None:
            break
        digest = hashlib.blake2b((root / record.file).read_bytes(), digest_size=16).hexdigest()
        out.setdefault(digest, record.file)
    return out


def rare_classes(data: DatasetBoxes, num_classes: int) -> tuple[np.ndarray, list[int]]:
    """Boxes per class in ``data`` (int [num_classes]) and the classes with fewer than
    :data:`RARE_CLASS_BOXES`, hardly learned (the health check's and the new-job plan's rule)."""
    counts = np.bincount(data.labels[data.valid], minlength=num_classes)
    return counts, [k for k in range(num_classes) if counts[k] < RARE_CLASS_BOXES]


def check_data(config: Config, source: DataSource, *, max_images: int = 2000) -> list[Check]:
    """The data checks: ``unmatched_boxes``, ``boxes_below_smallest_prior``, ``rare_classes``,
    ``train_val_overlap``, on the first ``max_images`` training (and validation) images."""
    out = []
    n = source.count("train", max_images)
    data = source.boxes(config, "train", n)
    layout = make_priors(config.priors, config.data.image_size)
    m = config.matching
    report = coverage(
        data, layout.boxes, np.concatenate(layout.shapes), iou_threshold=m.iou_threshold, force_best=m.force_best
    )
    matched = report.is_matched_forced if m.force_best else report.is_matched
    unmatched = int(report.num_gt - matched.sum())
    share = unmatched / report.num_gt if report.num_gt else 0.0
    rule = "with forced matching" if m.force_best else f"at IoU {m.iou_threshold} (forced matching off)"
    out.append(
        Check(
            "unmatched_boxes",
            "skipped" if not report.num_gt else ("ok" if share <= 0.01 else ("warn" if share <= 0.1 else "fail")),
            f"{_share(unmatched, report.num_gt)} training boxes of {n} images own no prior {rule}",
            ""
            if share <= 0.01
            else "those objects are never learned: fit the priors (`ssdboard priors suggest`, "
            "the prior explorer), raise data.image_size, or turn matching.force_best on",
        )
    )
    smallest = float(np.sqrt(np.concatenate(layout.shapes).prod(axis=1)).min())
    sizes = box_size(data.boxes[data.valid])
    small = int((sizes < smallest).sum())
    small_share = small / sizes.size if sizes.size else 0.0
    out.append(
        Check(
            "boxes_below_smallest_prior",
            "skipped" if not sizes.size else ("ok" if small_share <= 0.05 else "warn"),
            f"{_share(small, int(sizes.size))} training boxes are smaller than the smallest prior "
            f"({smallest:.1f} px at input size {config.data.image_size})"
            + (f"; the 10th percentile box is {float(np.percentile(sizes, 10)):.1f} px" if sizes.size else ""),
            ""
            if small_share <= 0.05
            else "raise data.image_size, or add a finer layer or smaller scales to the priors",
        )
    )
    counts, rare = rare_classes(data, config.model.num_classes)
    names = source.class_names
    named = ", ".join(f"{names[k] if k < len(names) else k} ({counts[k]})" for k in rare[:8])
    out.append(
        Check(
            "rare_classes",
            "skipped" if not sizes.size else ("warn" if rare else "ok"),
            f"{len(rare)} of {config.model.num_classes} classes have fewer than {RARE_CLASS_BOXES} boxes in "
            f"{n} training images" + (f": {named}" if rare else ""),
            "" if not rare else "annotate more of them, merge them with a related class, or leave them out",
        )
    )
    if source.record("train", 0) is None:
        out.append(Check("train_val_overlap", "skipped", "generated splits: disjoint digit pools by construction", ""))
    else:
        train = _file_hashes(source, "train", max_images)
        val = _file_hashes(source, "val", max_images)
        both = sorted(set(train) & set(val))
        examples = ", ".join(f"{train[h]} = {val[h]}" for h in both[:3])
        out.append(
            Check(
                "train_val_overlap",
                "warn" if both else "ok",
                f"{len(both)} images are in both splits (same file contents, of {len(train)} training and "
                f"{len(val)} validation images)" + (f": {examples}" if both else ""),
                "" if not both else "the validation score overstates the detector: remove the copies from one split",
            )
        )
    return out


def run_health(
    config: Config,
    steps: Sequence[Mapping[str, Any]],
    evals: Sequence[Mapping[str, Any]],
    data: Sequence[Check],
    *,
    error: str | None = None,
) -> list[Check]:
    """Every check, in :data:`CHECKS`' order: the records' and ``data`` (:func:`check_data`'s)."""
    found = {c.check: c for c in (*check_steps(steps, error), check_evals(steps, evals), *data)}
    return [found[name] for name in CHECKS if name in found]
