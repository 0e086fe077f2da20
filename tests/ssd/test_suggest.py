"""Suggested priors: the mnist target measured independently, the budget, determinism, hand cases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssd.cli import main
from ssd.clusters import kmeans_shapes, shape_iou
from ssd.config import PriorConfig, from_dict
from ssd.coverage import dataset_boxes
from ssd.prior_grid import full_cover_size, grid_iou
from ssd.priors import make_priors, prior_shapes
from ssd.suggest import fit, priors_section, suggest_priors

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = from_dict({"preset": "notebook"})  # norm3_2, norm4_2, norm5_2: strides 4, 8, 16 at 128 px


def brute_force_coverage(boxes: np.ndarray, priors: np.ndarray, threshold: float) -> float:
    """Share of ``boxes`` [G, 4] with some prior of ``priors`` [P, 4] (both ``xyxy``) at IoU >= threshold,
    written out here so that the check shares no code with the suggester or ssd.coverage."""
    best = np.zeros(len(boxes))
    for start in range(0, len(boxes), 500):
        g = boxes[start : start + 500, None, :].astype(np.float64)
        p = priors[None, :, :].astype(np.float64)
        w = np.clip(np.minimum(g[..., 2], p[..., 2]) - np.maximum(g[..., 0], p[..., 0]), 0, None)
        h = np.clip(np.minimum(g[..., 3], p[..., 3]) - np.maximum(g[..., 1], p[..., 1]), 0, None)
        inter = w * h
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        best[start : start + 500] = (inter / (area(g) + area(p) - inter)).max(axis=1)
    return float((best >= threshold).mean())


def test_mnist_target_six_per_cell_covers_995_percent() -> None:
    """The issue's target: the notebook's three source layers, <= 6 priors per cell, >= 99.5% at IoU 0.5
    on 2000 training images (the notebook's 3 per cell, 9 shapes in all: about 89-91%)."""
    data = dataset_boxes(NOTEBOOK, "train", 2000)
    boxes = data.boxes[data.valid]
    fitted = fit(data, NOTEBOOK, per_cell=6)
    priors = fitted.suggestion.priors
    assert priors.strides == (4, 8, 16)
    assert max(priors.priors_per_cell) <= 6
    suggested = brute_force_coverage(boxes, make_priors(priors, 128).boxes, 0.5)
    notebook = brute_force_coverage(boxes, make_priors(NOTEBOOK.priors, 128).boxes, 0.5)
    assert suggested >= 0.995, (suggested, priors)
    assert notebook < 0.92
    # ssd.coverage (with each prior owned by one ground truth) agrees to within a few boxes.
    assert fitted.after.matched / fitted.after.num_gt == pytest.approx(suggested, abs=0.002)
    assert fitted.before.matched / fitted.before.num_gt == pytest.approx(notebook, abs=0.002)
    # The section is a valid config, and held-out validation digits are covered as well.
    config = from_dict({"preset": "notebook", "priors": priors_section(priors)})
    val = dataset_boxes(config, "val", 300)
    assert brute_force_coverage(val.boxes[val.valid], make_priors(config.priors, 128).boxes, 0.5) >= 0.99


def test_budget_respected_for_every_budget_and_other_layers() -> None:
    data = dataset_boxes(NOTEBOOK, "train", 200)
    two_layers = from_dict(
        {
            "preset": "notebook",
            "model": {"source_layers": ["norm4_2", "norm5_2"]},
            "priors": {"strides": [8, 16], "scales": [25, 40]},
        }
    )
    for config in (NOTEBOOK, two_layers):
        for k in (1, 2, 4, 9):
            priors = fit(data, config, per_cell=k).suggestion.priors
            assert priors.strides == config.priors.strides
            assert max(priors.priors_per_cell) <= k
            assert len(set(priors.ratios)) == len(priors.ratios)
            layers = {"source_layers": list(config.model.source_layers)}
            from_dict({"preset": "notebook", "model": layers, "priors": priors_section(priors)})  # a valid section


def test_deterministic() -> None:
    boxes = dataset_boxes(NOTEBOOK, "train", 300)
    b = boxes.boxes[boxes.valid]
    runs = [suggest_priors(b, strides=(4, 8, 16), image_size=128, iou_threshold=0.5, per_cell=6) for _ in range(2)]
    assert runs[0].priors == runs[1].priors and runs[0].kmeans == runs[1].kmeans


def test_one_shape_everywhere_is_that_shape() -> None:
    """Boxes of 20x10 px centred on the cells of a stride-8 layer of a 64 px image: at IoU 0.9 the
    prior must be that shape (ratio 2, scale sqrt(200) = 14.1 -> 20x10 after rounding) and covers all."""
    centres = 4 + 8 * np.arange(8, dtype=np.float32)
    cx, cy = np.meshgrid(centres, centres)
    boxes = np.stack([cx - 10, cy - 5, cx + 10, cy + 5], axis=-1).reshape(-1, 4)
    s = suggest_priors(boxes, strides=(8,), image_size=64, iou_threshold=0.9, per_cell=1)
    assert s.priors.priors_per_cell == (1,)
    np.testing.assert_array_equal(prior_shapes(s.priors.scales[0], s.priors.ratios), [[20, 10]])
    assert s.estimate == 1.0
    assert brute_force_coverage(boxes, make_priors(s.priors, 64).boxes, 0.9) == 1.0


def test_grid_iou_is_the_best_over_the_layers_priors() -> None:
    """The nearest grid centre gives each box its best prior of a shape (border cells included)."""
    rng = np.random.default_rng(1)
    xy = rng.uniform(-10, 100, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 60, (300, 2))], axis=1).astype(np.float32)
    config = PriorConfig(strides=(8,), scales=((6.0, 13.0, 31.0),), ratios=(0.3, 1.0, 2.5))
    layout = make_priors(config, 100)  # 13 x 13 cells, the last one past the image's edge
    fast = grid_iou(boxes, layout.shapes[0], 8, 100)
    for k in range(len(layout.shapes[0])):
        p = layout.boxes[layout.shape == k].astype(np.float64)
        g = boxes[:, None, :].astype(np.float64)
        w = np.clip(np.minimum(g[..., 2], p[:, 2]) - np.maximum(g[..., 0], p[:, 0]), 0, None)
        h = np.clip(np.minimum(g[..., 3], p[:, 3]) - np.maximum(g[..., 1], p[:, 1]), 0, None)
        union = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1]) + (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
        np.testing.assert_allclose(fast[k], (w * h / (union - w * h)).max(axis=1), atol=1e-6)


def test_full_cover_size_by_hand() -> None:
    # stride 4, IoU 0.5: a = 2 / (1 - sqrt(2/3)) = 10.899; shifted by (2, 2) its IoU is exactly 0.5.
    a = full_cover_size(4, 0.5)
    assert a == pytest.approx(10.899, abs=1e-3)
    assert (a - 2) ** 2 / (2 * a**2 - (a - 2) ** 2) == pytest.approx(0.5)
    assert full_cover_size(16, 0.5) == pytest.approx(4 * a)


def test_kmeans_of_two_groups_finds_their_medians() -> None:
    wh = np.array([[10, 30], [11, 31], [9, 29], [40, 40], [42, 41], [41, 39]], float)
    centres, counts = kmeans_shapes(wh, 2, seed=0)
    np.testing.assert_array_equal(centres, [[10, 30], [41, 40]])
    np.testing.assert_array_equal(counts, [3, 3])
    assert shape_iou(np.array([[10.0, 30.0]]), np.array([[10.0, 15.0]]))[0, 0] == pytest.approx(0.5)


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="per_cell"):
        suggest_priors(np.array([[0, 0, 5, 5]], np.float32), strides=(4,), image_size=32, iou_threshold=0.5, per_cell=0)
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        suggest_priors(np.zeros((0, 4), np.float32), strides=(4,), image_size=32, iou_threshold=0.5, per_cell=2)


def test_cli_suggest_json_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "notebook.json"
    config.write_text(json.dumps({"preset": "notebook"}))
    argv = ["priors", "suggest", "--dataset", "mnist", "--config", str(config), "--per-cell", "4", "--images", "100"]
    assert main([*argv, "--json", "--data-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["before"]["priors"] == priors_section(NOTEBOOK.priors)
    assert max(out["after"]["priors_per_cell"]) <= 4 and out["priors"] == out["after"]["priors"]
    assert out["after"]["share_matched"] > out["before"]["share_matched"]
    assert main([*argv, "--data-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "suggested" in text and json.loads(text.splitlines()[-1]) == {"priors": out["priors"]}
    for bad, option in (
        (["--per-cell", "0"], "--per-cell"),
        (["--images", "0"], "--images"),
        (["--dataset", "nope"], "--dataset"),
        (["--config", str(tmp_path / "missing.json")], "--config"),
    ):
        with pytest.raises(SystemExit) as exc:
            main([*argv, *bad, "--data-dir", str(tmp_path)])
        assert exc.value.code == 2
        assert f"option {option}" in capsys.readouterr().err


def test_suggest_loads_no_tensorflow() -> None:
    probe = "import sys, ssd.suggest, ssd.cli.priors; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_imported_dataset_from_its_index(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """split_boxes reads an imported split's boxes from the index: those the unaugmented samples
    hold (images decoded here only to check); the CLI fits them."""
    from ssd.datasets.export import export_generator
    from ssd.datasets.registry import Registry
    from ssd.datasets.resolve import for_config, split_boxes

    out = export_generator(tmp_path / "coco", "coco", images=30, val_fraction=0.2, seed=0)
    Registry(tmp_path / "data").import_dataset(out, name="digits")
    config = from_dict({"data": {"dataset": "digits", "image_size": 96, "resize": "letterbox"}})
    boxes = split_boxes(config, "train", 1000, tmp_path / "data")  # 1000: the split is shorter
    train = for_config(config, "train", tmp_path / "data", augment=False)
    assert boxes.counts.size == len(train) == 24
    for i in range(len(train)):  # sample i is image order[i] of the split, unaugmented
        position, _ = train.record(i)
        np.testing.assert_allclose(boxes.boxes[position, : boxes.counts[position]], train[i].boxes, atol=1e-4)
    data = str(tmp_path / "data")
    assert main(["priors", "suggest", "--dataset", "digits", "--per-cell", "2", "--json", "--data-dir", data]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_images"] == 24 and max(result["after"]["priors_per_cell"]) <= 2
