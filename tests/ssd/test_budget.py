"""``train.time_budget``: the plan worked by hand (:mod:`ssd.budget`), the schedule that follows
it (:class:`ssd.optim.AdjustableCosine`), and a run that keeps to its budget."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from test_train import tiny_config

from ssd.budget import MEASURE, SKIP, StepBudget
from ssd.checkpoint import read_run_info
from ssd.config import ConfigError, from_dict
from ssd.optim import AdjustableCosine
from ssd.train import Trainer


def budget(**kwargs: float) -> StepBudget:
    values = {"seconds": 60.0, "cap": 10_000, "eval_every": 100, "start": 0.0, "eval_images": 64, "batch_size": 64}
    values.update(kwargs)
    return StepBudget(**values)  # type: ignore[arg-type]


def test_the_plan_by_hand() -> None:
    b = budget()
    assert (SKIP, MEASURE) == (5, 25)
    assert b.step_done(5, 1.0) is None  # the measure starts after step 5 ...
    assert b.step_done(30, 4.125) == 435  # ... and ends at step 30: 25 steps in 3.125 s, 0.125 s a step
    # Left: 60 - 4.125 = 55.875 s. An evaluation is estimated at 1 batch x 0.125 / 3 + 1 = 1.0417 s.
    # 405 more steps (to 435) bring evaluations at 100, 200, 300, 400 and the last:
    # 405 x 0.125 + 5 x 1.0417 = 55.833 s fits; 406 steps need 55.958 s.
    assert "0.125 s a step (steps 6-30)" in b.reason and "(estimated)" in b.reason
    b.eval_done(2.0)  # measured: 2 s, not 1.04
    # At step 31, 4.25 s in: 55.75 s left. To 400: 369 x 0.125 + 4 x 2 = 54.125 s (the last
    # evaluation is step 400's); one step more adds a fifth: 370 x 0.125 + 10 = 56.25 s.
    assert b.step_done(31, 4.25) == 400 and "(1 measured)" in b.reason
    b.eval_done(2.0)
    assert b.step_done(32, 4.375) is None  # the same plan within 2%: nothing changes


def test_the_cap_and_no_evaluations() -> None:
    b = budget(cap=200, eval_every=0)
    b.step_done(5, 1.0)
    assert b.step_done(30, 4.125) == 200 and "train.steps 200 is the most" in b.reason
    short = budget(seconds=5.0, eval_every=0)
    short.step_done(5, 1.0)
    # 0.875 s left cannot hold even the final evaluation (1.04 s): the run ends at the next step
    assert short.step_done(30, 4.125) == 31
    assert budget(seconds=1.0, eval_every=0).step_done(5, 1.0) is None


def test_adjustable_cosine_is_keras_cosine_and_moves_its_end() -> None:
    ours = AdjustableCosine(2e-3, 100, 1200)
    keras_own = keras.optimizers.schedules.CosineDecay(0.0, 1100, warmup_target=2e-3, warmup_steps=100)
    steps = [0, 1, 50, 99, 100, 101, 600, 1199, 1200, 1500]
    np.testing.assert_allclose([float(ours(s)) for s in steps], [float(keras_own(s)) for s in steps], atol=1e-9)
    ours.end_at(700)  # half-way down at 400, zero at 700
    assert float(ours(400)) == pytest.approx(1e-3, rel=1e-5) and float(ours(700)) == pytest.approx(0.0, abs=1e-9)


def test_a_run_with_a_budget_plans_and_the_schedule_ends_with_it(tmp_path: Path) -> None:
    config = tiny_config(steps=400, eval_every=0, checkpoint_every=0, time_budget=0.05, schedule="cosine")
    trainer = Trainer(config, tmp_path / "run")
    plans: list[tuple[int, str]] = []
    result = trainer.fit(on_plan=lambda total, reason: plans.append((total, reason)))
    assert plans and result.step == plans[-1][0] <= 400  # the run ends where its last plan said
    info = read_run_info(tmp_path / "run") or {}
    assert info["planned_steps"] == str(result.step) and info["time_budget"] == plans[-1][1]
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lrs) == result.step and lrs[-1] < 0.05 * max(lrs)  # the cosine ran down to the run's end
    with pytest.raises(ConfigError) as err:
        from_dict({"train": {"time_budget": -1}})
    assert err.value.field == "train.time_budget"
    assert math.isclose(config.train.time_budget, 0.05)
