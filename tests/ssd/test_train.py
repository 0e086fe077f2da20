"""Tests for ssd.train: step callbacks, metrics files, evaluation, resume, cancel, NaN, corrupt checkpoints.

Every run is a tiny model (2 units, one source layer) on 32x32 images, 4 steps of batch 2. The
priors (12 and 18 px, ratio 0.7) are chosen so that every one of the first five training batches
has matched positives: a step without positives has zero loss and would make the resume
comparison trivial.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from ssd.config import Config, from_dict
from ssd.train import LOSS_KEYS, NonFiniteLossError, Trainer, TrainResult

STEP_KEYS = {"step", "pos_clf", "neg_clf", "loc", "total", "num_pos", "num_neg", "lr", "images_per_sec", "time"}


def tiny_config(**train: Any) -> Config:
    """The tiny test config; ``train`` overrides keys of its ``train`` section."""
    return from_dict(
        {
            "preset": "notebook",
            "model": {"num_units": 2, "source_layers": ["norm3_2"]},
            "priors": {"strides": [4], "scales": [[12, 18]], "ratios": [0.7]},
            "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2, "val_images": 8},
            "train": {"steps": 4, "batch_size": 2, "eval_images": 4, "checkpoint_every": 2, "eval_every": 2, **train},
        }
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Run:
    """A finished ``Trainer.fit`` with everything its callbacks saw."""

    out: Path
    trainer: Trainer
    result: TrainResult
    steps: list[dict[str, Any]]
    evals: list[dict[str, Any]]


def run(config: Config, out: Path, stop_after: int | None = None) -> Run:
    """Train ``config`` into ``out``; ``stop_after``: the stop flag turns true once that step is done."""
    steps: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []

    def should_stop() -> bool:
        return stop_after is not None and bool(steps) and steps[-1]["step"] >= stop_after

    trainer = Trainer(config, out)
    result = trainer.fit(on_step=steps.append, on_eval=evals.append, should_stop=should_stop)
    return Run(out, trainer, result, steps, evals)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """4 uninterrupted steps, evaluating every 2."""
    return run(tiny_config(), tmp_path_factory.mktemp("straight"))


@pytest.fixture(scope="module")
def cancelled(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The same run cancelled after step 2, periodic checkpoints off (so only the cancel saves one)."""
    return run(tiny_config(checkpoint_every=0), tmp_path_factory.mktemp("cancelled"), stop_after=2)


# ----------------------------------------------------------------------------- step reporting
def test_every_step_reports_all_metrics_in_order(straight: Run) -> None:
    assert straight.result.status == "succeeded" and straight.result.step == 4
    assert [m["step"] for m in straight.steps] == [1, 2, 3, 4]
    for m in straight.steps:
        assert set(m) >= STEP_KEYS
        for key in STEP_KEYS:
            assert isinstance(m[key], int | float) and math.isfinite(m[key]), (key, m[key])
        assert m["num_pos"] > 0 and m["num_neg"] > 0 and m["total"] > 0
        assert m["total"] == pytest.approx(m["pos_clf"] + m["neg_clf"] + m["loc"], rel=1e-5)  # alpha 1
        assert m["lr"] == pytest.approx(1e-3)
        assert m["images_per_sec"] > 0
    assert straight.result.last_metrics == straight.steps[-1]


def test_metrics_jsonl_has_one_object_per_step(straight: Run) -> None:
    records = read_jsonl(straight.out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for record, seen in zip(records, straight.steps, strict=True):
        assert set(record) >= {"step", *LOSS_KEYS}
        assert record == seen  # the file holds exactly what the callback got


def test_config_json_round_trips(straight: Run) -> None:
    data = json.loads((straight.out / "config.json").read_text())
    assert from_dict(data) == straight.trainer.config


def test_validation_every_n_steps(straight: Run) -> None:
    assert [e["step"] for e in straight.evals] == [2, 4]
    for e in straight.evals:
        assert set(e) >= {"val_pos_clf", "val_neg_clf", "val_loc", "val_total", "map", "map50", "images"}
        assert e["images"] == 4
        for key in ("val_pos_clf", "val_neg_clf", "val_loc", "val_total"):
            assert math.isfinite(e[key]) and e[key] >= 0
        assert 0 <= e["map50"] <= 1 and 0 <= e["map"] <= e["map50"] + 1e-9
    assert read_jsonl(straight.out / "evals.jsonl") == straight.evals
    assert straight.result.last_eval == straight.evals[-1]


def test_checkpoint_holds_the_last_step(straight: Run) -> None:
    assert straight.trainer.has_checkpoint()
    with np.load(straight.out / "train_state.npz") as state:
        assert int(state["step"]) == 4
    assert not list(straight.out.glob("*tmp*"))  # atomic writes leave no temporary files


# ----------------------------------------------------------------------------- cancel and resume
def test_cancel_stops_within_one_step_and_saves(cancelled: Run) -> None:
    assert cancelled.result.status == "cancelled"
    assert cancelled.result.step == 2 and cancelled.trainer.step == 2
    assert [m["step"] for m in cancelled.steps] == [1, 2]
    assert [e["step"] for e in cancelled.evals] == [2]  # eval_every 2 runs before the flag is checked
    with np.load(cancelled.out / "train_state.npz") as state:
        assert int(state["step"]) == 2
    assert [r["step"] for r in read_jsonl(cancelled.out / "metrics.jsonl")] == [1, 2]


def test_resume_continues_with_the_same_results(straight: Run, cancelled: Run) -> None:
    saved = [v.numpy() for v in cancelled.trainer.optimizer.variables]
    saved_weights = [w.numpy() for w in cancelled.trainer.model.weights]  # includes BatchNorm statistics
    trainer = Trainer(cancelled.trainer.config, cancelled.out)
    assert trainer.has_checkpoint()
    trainer.load_checkpoint()
    assert trainer.step == 2
    assert int(trainer.optimizer.iterations.numpy()) == 2
    assert len(trainer.optimizer.variables) == len(saved)
    for var, value in zip(trainer.optimizer.variables, saved, strict=True):
        np.testing.assert_array_equal(var.numpy(), value, err_msg=var.path)
    assert any(np.abs(v).max() > 0 for v in saved[1:])  # Adam moments are not trivially zero
    for w, value in zip(trainer.model.weights, saved_weights, strict=True):
        np.testing.assert_array_equal(w.numpy(), value, err_msg=w.path)

    steps: list[dict[str, Any]] = []
    result = trainer.fit(on_step=steps.append)
    assert result.status == "succeeded" and result.step == 4
    assert [m["step"] for m in steps] == [3, 4]
    for resumed, straight_m in zip(steps, straight.steps[2:], strict=True):
        for key in (*LOSS_KEYS, "num_pos", "num_neg"):
            assert resumed[key] == pytest.approx(straight_m[key], rel=1e-4, abs=1e-6), (resumed["step"], key)
    for a, b in zip(trainer.model.weights, straight.trainer.model.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.path)
    assert [r["step"] for r in read_jsonl(cancelled.out / "metrics.jsonl")] == [1, 2, 3, 4]


def test_resume_truncates_records_written_after_the_checkpoint(straight: Run, tmp_path: Path) -> None:
    """A crash after the checkpoint leaves extra lines: a resumed run must not repeat those steps."""
    out = tmp_path / "crashed"
    shutil.copytree(straight.out, out)
    with open(out / "metrics.jsonl", "a") as f:  # pretend step 5 ran past the checkpoint of step 4
        f.write(json.dumps({"step": 5, "pos_clf": 1.0, "neg_clf": 1.0, "loc": 1.0, "total": 3.0}) + "\n")
    trainer = Trainer(straight.trainer.config, out)
    trainer.load_checkpoint()
    assert trainer.step == 4
    result = trainer.fit()  # already at train.steps: no step runs
    assert result.status == "succeeded" and result.step == 4 and result.last_metrics is None
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3, 4]


# ----------------------------------------------------------------------------- failures
def test_non_finite_loss_names_step_and_component(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(eval_every=0), tmp_path)
    real_step = trainer._train_step
    calls: list[int] = []

    def poisoned(images: tf.Tensor, y_true: tf.Tensor) -> dict[str, tf.Tensor]:
        parts = dict(real_step(images, y_true))
        calls.append(1)
        if len(calls) == 3:
            parts["loc"] = tf.constant(float("nan"))
        return parts

    trainer._train_step = poisoned
    seen: list[int] = []
    with pytest.raises(NonFiniteLossError, match=r"'loc'.*step 3") as info:
        trainer.fit(on_step=lambda m: seen.append(m["step"]))
    assert info.value.step == 3 and info.value.component == "loc"
    assert seen == [1, 2]  # the bad step is neither reported nor recorded
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]

    # the checkpoint of step 2 (checkpoint_every 2) is intact and loadable
    again = Trainer(tiny_config(eval_every=0), tmp_path)
    again.load_checkpoint()
    assert again.step == 2
    assert all(np.isfinite(w.numpy()).all() for w in again.model.weights)


@pytest.mark.parametrize("name", ["model.weights.h5", "train_state.npz"])
def test_corrupt_checkpoint_raises_value_error_naming_the_file(straight: Run, tmp_path: Path, name: str) -> None:
    for f in ("model.weights.h5", "train_state.npz", "config.json"):
        shutil.copy(straight.out / f, tmp_path / f)
    (tmp_path / name).write_bytes(b"this is not a checkpoint\x00\xff" * 10)
    trainer = Trainer(straight.trainer.config, tmp_path)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        trainer.load_checkpoint()


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_checkpoint_of_another_model_is_rejected(straight: Run, tmp_path: Path) -> None:
    for f in ("model.weights.h5", "train_state.npz"):
        shutil.copy(straight.out / f, tmp_path / f)
    config = straight.trainer.config
    wider = replace(config, model=replace(config.model, num_units=3))
    with pytest.raises(ValueError, match=r"model\.weights\.h5"):
        Trainer(wider, tmp_path).load_checkpoint()


def test_compiled_targets_equal_the_graph_ones() -> None:
    """The pipeline's XLA-compiled matching gives the targets of the plain TensorFlow graph, on a
    default-config batch with padding, an ignore region and a box that forces its best prior."""
    from ssd.data import for_config
    from ssd.matching import IGNORE
    from ssd.pipeline import make_targets_fn

    config = from_dict({})
    _, boxes, labels, counts = for_config(config, "train").batch(0, 4)
    assert counts.min() < boxes.shape[1]  # some padding
    labels[0, 0] = IGNORE
    boxes[1, 0] = [60, 60, 63, 63]  # smaller than any prior: only force_best matches it
    labels[1, 0] = 9
    compiled = make_targets_fn(config)(boxes, labels).numpy()
    graph = make_targets_fn(config, jit_compile=False)(boxes, labels).numpy()
    c = config.model.num_classes + 1
    np.testing.assert_array_equal(compiled[..., :c], graph[..., :c])
    np.testing.assert_allclose(compiled[..., c:], graph[..., c:], rtol=1e-5, atol=1e-5)
    assert (graph[0, :, :c].sum(-1) == 0).any()  # the ignore region took priors out
    assert graph[1, :, 9].sum() >= 1  # the tiny box got its best prior
