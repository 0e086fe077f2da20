"""Tests for the ``ssdboard`` command line (DESIGN.md's CLI contract), run in-process via ``main``.

One tiny training run (2 units, 32x32 images, batch 2) is shared by the detect and evaluate tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssd.cli import main
from ssd.config import from_dict

TINY: dict[str, Any] = {
    "preset": "notebook",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[12, 18]], "ratios": [0.7]},
    "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2, "val_images": 8},
    "train": {"steps": 4, "batch_size": 2, "eval_images": 4, "checkpoint_every": 2},
}

TINY_TOML = """\
preset = "notebook"

[model]
num_units = 2
source_layers = ["norm3_2"]

[priors]
strides = [4]
scales = [[12, 18]]
ratios = [0.7]

[data]
image_size = 32
scale_range = [0.5, 1.0]
min_digits = 1
max_digits = 2
val_images = 8

[train]
steps = 4
batch_size = 2
eval_images = 4
checkpoint_every = 2
"""


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def steps_in(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``main(argv)``, expect a usage error (exit status 2) and return its stderr."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "ssdboard" in err and "error:" in err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ssdboard train --config tiny.json --steps 3 --out DIR --seed 1 --quiet``."""
    root = tmp_path_factory.mktemp("cli")
    config = write_config(root / "tiny.json", TINY)
    out = root / "run"
    assert main(["train", "--config", str(config), "--steps", "3", "--out", str(out), "--seed", "1", "--quiet"]) == 0
    return out


# ----------------------------------------------------------------------------- train
def test_train_writes_checkpoint_config_and_metrics(trained: Path) -> None:
    for name in ("model.weights.h5", "train_state.npz", "config.json", "metrics.jsonl"):
        assert (trained / name).is_file(), name
    config = from_dict(json.loads((trained / "config.json").read_text()))
    assert config.train.steps == 3 and config.seed == 1  # the overrides
    assert config.train.batch_size == 2 and config.data.image_size == 32  # the file
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    for step, line in enumerate(lines, start=1):
        record = json.loads(line)
        assert record["step"] == step
        assert {"pos_clf", "neg_clf", "loc", "total"} <= set(record)
    with np.load(trained / "train_state.npz") as state:
        assert int(state["step"]) == 3


def test_train_resumes_from_its_output_dir_with_a_toml_config(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same settings as TOML (so this also covers TOML): ``--steps 5`` continues at step 3."""
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    toml = tmp_path / "tiny.toml"
    toml.write_text(TINY_TOML)
    capsys.readouterr()
    assert main(["train", "--config", str(toml), "--steps", "5", "--out", str(out), "--seed", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "at step 3" in captured.err  # "resuming DIR at step 3"
    assert "at step 5" in captured.out  # "succeeded at step 5 ..."
    assert steps_in(out) == [1, 2, 3, 4, 5]
    config = from_dict(json.loads((out / "config.json").read_text()))
    assert config.train.steps == 5 and config.seed == 1 and config.model.num_units == 2
    with np.load(out / "train_state.npz") as state:
        assert int(state["step"]) == 5


def test_train_corrupt_checkpoint_in_out_dir_is_an_error(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("config.json", "train_state.npz"):
        shutil.copy(trained / name, tmp_path / name)
    (tmp_path / "model.weights.h5").write_bytes(b"garbage" * 20)
    config = write_config(tmp_path / "tiny.json", TINY)
    err = fails(["train", "--config", str(config), "--out", str(tmp_path), "--quiet"], capsys)
    assert "--out" in err and "model.weights.h5" in err
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    ("data", "extra", "names"),
    [
        ({"train": {"batch_size": 0}}, [], ["--config", "train.batch_size"]),
        ({"train": {"bogus": 1}}, [], ["--config", "train.bogus"]),
        ({"nonsense": 1}, [], ["--config", "nonsense"]),
        ({"priors": {"strides": [4, 8]}}, [], ["--config", "priors"]),
        ({}, ["--steps", "0"], ["--steps", "train.steps"]),
        ({}, ["--seed", "-1"], ["--seed"]),
    ],
)
def test_train_bad_value_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, Any], extra: list[str], names: list[str]
) -> None:
    config = write_config(tmp_path / "bad.json", data)
    out = tmp_path / "out"
    err = fails(["train", "--config", str(config), "--out", str(out), "--quiet", *extra], capsys)
    for name in names:
        assert name in err
    assert not out.exists()  # nothing was started


def test_train_bad_toml_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[train\nsteps = ")
    err = fails(["train", "--config", str(config), "--out", str(tmp_path / "out")], capsys)
    assert "--config" in err and "bad.toml" in err


def test_train_missing_config_file_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(["train", "--config", str(tmp_path / "nope.json"), "--out", str(tmp_path / "out")], capsys)
    assert "--config" in err and "nope.json" in err


def test_train_non_integer_steps_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(["train", "--steps", "many"], capsys)
    assert "--steps" in err


# ----------------------------------------------------------------------------- detect
def test_detect_writes_coco_results(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", images=images)
    out = tmp_path / "d.json"
    assert main(["detect", "--checkpoint", str(trained), "--images", str(tmp_path / "x.npz"), "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert isinstance(results, list) and results  # an untrained model still scores above 0.01
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}
        assert r["image_id"] in (0, 1, 2)
        assert isinstance(r["category_id"], int) and 0 <= r["category_id"] < 10
        assert len(r["bbox"]) == 4 and all(isinstance(v, float) for v in r["bbox"])
        x, y, w, h = r["bbox"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 32 + 1e-4 and y + h <= 32 + 1e-4
        assert 0.01 < r["score"] <= 1
    assert len([r for r in results if r["image_id"] == 0]) <= 100
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((2, 32, 32, 3), np.float32),  # wrong dtype
        np.zeros((2, 32, 32), np.uint8),  # no channel axis
        np.zeros((2, 32, 32, 4), np.uint8),  # RGBA
    ],
)
def test_detect_bad_images_name_the_option(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], images: np.ndarray
) -> None:
    np.savez(tmp_path / "x.npz", images=images)
    err = fails(
        ["detect", "--checkpoint", str(trained), "--images", str(tmp_path / "x.npz"), "--out", "d.json"], capsys
    )
    assert "--images" in err
    assert not (tmp_path / "d.json").exists()


def test_detect_unreadable_images_file_names_the_option(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(tmp_path / "x.npz", pictures=np.zeros((1, 32, 32, 3), np.uint8))  # no 'images' array
    err = fails(
        ["detect", "--checkpoint", str(trained), "--images", str(tmp_path / "x.npz"), "--out", "d.json"], capsys
    )
    assert "--images" in err
    err = fails(
        ["detect", "--checkpoint", str(trained), "--images", str(tmp_path / "no.npz"), "--out", "d.json"], capsys
    )
    assert "--images" in err


def test_detect_missing_checkpoint_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "x.npz", images=np.zeros((1, 32, 32, 3), np.uint8))
    argv = ["detect", "--checkpoint", str(tmp_path / "missing"), "--images", str(tmp_path / "x.npz"), "--out", "d.json"]
    err = fails(argv, capsys)
    assert "--checkpoint" in err


def test_detect_wrong_image_size_names_the_option(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(tmp_path / "x.npz", images=np.zeros((1, 30, 30, 3), np.uint8))  # not a multiple of stride 4
    err = fails(
        ["detect", "--checkpoint", str(trained), "--images", str(tmp_path / "x.npz"), "--out", "d.json"], capsys
    )
    assert "--images" in err


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_prints_map_and_writes_json(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(trained), "--images", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mAP@[.5:.95]" in printed and "mAP@.5" in printed
    assert len([line for line in printed.splitlines() if line.split() and line.split()[0].isdigit()]) == 10
    result = json.loads(out.read_text())
    assert {"map", "map50", "ap_per_class", "pr_curves"} <= set(result)
    assert result["num_images"] == 4
    assert len(result["ap_per_class"]) == 10 and len(result["pr_curves"]) == 10
    for value in (result["map"], result["map50"]):
        assert value is None or 0 <= value <= 1


@pytest.mark.parametrize("num", ["0", "-2"])
def test_evaluate_bad_image_count_names_the_option(trained: Path, capsys: pytest.CaptureFixture[str], num: str) -> None:
    err = fails(["evaluate", "--checkpoint", str(trained), "--images", num], capsys)
    assert "--images" in err


def test_evaluate_missing_checkpoint_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(["evaluate", "--checkpoint", str(tmp_path)], capsys)  # a directory without config.json
    assert "--checkpoint" in err and "config.json" in err


def test_evaluate_corrupt_checkpoint_names_the_option(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.json").write_text((trained / "config.json").read_text())
    (tmp_path / "model.weights.h5").write_bytes(b"garbage" * 20)
    err = fails(["evaluate", "--checkpoint", str(tmp_path)], capsys)
    assert "--checkpoint" in err and "model.weights.h5" in err


# ----------------------------------------------------------------------------- the console script
def test_console_script_help() -> None:
    script = Path(sys.executable).parent / "ssdboard"
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    for command in ("train", "detect", "evaluate", "serve"):
        assert command in proc.stdout
    assert "bench" not in proc.stdout  # the benchmarks are python -m benchmarks.*, not shipped


# ----------------------------------------------------------------------------- analyze


def test_analyze_prints_and_writes_every_ground_truths_story(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ssd.datasets.resolve import resolve

    out = tmp_path / "analysis.json"
    capsys.readouterr()
    assert main(["analyze", "--checkpoint", str(trained), "--images", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dataset mnist, val split, 4 images" in printed and "missed: no prior can match it" in printed
    doc = json.loads(out.read_text())
    config = from_dict(json.loads((trained / "config.json").read_text()))
    val = resolve(config).split(config, "val", augment=False)
    objects = [val[i].labels.tolist() for i in range(4)]  # the ground truths analyzed, in order
    assert [g["class"] for g in doc["ground_truths"]] == [c for labels in objects for c in labels]
    assert [g["image"] for g in doc["ground_truths"]] == [i for i, labels in enumerate(objects) for _ in labels]
    assert sum(doc["causes"].values()) == len(doc["ground_truths"])
    assert sum(b["ground_truths"] for b in doc["recall_by_prior_iou"]) == len(doc["ground_truths"])
    assert {"ap50", "tide", "ap_by_size", "ground_truths", "health"} <= set(doc)


def test_analyze_bad_options_are_named(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--images" in fails(["analyze", "--checkpoint", str(trained), "--images", "0"], capsys)
    assert "--checkpoint" in fails(["analyze", "--checkpoint", str(tmp_path)], capsys)
    err = fails(["analyze", "--checkpoint", str(trained), "--dataset", "nope", "--data-dir", str(tmp_path)], capsys)
    assert "--dataset" in err and "nope" in err
