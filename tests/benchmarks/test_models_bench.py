"""benchmarks.models: the step arithmetic, the command line, and a --quick run of the notebook variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.models import FULL, QUICK, VARIANTS, Plan, main, timed_steps


def test_timed_steps_fill_the_target_within_bounds() -> None:
    plan = Plan(rounds=3, warmup_steps=2, target_seconds=8.0, min_steps=2, max_steps=15)
    assert timed_steps(1.0, plan) == 8  # 8 steps of 1 s
    assert timed_steps(3.0, plan) == 3  # ceil(8 / 3)
    assert timed_steps(20.0, plan) == 2  # a slow model still gets the minimum
    assert timed_steps(0.1, plan) == 15  # a fast one the maximum
    assert QUICK.rounds <= FULL.rounds and QUICK.max_steps < FULL.max_steps


def test_the_issue_variants() -> None:
    assert [(v.backbone, v.image_size) for v in VARIANTS] == [
        ("notebook", 128),
        ("mobilenet_v2", 300),
        ("resnet50", 300),
    ]
    mobilenet = VARIANTS[1].config()
    assert mobilenet.model.weights == "none" and mobilenet.model.extra_layers == 4


def test_unknown_variant_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--quick", "--variants", "vgg16"])
    assert exit_info.value.code == 2
    assert "--variants: unknown vgg16" in capsys.readouterr().err


def test_quick_run_writes_the_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "models.json"
    assert main(["--quick", "--variants", "notebook", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["quick"] and result["machine"]["processor"]
    (rec,) = result["variants"]
    assert rec["backbone"] == "notebook" and rec["image_size"] == 80 and rec["batch_size"] == 2
    assert rec["params"] > 100_000 and rec["forward_flops"] > 1e8 and rec["depthwise_flops"] == 0
    assert rec["flops_check"] is None or rec["flops_check"]["agrees"]
    runs = rec["median_images_per_sec"]
    assert runs["trainer"] > 0 and runs["naive"] > 0 and rec["ratio_median"] > 0
    assert ("trainer_float32" in runs) == (rec["precision"] != "float32")
    assert "| `notebook` 80 px" in capsys.readouterr().out  # the README's table row
