"""benchmarks.tensorboard_log: a --quick run times steps with and without the log and restores the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import ssd.train
from benchmarks.tensorboard_log import main
from ssd.tensorboard_log import TensorBoardLog


def test_quick_run_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "tb.json"
    result = main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["quick"] and result["steps"] == 6 and result["cpu"]
    assert len(result["step_ms_off"]) == len(result["step_ms_on"]) == 1
    assert result["median_step_ms_off"] > 0 and result["median_step_ms_on"] > 0
    assert 0 < result["median_log_step_us"] < 1e5  # the log's own calls were timed
    assert ssd.train.TensorBoardLog is TensorBoardLog  # the stand-ins are gone
