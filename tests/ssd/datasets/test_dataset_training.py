"""Your own data end to end through the CLI: export the generator as COCO, import it, train on it
by name, evaluate on its validation split; and the refusals that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssd.cli import main
from ssd.config import ConfigError, from_dict
from ssd.datasets.resolve import apply_dataset

TINY = {
    "preset": "notebook",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[12, 18]], "ratios": [0.7]},
    "data": {"dataset": "digits", "image_size": 32, "scale_range": [0.5, 1.0]},
    "train": {"steps": 3, "batch_size": 2, "eval_images": 4, "checkpoint_every": 0},
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the generator's first 30 images imported as the COCO dataset 'digits'."""
    root = tmp_path_factory.mktemp("own-data")
    export = root / "export"
    assert main(["datasets", "export", "mnist", "--format", "coco", "--images", "30", "--out", str(export)]) == 0
    code = main(["datasets", "import", str(export), "--name", "digits", "--data-dir", str(root / "data"), "--json"])
    assert code == 0
    return root / "data"


def test_a_config_binds_to_its_dataset(data_dir: Path) -> None:
    bound = apply_dataset({"data": {"dataset": "digits"}}, data_dir)
    assert bound["model"]["num_classes"] == 10 and len(bound["data"]["dataset"]) == 12  # the id, not the name
    assert from_dict(bound).data.dataset == bound["data"]["dataset"]
    with pytest.raises(ConfigError) as unknown:
        apply_dataset({"data": {"dataset": "nope"}}, data_dir)
    assert unknown.value.field == "data.dataset"
    with pytest.raises(ConfigError) as classes:
        apply_dataset({"data": {"dataset": "digits"}, "model": {"num_classes": 3}}, data_dir)
    assert classes.value.field == "model.num_classes" and "10 classes" in classes.value.message
    assert apply_dataset({"data": {"dataset": "mnist"}, "model": {"num_classes": 3}}, data_dir)["model"] == {
        "num_classes": 3
    }


@pytest.mark.slow
def test_train_and_evaluate_on_an_import(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--data-dir", str(data_dir), "--out", str(run), "--quiet"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["num_classes"] == 10 and saved["data"]["dataset"] != "digits"
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    # 30 images, a 0.1 validation fraction: 3 validation images, however many --images asks for.
    assert "images        3" in out and "mAP@.5" in out


def test_training_on_an_unknown_dataset_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"data": {"dataset": "nowhere"}}))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert "option --config: data.dataset: no dataset with the id or name 'nowhere'" in capsys.readouterr().err


def test_loader_processes_make_the_imports_batches(data_dir: Path) -> None:
    """The imported dataset's batches, augmentation and all, come out of worker processes as the
    in-process loader makes them (each worker is handed the resolved source and reads its index)."""
    import numpy as np

    from ssd.datasets.resolve import resolve
    from ssd.loader_pool import BatchPool

    data = {"dataset": "digits", "image_size": 32, "scale_range": [0.5, 1.0], "loader_processes": 2}
    config = from_dict(apply_dataset({**TINY, "data": data}, data_dir))
    assert config.augment.crop and config.augment.flip  # the random augmentation is on
    source = resolve(config, data_dir)
    dataset = source.split(config, "train")
    starts = [0, 6, 2, 40]  # 40: past the first epoch
    with BatchPool(config, source, processes=2) as pool:
        made = list(pool.batches(starts, 3))
    for start, batch in zip(starts, made, strict=True):
        for got, expected in zip(batch, dataset.batch(start, 3)[:3], strict=True):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_evaluate_prints_the_datasets_class_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ssd.datasets.export import export_generator

    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    out = export_generator(tmp_path / "export", "coco", images=12, val_fraction=0.25, seed=0)
    for path in out.rglob("*.json"):  # the digits, named in words
        data = json.loads(path.read_text())
        data["categories"] = [{**c, "name": words[int(c["name"])]} for c in data["categories"]]
        path.write_text(json.dumps(data))
    data_dir = tmp_path / "data"
    assert main(["datasets", "import", str(out), "--name", "words", "--data-dir", str(data_dir), "--json"]) == 0
    config = tmp_path / "tiny.json"
    config.write_text(
        json.dumps({**TINY, "data": {**TINY["data"], "dataset": "words"}, "train": {**TINY["train"], "steps": 1}})
    )
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--data-dir", str(data_dir), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run), "--data-dir", str(data_dir)]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[4:]]
    assert rows == words
