"""The best checkpoint (``best.weights.h5`` + ``best.json``), early stopping, and ``--weights best|last``.

Evaluation is scripted (``Trainer.evaluate`` replaced by a list of mAP@.5 values) so which
evaluation is the best is known; training itself is the tiny model of ``test_train``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_train import tiny_config

from ssd.checkpoint import read_best, read_run_info, weights_path
from ssd.cli.commands import build_parser, main
from ssd.config import ConfigError, from_dict
from ssd.detect import Detector
from ssd.train import LOSS_KEYS, Trainer, TrainResult


def scripted(monkeypatch: pytest.MonkeyPatch, values: list[float]) -> None:
    """``Trainer.evaluate`` returns these mAP@.5 values in turn (mAP half of each)."""
    queue = iter(values)

    def evaluate(self: Trainer, num_images: int) -> dict[str, Any]:
        map50 = next(queue)
        record: dict[str, Any] = {"step": self.step, "images": num_images, "time": time.time()}
        record.update({f"val_{k}": 0.0 for k in LOSS_KEYS})
        return {**record, "map": map50 / 2, "map50": map50}

    monkeypatch.setattr(Trainer, "evaluate", evaluate)


def fit(trainer: Trainer, at_eval: dict[int, list[np.ndarray]] | None = None) -> TrainResult:
    """Fit; ``at_eval`` collects the model's weights at every evaluation, by step."""

    def on_eval(record: dict[str, Any]) -> None:
        if at_eval is not None:
            at_eval[record["step"]] = [w.copy() for w in trainer.model.get_weights()]

    return trainer.fit(on_eval=on_eval)


@pytest.fixture(scope="module")
def best_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Trainer, TrainResult, dict]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        scripted(monkeypatch, [0.1, 0.3, 0.3, 0.2, 0.25])  # evaluations at steps 2, 4, 6, 8, 10
        out = tmp_path_factory.mktemp("best") / "run"
        trainer = Trainer(tiny_config(steps=10, checkpoint_every=0), out)
        weights: dict[int, list[np.ndarray]] = {}
        result = fit(trainer, weights)
        yield out, trainer, result, weights


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_the_best_checkpoint_is_the_evaluation_with_the_highest_map50(best_run: Any) -> None:
    out, trainer, result, weights = best_run
    assert read_best(out) == {"step": 4, "map50": 0.3, "map": 0.15}  # the tie at step 6 keeps the earlier
    assert result.status == "succeeded" and result.step == 10 and result.best == read_best(out)
    assert result.stop_reason is None
    best = Detector.from_checkpoint(out, "best")
    assert best.weights_path == out / "best.weights.h5"
    assert_same(best.model.get_weights(), weights[4])
    last = Detector.from_checkpoint(out, "last")
    assert last.weights_path == out / "model.weights.h5"
    assert_same(last.model.get_weights(), trainer.model.get_weights())
    assert_same(Detector.from_checkpoint(out).model.get_weights(), weights[4])  # best is the default
    assert any(not np.array_equal(a, b) for a, b in zip(weights[4], weights[10], strict=True))  # it trained on


def test_best_falls_back_to_the_last_and_bad_choices_are_errors(best_run: Any, tmp_path: Path) -> None:
    out = best_run[0]
    for name in ("config.json", "model.weights.h5"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    assert weights_path(tmp_path, "best") == tmp_path / "model.weights.h5"
    assert Detector.from_checkpoint(tmp_path, "best").weights_path == tmp_path / "model.weights.h5"
    with pytest.raises(ValueError, match="best, last"):
        Detector.from_checkpoint(tmp_path, "first")


def test_the_cli_says_and_loads_the_weights_asked_for(best_run: Any, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(best_run[0])
    assert main(["evaluate", "--checkpoint", out, "--images", "2"]) == 0
    assert "weights: best (best.weights.h5, step 4, mAP@.5 0.3000 in training)" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", out, "--images", "2", "--weights", "last"]) == 0
    assert "weights: last (model.weights.h5, step 10)" in capsys.readouterr().err
    parser = build_parser()[0]
    for argv in (
        ["detect", "--checkpoint", out, "--images", "x.npz", "--out", "y.json"],
        ["export", "--checkpoint", out, "--format", "onnx", "--out", "y.onnx"],
        ["analyze", "--checkpoint", out],
    ):
        assert parser.parse_args(argv).weights == "best"
        assert parser.parse_args([*argv, "--weights", "last"]).weights == "last"
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--checkpoint", out, "--weights", "first"])


def test_early_stopping_after_patience_evaluations_without_a_new_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(monkeypatch, [0.1, 0.3, 0.2, 0.3, 0.9, 0.9])  # steps 2, 4, 6, 8: no new best at 6 and 8
    result = fit(Trainer(tiny_config(steps=20, checkpoint_every=0, early_stop_patience=2), tmp_path))
    assert result.status == "succeeded" and result.step == 8
    assert result.stop_reason is not None and "no new best mAP@.5 in 2 evaluations" in result.stop_reason
    assert read_run_info(tmp_path)["stop_reason"] == result.stop_reason  # type: ignore[index]
    assert read_best(tmp_path)["step"] == 4  # type: ignore[index]
    evals = [json.loads(line)["step"] for line in (tmp_path / "evals.jsonl").read_text().splitlines()]
    assert evals == [2, 4, 6, 8]
    with np.load(tmp_path / "train_state.npz") as state:
        assert int(state["step"]) == 8


def test_a_resumed_run_keeps_the_earlier_best_and_its_patience(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted(monkeypatch, [0.5, 0.2])  # steps 2, 4: the best is step 2, one evaluation since
    first = fit(Trainer(tiny_config(steps=4, checkpoint_every=0, early_stop_patience=2), tmp_path))
    assert first.step == 4 and read_best(tmp_path)["step"] == 2  # type: ignore[index]
    best_bytes = (tmp_path / "best.weights.h5").read_bytes()
    scripted(monkeypatch, [0.4, 0.6])  # step 6: below the earlier best, the second evaluation without one
    trainer = Trainer(tiny_config(steps=12, checkpoint_every=0, early_stop_patience=2), tmp_path)
    trainer.load_checkpoint()
    resumed = fit(trainer)
    assert resumed.step == 6 and resumed.stop_reason is not None
    assert read_best(tmp_path) == {"step": 2, "map50": 0.5, "map": 0.25}
    assert (tmp_path / "best.weights.h5").read_bytes() == best_bytes

    scripted(monkeypatch, [0.6])  # without patience a better evaluation replaces the best
    trainer = Trainer(tiny_config(steps=8, checkpoint_every=0), tmp_path)
    trainer.load_checkpoint()
    fit(trainer)
    assert read_best(tmp_path) == {"step": 8, "map50": 0.6, "map": 0.3}


def test_early_stop_patience_is_validated() -> None:
    assert from_dict({"train": {"early_stop_patience": 3}}).train.early_stop_patience == 3
    assert from_dict({}).train.early_stop_patience == 0
    for bad in (-1, 1.5, "2"):
        with pytest.raises(ConfigError) as info:
            from_dict({"train": {"early_stop_patience": bad}})
        assert info.value.field == "train.early_stop_patience"


def test_every_command_runs_on_a_snapshot_holding_only_the_best(best_run: Any, tmp_path: Path) -> None:
    """What the server hands its export and analysis processes: the config and the best weights."""
    import shutil

    run = best_run[0]
    for name in ("config.json", "best.weights.h5"):
        shutil.copyfile(run / name, tmp_path / name)
    out = tmp_path / "model.tflite"
    assert main(["export", "--checkpoint", str(tmp_path), "--format", "tflite", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert main(["analyze", "--checkpoint", str(tmp_path), "--images", "2"]) == 0
