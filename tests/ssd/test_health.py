"""Each health check of ssd.analysis.health triggered by a made-up run or dataset, and quiet on a
good one."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssd.analysis.health import CHECKS, check_data, check_evals, check_steps, run_health
from ssd.config import from_dict
from ssd.coverage import assign
from ssd.datasets.export import export_generator
from ssd.datasets.registry import Registry
from ssd.datasets.resolve import apply_dataset, resolve
from ssd.priors import make_priors

# The notebook's network at 64 px: one layer of stride 4, digits of 14-28 px.
SMALL = {
    "preset": "notebook",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[12, 18]], "ratios": [0.7]},
    "data": {"image_size": 64, "scale_range": [0.5, 1.0]},
}


def steps(totals: list[float], num_pos: list[float] | None = None) -> list[dict[str, Any]]:
    pos = num_pos if num_pos is not None else [10.0] * len(totals)
    return [{"step": i + 1, "total": t, "num_pos": p} for i, (t, p) in enumerate(zip(totals, pos, strict=True))]


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.check: c for c in checks}


@pytest.mark.parametrize(
    ("num_pos", "status", "words"),
    [([12, 9, 15, 11], "ok", "0 of 4"), ([0, 9, 15, 11], "warn", "1 of 4"), ([0, 0, 0, 11], "fail", "3 of 4")],
)
def test_steps_without_positive_priors(num_pos: list[float], status: str, words: str) -> None:
    check = by_name(check_steps(steps([1.0] * 4, num_pos)))["no_positive_priors"]
    assert check.status == status and words in check.evidence
    assert (check.advice == "") == (status == "ok")
    assert by_name(check_steps([]))["no_positive_priors"].status == "skipped"


def test_a_loss_that_went_nan_or_diverged() -> None:
    nan = by_name(check_steps(steps([3.0, 2.5, math.nan, 2.0])))["loss_diverged"]
    assert nan.status == "fail" and "at step 3" in nan.evidence
    error = "loss component 'loc' became nan at step 7; training stopped"
    assert by_name(check_steps(steps([3.0] * 5), error))["loss_diverged"].status == "fail"
    falling = by_name(check_steps(steps(list(np.linspace(10, 1, 200)))))["loss_diverged"]
    assert falling.status == "ok"
    # 100 steps at 1.0, then 100 at 3.0: the last 50-step mean is 3x the best.
    rising = by_name(check_steps(steps([1.0] * 100 + [3.0] * 100)))["loss_diverged"]
    assert rising.status == "warn" and "3.000" in rising.evidence and "1.000" in rising.evidence
    assert by_name(check_steps(steps([1.0] * 20)))["loss_diverged"].status == "skipped"


def test_validation_loss_rising_while_training_loss_falls() -> None:
    train = steps(list(np.linspace(5, 1, 600)))
    evals = [{"step": 100 * k, "val_total": v} for k, v in enumerate([5.0, 4.0, 3.0, 3.5, 4.0, 4.5], start=1)]
    overfit = check_evals(train, evals)
    assert overfit.status == "warn" and "3.000 to 4.500" in overfit.evidence and "augment" in overfit.advice
    falling = [{"step": e["step"], "val_total": 6.0 - e["step"] / 100} for e in evals]
    assert check_evals(train, falling).status == "ok"
    both_rising = steps(list(np.linspace(1, 5, 600)))  # a diverging run, not an overfitting one
    assert check_evals(both_rising, evals).status == "ok"
    assert check_evals(train, evals[:3]).status == "skipped"


def test_boxes_no_prior_matches_and_boxes_below_the_smallest_prior() -> None:
    """Priors of 40-60 px for digits of 14-28 px: most boxes own no prior at IoU 0.5 and all are
    smaller than the smallest prior; the counts are those of ssd.coverage.assign."""
    config = from_dict({**SMALL, "priors": {"strides": [4], "scales": [[40, 60]], "ratios": [1.0]}})
    source = resolve(config)
    checks = by_name(check_data(config, source, max_images=40))
    data = source.boxes(config, "train", 40)
    image = np.nonzero(data.valid)[0]
    owned = assign(data.boxes[data.valid], image, make_priors(config.priors, 64).boxes, iou_threshold=0.5)
    unmatched = int((owned.at_threshold.per_gt(len(image)) == 0).sum())
    assert (
        checks["unmatched_boxes"].status == "fail"
        and f"{unmatched} of {len(image)}" in checks["unmatched_boxes"].evidence
    )
    small = checks["boxes_below_smallest_prior"]
    assert small.status == "warn" and f"{len(image)} of {len(image)} (100.0%)" in small.evidence
    assert "40.0 px" in small.evidence


def test_data_checks_are_quiet_on_the_default_recipe() -> None:
    config = from_dict({})
    checks = by_name(check_data(config, resolve(config), max_images=300))
    assert checks["unmatched_boxes"].status == "ok", checks["unmatched_boxes"].evidence
    assert checks["boxes_below_smallest_prior"].status == "ok", checks["boxes_below_smallest_prior"].evidence
    assert checks["rare_classes"].status == "ok"  # about 120 boxes a digit in 300 images
    assert checks["train_val_overlap"].status == "skipped"  # generated: disjoint digit pools
    few = by_name(check_data(config, resolve(config), max_images=3))["rare_classes"]
    assert few.status == "warn" and "fewer than 10 boxes" in few.evidence


def test_the_same_image_in_train_and_val(tmp_path: Path) -> None:
    out = export_generator(tmp_path / "export", "coco", images=12, val_fraction=0.25, seed=0)
    registry = Registry(tmp_path / "data")
    registry.import_dataset(out, name="digits")
    config = from_dict(apply_dataset({**SMALL, "data": {**SMALL["data"], "dataset": "digits"}}, tmp_path / "data"))
    source = resolve(config, tmp_path / "data")
    assert by_name(check_data(config, source))["train_val_overlap"].status == "ok"
    train, val = source.record("train", 0), source.record("val", 1)
    assert train is not None and val is not None
    (source.root / val.file).write_bytes((source.root / train.file).read_bytes())  # a copy in val
    overlap = by_name(check_data(config, resolve(config, tmp_path / "data")))["train_val_overlap"]
    assert overlap.status == "warn" and overlap.evidence.startswith("1 images are in both splits")
    assert f"{train.file} = {val.file}" in overlap.evidence


def test_run_health_orders_every_check() -> None:
    config = from_dict({})
    data = check_data(config, resolve(config), max_images=50)
    checks = run_health(config, steps([1.0] * 4), [], data)
    assert [c.check for c in checks] == list(CHECKS)
    assert all(set(c.to_dict()) == {"check", "status", "evidence", "advice"} for c in checks)
