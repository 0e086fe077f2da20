"""benchmarks.analysis: a small run on the old-checkpoint fixture writes its figures (`make bench` runs it whole)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.analysis import main

FIXTURE = Path(__file__).parent.parent / "fixtures" / "checkpoint_v1"  # 4 units, 64 px, trained 40 steps


def test_small_run_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "analysis.json"
    assert main(["--checkpoint", str(FIXTURE), "--images", "3", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 3 and result["ground_truths"] > 0 and result["detections"] > 0
    assert 0 < result["analyze_s"] < result["command_s"] and result["predict_s"] > 0
    assert result["within_target"] == (result["command_s"] <= 30.0) and "cores" in result and result["cpu"]
