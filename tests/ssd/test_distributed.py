"""Tests for ssd.distributed: 2 workers on loopback train exactly what one process trains.

The tiny model of tests/ssd/test_train.py, global batch 4. The reference is one process with
batch 4; the job is ``ssdboard train`` with ``train.workers = 2`` (the chief in one process, the
other worker a process it starts), 2 steps, then resumed to 3. Both are float32.

Tolerance: the loss parts agree to float rounding (the same global batch, summed in another
order). Weights too, except where Adam divides a gradient that is nearly zero by its own size
(``m / sqrt(v)``): there rounding moves a weight by up to a share of the learning rate (1e-3),
measured up to 7e-5 after 3 steps. A bug moves every weight that far: an unsynchronised
BatchNorm by 5e-3, a wrong slice of the batch by about the learning rate. So: all weights within
2e-4, and 99% within 1e-5 (1% of one step's move).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssd.config import Config, ConfigError, from_dict
from ssd.model import build_ssd
from ssd.pipeline import datasets, input_pipeline
from ssd.train import LOSS_KEYS, Trainer

ROOT = Path(__file__).resolve().parents[2]


def tiny(**train: Any) -> dict[str, Any]:
    """The tiny test config as a dict; ``train`` overrides keys of its ``train`` section."""
    return {
        "preset": "notebook",
        "model": {"num_units": 2, "source_layers": ["norm3_2"]},
        "priors": {"strides": [4], "scales": [[12, 18]], "ratios": [0.7]},
        "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2, "val_images": 8},
        "train": {"steps": 3, "batch_size": 4, "eval_images": 4, "checkpoint_every": 0, "eval_every": 0, **train},
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkpoint_weights(config: Config, out: Path) -> list[np.ndarray]:
    """Every model variable (BatchNorm statistics included) of the checkpoint in ``out``."""
    model = build_ssd(config.model, config.priors, config.data.image_size, pretrained=False)
    model.load_weights(out / "model.weights.h5")
    return [w.numpy() for w in model.weights]


def assert_weights_match(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-4)
    diff = np.concatenate([np.abs(a - b).ravel() for a, b in zip(got, want, strict=True)])
    quantiles = np.quantile(diff, [0.5, 0.9, 0.99, 1.0])
    assert np.mean(diff <= 1e-5) >= 0.99, f"differences at quantiles .5 .9 .99 1: {quantiles}"


def train_cli(config: dict[str, Any], out: Path, steps: int, tmp: Path) -> subprocess.CompletedProcess[str]:
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    command = [sys.executable, "-m", "ssd.cli", "train", "--config", str(path), "--out", str(out), "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [*command, "--steps", str(steps)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


# ----------------------------------------------------------------------------- cheap checks
def test_workers_must_divide_the_batch() -> None:
    assert from_dict(tiny(workers=2)).train.workers == 2
    assert from_dict(tiny()).train.workers == 1
    with pytest.raises(ConfigError, match="train.workers: must divide train.batch_size") as info:
        from_dict(tiny(workers=3))
    assert info.value.field == "train.workers"
    for bad in (0, 17):
        with pytest.raises(ConfigError, match=r"train.workers: must be in 1\.\.16"):
            from_dict(tiny(workers=bad, batch_size=32))


def test_a_plain_trainer_refuses_several_workers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="DistributedTrainer"):
        Trainer(from_dict(tiny(workers=2)), tmp_path)


def test_the_workers_slices_make_up_the_global_batch() -> None:
    """Worker i's batch of step s is the i-th half of the batch one process uses at step s."""
    config = from_dict(tiny())
    train, _ = datasets(config)
    whole = list(input_pipeline(config, train, 1, 3))
    halves = [list(input_pipeline(config, train, 1, 3, (i, 2))) for i in range(2)]
    for step in range(2):
        for part in range(2):  # images, then y_true
            joined = np.concatenate([halves[0][step][part].numpy(), halves[1][step][part].numpy()])
            np.testing.assert_array_equal(joined, whole[step][part].numpy())
        assert halves[0][step][0].shape[0] == 2


# ----------------------------------------------------------------------------- 2 workers vs 1 process
@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process, global batch 4: metrics and weights after steps 2 and 3."""
    trainer = Trainer(from_dict(tiny()), tmp_path_factory.mktemp("single"))
    steps: list[dict[str, Any]] = []
    trainer.fit(steps=2, on_step=steps.append)
    at2 = [w.numpy() for w in trainer.model.weights]
    trainer.fit(steps=3, on_step=steps.append)
    at3 = [w.numpy() for w in trainer.model.weights]
    return {"steps": steps, 2: at2, 3: at3, "optimizer": [v.numpy() for v in trainer.optimizer.variables]}


@pytest.mark.slow
def test_two_workers_train_the_same_weights_and_resume(reference: dict[str, Any], tmp_path: Path) -> None:
    config = tiny(workers=2)
    out = tmp_path / "job"
    train_cli(config, out, 2, tmp_path)
    parsed = from_dict(config)
    assert_weights_match(checkpoint_weights(parsed, out), reference[2])
    assert [e["step"] for e in read_jsonl(out / "evals.jsonl")] == [2]  # the chief alone evaluates

    resumed = train_cli(config, out, 3, tmp_path)
    assert "resuming" in resumed.stderr and "at step 2" in resumed.stderr
    assert_weights_match(checkpoint_weights(parsed, out), reference[3])
    with np.load(out / "train_state.npz") as state:
        assert int(state["step"]) == 3
        slots = [state[f"v{i}"] for i in range(len(reference["optimizer"]))]
    assert int(slots[0]) == 3  # the optimizer's iterations: one per global step, not per worker
    for got, want in zip(slots[1:], reference["optimizer"][1:], strict=True):  # learning rate, Adam's moments
        # Loose: the moments sum raw gradients, which the near-zero-gradient moves above perturb by up
        # to 0.4% after 3 steps (one process, Keras' BatchNorm instead of the fused one: the same).
        np.testing.assert_allclose(got, want, rtol=0, atol=0.02 * np.abs(want).max())

    records = read_jsonl(out / "metrics.jsonl")  # written by the chief alone: one line per step
    assert [r["step"] for r in records] == [1, 2, 3]
    for got, want in zip(records, reference["steps"], strict=True):
        for key in (*LOSS_KEYS, "num_pos", "num_neg"):  # the global batch's parts, not a worker's half
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (got["step"], key)
    assert not list(tmp_path.glob("**/*tmp*"))
