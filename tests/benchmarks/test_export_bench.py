"""benchmarks.export: a small run on the old-checkpoint fixture writes its figures (the full run is ``make bench``)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.export import main

FIXTURE = Path(__file__).parent.parent / "fixtures" / "checkpoint_v1"  # 4 units, 64 px, trained 40 steps


def test_small_run_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    assert main(["--checkpoint", str(FIXTURE), "--images", "2", "--repeats", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 2 and result["image_size"] == 64 and result["detections"] > 0
    formats = result["formats"]
    assert list(formats) == ["detector", "savedmodel", "onnx", "tflite"]
    for name in ("savedmodel", "onnx", "tflite"):
        row = formats[name]
        assert row["same_detections"] and row["unpaired"] == 0, name
        assert row["max_box_diff_px"] <= 0.5 and row["max_score_diff"] <= 1e-3
        assert row["bytes"] > 100_000 and row["latency_ms"] > 0 and row["batch_ms_per_image"] > 0
