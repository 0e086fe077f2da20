"""``model.init`` (every form loads what it says), ``train.freeze_backbone_steps`` and ``train.ema_decay``.

Training is the tiny model of ``test_train``; the source runs are trained a few steps so their
weights differ from any fresh initialisation.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from test_train import tiny_config

from ssd.checkpoint import BEST_WEIGHTS_FILE, WEIGHTS_FILE, check_init, init_kind, read_run_info
from ssd.cli.commands import main
from ssd.config import Config, ConfigError, from_dict
from ssd.detect import Detector
from ssd.ema import WeightAverage
from ssd.init import is_backbone, is_head
from ssd.model import build_ssd
from ssd.train import Trainer


def with_init(config: Config, init: str, **train: Any) -> Config:
    """``config`` with ``model.init`` and train keys replaced (through from_dict's checks)."""
    data = config.to_dict()
    data["model"]["init"] = init
    data["train"].update(train)
    return from_dict(data)


def layer_weights(model: keras.Model, name: str) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_layer(name).get_weights()]


def saved_model(config: Config, path: Path) -> keras.Model:
    """The weights file ``path`` in a model of ``config``."""
    model = build_ssd(config.model, config.priors, None, pretrained=False)
    model.load_weights(str(path))
    return model


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Config]:
    """A dashboard-like artifact root holding job ``src1``: 4 steps of the tiny model."""
    root = tmp_path_factory.mktemp("artifacts")
    config = tiny_config(steps=4)
    Trainer(config, root / "jobs" / "src1").fit()
    return root, config


def test_init_kinds(tmp_path: Path) -> None:
    (tmp_path / "w.h5").write_bytes(b"")
    assert [init_kind(v) for v in ("none", "imagenet", "job:ab12", str(tmp_path), str(tmp_path / "w.h5"))] == [
        "none",
        "imagenet",
        "job",
        "checkpoint",
        "file",
    ]
    # model.weights is the alias of model.init = "imagenet"
    assert from_dict({"model": {"backbone": "mobilenet_v2", "weights": "imagenet"}}).model.init == "imagenet"
    assert from_dict({"model": {"backbone": "mobilenet_v2", "init": "imagenet"}}).model.weights == "imagenet"
    with pytest.raises(ConfigError) as err:
        from_dict({"model": {"backbone": "mobilenet_v2", "weights": "imagenet", "init": "job:x"}})
    assert err.value.field == "model.weights"
    with pytest.raises(ConfigError) as err:
        from_dict({"model": {"init": "job:"}})
    assert err.value.field == "model.init"


@pytest.mark.parametrize("form", ["job", "checkpoint"])
def test_a_run_loads_every_layer_of_the_same_network(
    source_run: tuple[Path, Config], tmp_path: Path, form: str
) -> None:
    root, config = source_run
    source_dir = root / "jobs" / "src1"
    init = "job:src1" if form == "job" else str(source_dir)
    trainer = Trainer(with_init(config, init), tmp_path / "run", data_dir=root)
    source = saved_model(config, source_dir / BEST_WEIGHTS_FILE)
    report = trainer.init_report
    assert report is not None and report.new == ()
    assert set(report.loaded) == {layer.name for layer in trainer.model.layers if layer.weights}
    for name in report.loaded:
        for ours, theirs in zip(layer_weights(trainer.model, name), layer_weights(source, name), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    assert "best weights, step" in report.source and BEST_WEIGHTS_FILE in report.source


def test_heads_of_another_shape_start_fresh_and_are_reported(source_run: tuple[Path, Config], tmp_path: Path) -> None:
    root, config = source_run
    other = dataclasses.replace(config.priors, ratios=(0.7, 1.4))  # 4 priors a cell instead of 2
    config2 = dataclasses.replace(with_init(config, "job:src1"), priors=other)
    trainer = Trainer(config2, tmp_path / "run", data_dir=root)
    report = trainer.init_report
    assert report is not None
    assert [name for name, _ in report.new] == ["norm3_2_clf", "norm3_2_loc"]
    clf_reason = dict(report.new)["norm3_2_clf"]
    # 4 shapes x 11 channels here, 2 x 11 there; the kernel's input is norm3_2's 8 channels
    assert clf_reason == "shape [3, 3, 8, 44] [44] here, [3, 3, 8, 22] [22] in job:src1"
    assert all(is_backbone(name) for name in report.loaded)
    fresh = Trainer(dataclasses.replace(config, priors=other), tmp_path / "fresh")  # same seed, no init
    for name in ("norm3_2_clf", "norm3_2_loc"):
        for ours, theirs in zip(layer_weights(trainer.model, name), layer_weights(fresh.model, name), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    trainer.fit(steps=1)
    info = read_run_info(tmp_path / "run") or {}
    assert info["init"] == report.summary() and "norm3_2_clf (shape" in info["init_new"]


def test_a_backbone_of_another_shape_is_an_error(source_run: tuple[Path, Config], tmp_path: Path) -> None:
    root, config = source_run
    wider = dataclasses.replace(config.model, num_units=4)
    config2 = dataclasses.replace(with_init(config, "job:src1"), model=dataclasses.replace(wider, init="job:src1"))
    with pytest.raises(ConfigError) as err:
        Trainer(config2, tmp_path / "run", data_dir=root)
    assert err.value.field == "model.init"
    assert "layer conv1_1 has weights [3, 3, 3, 4] [4] here but [3, 3, 3, 2] [2] in job:src1" in err.value.message


def test_check_init_refuses_what_cannot_start_a_run(source_run: tuple[Path, Config], tmp_path: Path) -> None:
    root, config = source_run

    def refusal(init: str, *, backbone: str = "notebook", within: Path | None = None) -> str:
        ours = dataclasses.replace(config, model=dataclasses.replace(config.model, init=init))
        if backbone != "notebook":
            ours = from_dict({"model": {"backbone": backbone, "init": init}})
        with pytest.raises(ConfigError) as err:
            check_init(ours, root, within=within)
        assert err.value.field == "model.init"
        return err.value.message

    check_init(with_init(config, "job:src1"), root)  # fine
    assert refusal("job:nope") == "job nope has no run directory to start from"
    (root / "jobs" / "queued").mkdir()
    assert refusal("job:queued") == "job queued has no checkpoint yet to start from"
    assert refusal("job:../x") == "'../x' is not a job id"
    assert "holds no checkpoint" in refusal(str(tmp_path))
    assert refusal(str(tmp_path / "missing.h5"), backbone="mobilenet_v2").startswith("no such file")
    (tmp_path / "w.h5").write_bytes(b"x")
    assert "notebook backbone starts from a run" in refusal(str(tmp_path / "w.h5"))
    assert "is outside" in refusal(str(root / "jobs" / "src1"), within=tmp_path)
    assert "trained a notebook backbone, this run has mobilenet_v2" in refusal("job:src1", backbone="mobilenet_v2")


def test_train_refuses_a_bad_init_naming_the_option(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {"init": "job:nope"}}))
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(path), "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert "option --config: model.init: job nope has no run directory to start from" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_backbone_weights_file_loads_into_the_backbone(tmp_path: Path) -> None:
    """The file form: keras.applications reads it (as it reads the file it downloads)."""
    app = keras.applications.MobileNetV2(input_shape=(64, 64, 3), include_top=False, weights=None, alpha=1.0)
    for w in app.weights:  # not the initialisers' values: a load must be visible
        w.assign(np.random.default_rng(0).normal(size=w.shape).astype("float32"))
    path = tmp_path / "mobilenet.weights.h5"
    app.save_weights(str(path))
    config = from_dict(
        {
            "model": {"backbone": "mobilenet_v2", "init": str(path), "num_classes": 2},
            "data": {"image_size": 64, "scale_range": [0.5, 1.0], "val_images": 4},
            "train": {"steps": 1, "batch_size": 2, "eval_images": 2},
        }
    )
    trainer = Trainer(config, tmp_path / "run")
    report = trainer.init_report
    assert report is not None and report.source == str(path)
    for name in ("Conv1", "block_16_project"):
        for ours, theirs in zip(layer_weights(trainer.model, name), layer_weights(app, name), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    assert {name for name, _ in report.new} == {
        layer.name for layer in trainer.model.layers if layer.weights and not is_backbone(layer.name)
    }
    assert any(is_head(name) for name, _ in report.new)


def test_freeze_keeps_the_backbone_for_n_steps(source_run: tuple[Path, Config], tmp_path: Path) -> None:
    root, config = source_run
    trainer = Trainer(with_init(config, "job:src1", freeze_backbone_steps=2), tmp_path / "run", data_dir=root)
    before = {layer.name: layer_weights(trainer.model, layer.name) for layer in trainer.model.layers if layer.weights}
    trainer.fit(steps=2)

    def trainable_changed(name: str) -> bool:
        layer = trainer.model.get_layer(name)
        pairs = zip(before[name], layer.get_weights(), strict=True)
        kinds = [w.trainable for w in layer.weights]
        return any(not np.array_equal(a, b) for (a, b), t in zip(pairs, kinds, strict=True) if t)

    assert not any(trainable_changed(name) for name in before if is_backbone(name))
    assert all(trainable_changed(name) for name in before if is_head(name))
    trainer.fit(steps=3)
    assert trainable_changed("conv1_1")
    with pytest.raises(ConfigError) as err:
        from_dict({"train": {"freeze_backbone_steps": 5}})
    assert err.value.field == "train.freeze_backbone_steps"


def test_weight_average_by_hand() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(np.array([[1.0], [2.0]], np.float32))
    ema = WeightAverage(model, decay=0.5)
    expected = np.array([[1.0], [2.0]])
    for n, value in enumerate(([[3.0], [4.0]], [[5.0], [0.0]], [[1.0], [1.0]]), start=1):
        model.layers[0].kernel.assign(np.array(value, np.float32))
        ema.update()
        d = min(0.5, (1 + n) / (10 + n))  # 2/11, 3/12, 4/13: the ramp is below 0.5 here
        expected = d * expected + (1 - d) * np.array(value)
    np.testing.assert_allclose(ema.average[0].numpy(), expected, rtol=1e-6)
    with ema.applied():
        np.testing.assert_allclose(model.layers[0].kernel.numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), [[1.0], [1.0]])


def test_ema_weights_are_saved_kept_and_exported_and_a_resume_trains_on(tmp_path: Path) -> None:
    config = tiny_config(steps=4, ema_decay=0.9, checkpoint_every=0)
    out = tmp_path / "run"
    trainer = Trainer(config, out)
    trainer.fit(steps=3)
    assert trainer.ema is not None
    average, raw = [a.numpy() for a in trainer.ema.average], trainer.ema.raw()
    trainer.save_checkpoint()
    assert any(not np.array_equal(a, r) for a, r in zip(average, raw, strict=True))
    saved = saved_model(config, out / WEIGHTS_FILE)
    floats = [w for w in saved.weights if np.dtype(w.dtype).kind == "f"]
    for w, a in zip(floats, average, strict=True):
        np.testing.assert_array_equal(np.asarray(w), a)
    detector = Detector.from_checkpoint(out, "last")  # what detect, evaluate and export load
    for w, a in zip([w for w in detector.model.weights if np.dtype(w.dtype).kind == "f"], average, strict=True):
        np.testing.assert_array_equal(np.asarray(w), a)
    # the best (step 2's evaluation, the only one so far) is an average too, not the raw weights
    best = saved_model(config, out / BEST_WEIGHTS_FILE)
    assert not np.array_equal(best.get_layer("conv1_1").get_weights()[0], raw[0])
    resumed = Trainer(config, out)
    resumed.load_checkpoint()
    assert resumed.ema is not None and float(resumed.ema.updates.numpy()) == 3.0
    for w, r in zip(resumed.ema.raw(), raw, strict=True):  # the optimizer goes on from the raw weights
        np.testing.assert_array_equal(w, r)
    for a, b in zip(resumed.ema.average, average, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)


def test_train_prints_what_init_loaded(source_run: tuple[Path, Config], tmp_path: Path, capsys: Any) -> None:
    root, config = source_run
    path = tmp_path / "c.json"
    data = config.to_dict()
    data["model"]["init"] = "job:src1"
    data["train"]["steps"] = 1
    path.write_text(json.dumps(data))
    argv = ["train", "--config", str(path), "--out", str(tmp_path / "run"), "--quiet", "--data-dir", str(root)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    layers = sum(1 for layer in build_ssd(config.model, config.priors).layers if layer.weights)
    assert f"init: job:src1: {layers} layers loaded from" in err and "init new: none" in err
