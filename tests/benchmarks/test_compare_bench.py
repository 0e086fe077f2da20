"""benchmarks.compare: a small run against a real server writes its figures (the full run is ``make bench``)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.compare import main


def test_small_run_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    args = ["--jobs", "2", "--steps", "500", "--repeats", "3", "--warmup", "1", "--points", "100", "--out", str(out)]
    main(args)  # the exit status follows the target, which a busy test machine may miss
    result = json.loads(out.read_text())
    assert result["jobs"] == 2 and result["steps"] == 500
    assert result["points_per_part"][1] <= 100 and result["points_per_part"][0] > 30
    assert result["cold_p50_ms"] > 0 and result["warm_p95_ms"] > 0 and result["cpu"]
