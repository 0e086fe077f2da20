"""Tests for ssd.tensorboard_log: a training run's event files, read back with TensorBoard's own loader.

Every scalar must have the steps and values of ``metrics.jsonl`` / ``evals.jsonl`` (float32 in
the event file), the config must be there as text, and a resumed run must show each step once.
The runs are test_train's tiny config (2 units, 32x32 images, batch 2).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ssd.checkpoint import CHECKPOINT_FILES
from ssd.config import Config
from ssd.tensorboard_log import CONFIG_TAG, EVAL_TAGS, STEP_TAGS, TensorBoardLog, event_files
from ssd.train import Trainer
from tests.ssd.test_train import read_jsonl, tiny_config


def load(directory: Path) -> EventAccumulator:
    """Everything TensorBoard would show for the run in ``directory`` (no reservoir sampling)."""
    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalar_series(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def expected_series(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in records]


def assert_mirrors_jsonl(out: Path) -> EventAccumulator:
    """Every step and eval scalar in the event files equals the JSON lines, step for step."""
    acc = load(out)
    metrics, evals = read_jsonl(out / "metrics.jsonl"), read_jsonl(out / "evals.jsonl")
    assert set(acc.Tags()["scalars"]) == {*STEP_TAGS.values(), *EVAL_TAGS.values()}
    for tags, records in ((STEP_TAGS, metrics), (EVAL_TAGS, evals)):
        for key, tag in tags.items():
            got, want = scalar_series(acc, tag), expected_series(records, key)
            assert [s for s, _ in got] == [s for s, _ in want], tag
            assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6, abs=1e-9), tag
    wall = [e.wall_time for e in acc.Scalars("loss/total")]
    assert wall == pytest.approx([r["time"] for r in metrics], abs=1e-3)  # the "relative" x axis is true
    return acc


def config_texts(acc: EventAccumulator) -> list[tuple[int, dict[str, Any]]]:
    """``(step, config)`` of every config text event, parsed back from its JSON code block."""
    out = []
    for event in acc.Tensors(CONFIG_TAG):
        text = event.tensor_proto.string_val[0].decode()
        assert text.startswith("```json\n") and text.endswith("\n```")
        out.append((event.step, json.loads(text[len("```json\n") : -len("\n```")])))
    return out


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    config = tiny_config(steps=4)
    out = tmp_path_factory.mktemp("tb-straight")
    Trainer(config, out).fit()
    return config, out


def test_event_files_mirror_metrics_and_evals(straight: tuple[Config, Path]) -> None:
    config, out = straight
    assert len(event_files(out)) == 1
    acc = assert_mirrors_jsonl(out)
    assert [s for s, _ in scalar_series(acc, "loss/total")] == [1, 2, 3, 4]
    assert [s for s, _ in scalar_series(acc, "val/map")] == [2, 4]
    assert config_texts(acc) == [(0, config.to_dict())]


def test_resume_shows_every_step_once(tmp_path: Path) -> None:
    """3 steps, the process dies before saving step 3, a resume from step 2 runs to 6: each step shows once."""
    config = tiny_config(steps=6, checkpoint_every=2, eval_every=3)
    saved = tmp_path / "checkpoint-at-2"
    out = tmp_path / "run"

    def keep_checkpoint_of_step_2(record: dict[str, Any]) -> None:
        if record["step"] == 3:  # step 2's checkpoint is on disk; fit's final save at 3 will replace it
            shutil.copytree(out, saved, ignore=shutil.ignore_patterns("*.jsonl", "*tfevents*"))

    Trainer(config, out).fit(steps=3, on_step=keep_checkpoint_of_step_2)
    for name in CHECKPOINT_FILES:
        shutil.copy(saved / name, out / name)
    resumed = Trainer(config, out)
    resumed.load_checkpoint()
    assert resumed.step == 2
    resumed.fit()
    assert len(event_files(out)) == 1
    acc = assert_mirrors_jsonl(out)
    for tag in STEP_TAGS.values():
        assert [s for s, _ in scalar_series(acc, tag)] == [1, 2, 3, 4, 5, 6], tag
    assert [s for s, _ in scalar_series(acc, "val/map")] == [3, 6]  # step 3 evaluated twice, shown once
    assert [s for s, _ in config_texts(acc)] == [0, 2]


def test_rewind_keeps_earlier_events_and_drops_later_ones(tmp_path: Path) -> None:
    """The log alone, by hand: steps 1-3 and a config, reopened at step 1, then step 2 again."""
    cfg = {"seed": 1}
    with TensorBoardLog(tmp_path, cfg, 0) as tb:
        for step in (1, 2, 3):
            tb.step({"step": step, "total": float(step), "time": 100.0 + step})
        tb.eval({"step": 3, "map": 0.5, "time": 104.0})
    with TensorBoardLog(tmp_path, {"seed": 2}, 1) as tb:
        tb.step({"step": 2, "total": 20.0, "time": 200.0})
    acc = load(tmp_path)
    assert scalar_series(acc, "loss/total") == [(1, 1.0), (2, 20.0)]
    assert "val/map" not in acc.Tags()["scalars"]
    assert config_texts(acc) == [(0, {"seed": 1}), (1, {"seed": 2})]
    assert len(event_files(tmp_path)) == 1


def test_torn_tail_is_ignored_on_reopen(tmp_path: Path) -> None:
    """A crash mid-write leaves half a record: the reopened log keeps the whole records before it."""
    with TensorBoardLog(tmp_path, {}, 0) as tb:
        tb.step({"step": 1, "total": 1.0, "time": 1.0})
        tb.step({"step": 2, "total": 2.0, "time": 2.0})
    path = event_files(tmp_path)[0]
    path.write_bytes(path.read_bytes()[:-5])
    with TensorBoardLog(tmp_path, {}, 2):
        pass
    assert scalar_series(load(tmp_path), "loss/total") == [(1, 1.0)]
