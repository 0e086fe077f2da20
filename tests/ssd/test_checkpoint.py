"""Tests for ssd.checkpoint: the run directory's file names and its small helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssd.checkpoint import (
    CHECKPOINT_FILES,
    CONFIG_FILE,
    EVALS_FILE,
    METRICS_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    has_checkpoint,
    read_config,
    write_config,
)
from ssd.config import ConfigError, from_dict


def test_layout_names() -> None:
    assert (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE) == ("config.json", "model.weights.h5", "train_state.npz")
    assert (METRICS_FILE, EVALS_FILE) == ("metrics.jsonl", "evals.jsonl")
    assert CHECKPOINT_FILES == (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE)


def test_has_checkpoint_needs_every_file(tmp_path: Path) -> None:
    assert not has_checkpoint(tmp_path)
    assert not has_checkpoint(tmp_path / "missing")
    for name in CHECKPOINT_FILES:
        assert not has_checkpoint(tmp_path)
        (tmp_path / name).write_bytes(b"x")
    assert has_checkpoint(tmp_path) and has_checkpoint(str(tmp_path))
    (tmp_path / WEIGHTS_FILE).unlink()
    (tmp_path / WEIGHTS_FILE).mkdir()  # a directory of that name is no checkpoint file
    assert not has_checkpoint(tmp_path)


def test_write_then_read_config_round_trips(tmp_path: Path) -> None:
    config = from_dict({"name": "round-trip", "train": {"steps": 7}})
    path = write_config(tmp_path, config)
    assert path == tmp_path / CONFIG_FILE
    assert json.loads(path.read_text()) == config.to_dict()
    assert read_config(tmp_path) == config
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE]  # no temporary file left
    write_config(tmp_path, from_dict({"name": "again"}))  # replaces the file
    assert read_config(tmp_path).name == "again"


def test_read_config_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        read_config(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        read_config(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"train": {"steps": -1}}))
    with pytest.raises(ConfigError) as info:
        read_config(tmp_path)
    assert info.value.field == "train.steps"
