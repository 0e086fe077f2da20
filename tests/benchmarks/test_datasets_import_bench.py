"""benchmarks.datasets_import: a small run writes its figures (the full run is ``make bench``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.datasets_import import main


def test_small_run_writes_the_figures(tmp_path: Path) -> None:
    pytest.importorskip("ssd.datasets.sources")
    out = tmp_path / "bench.json"
    assert main(["--sizes", "8", "16", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {(r["format"], r["n"]) for r in result["runs"]} == {(f, n) for f in ("coco", "voc", "yolo") for n in (8, 16)}
    assert all(r["images"] == r["n"] and r["seconds"] > 0 for r in result["runs"])
    assert set(result["growth"]) == {"coco", "voc", "yolo"} and result["largest"]["n"] == 16
