"""The data-fitted recipe (:mod:`ssd.recipe`): each choice worked by hand on made-up boxes and
datasets, keys the user set left alone, and the choices kept with the run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssd.checkpoint import RECIPE_FILE, read_recipe
from ssd.cli.commands import main
from ssd.config import from_dict
from ssd.datasets.export import export_generator
from ssd.datasets.registry import Registry
from ssd.datasets.resolve import apply_dataset, resolve
from ssd.recipe import EMA_DECAY, MIN_SIDE, MIN_STEPS, choose_expand, choose_image_size, choose_steps, fit_recipe


def squares(side: float, n: int = 50) -> np.ndarray:
    """``n`` square pixel ``xyxy`` boxes of ``side`` px."""
    return np.tile(np.array([[10.0, 10.0, 10.0 + side, 10.0 + side]], np.float32), (n, 1))


def test_min_side_is_the_stride_4_full_cover_size() -> None:
    # A square box of side a, 2 px (half the stride) off its prior in x and y: overlap (a - 2)^2,
    # union 2 a^2 - (a - 2)^2; IoU 0.5 at (a - 2)^2 = a^2 / 1.5, a = 2 / (1 - sqrt(2/3)) = 10.90.
    assert MIN_SIDE == pytest.approx(2 / (1 - math.sqrt(2 / 3)), rel=1e-6)


def test_image_size_grows_until_small_boxes_reach_min_side() -> None:
    # 6 px at 128 px is 6/128 of the side: 10.9 px needs 232 px, so 256 of SIZES
    size, why = choose_image_size(squares(6.0), 128, None)
    assert size == 256
    assert why.startswith("the 10th percentile of the boxes' shorter sides is 12.0 px at 256 px")
    assert why.endswith("at 128 px it would be 6.0 px")
    # big enough already: the smallest size
    assert choose_image_size(squares(20.0), 128, None)[0] == 128
    # the 10th percentile, not the smallest box: 5 of 50 boxes at 6 px, the rest at 20 px
    mixed = np.concatenate([squares(6.0, 4), squares(20.0, 46)])
    assert choose_image_size(mixed, 128, None)[0] == 128
    # sides measured at another input size scale with it: 12 px at 256 px is 6 px at 128 px
    assert choose_image_size(squares(12.0), 256, None)[0] == 256


def test_image_size_stops_at_the_images_own_size() -> None:
    # 200 px images: 224 is the first size past them; 6/128 * 224 = 10.5 px is still short
    size, why = choose_image_size(squares(6.0), 128, 200.0)
    assert size == 224 and "(the images' own size)" in why and "may be missed" in why
    assert choose_image_size(squares(2.0), 128, None)[0] == 384  # the largest size


def test_steps_count_epochs_of_a_small_dataset() -> None:
    assert choose_steps(322, 16, 1200) == (3019, "150 epochs of 322 training images at batch 16")  # ceil(150*322/16)
    steps, why = choose_steps(50, 16, 1200)  # 469 steps
    assert steps == MIN_STEPS and why.endswith("would be 469 steps; kept within 600..3600")
    assert choose_steps(1900, 16, 1200)[0] == 3600  # 17813 capped at 3 x the preset's


def test_zoom_out_stops_where_small_boxes_would_fall_below_min_side() -> None:
    # DeepForest's tiles: 16 px / 10.9 px = 1.47, one decimal rounded down so 16 / 1.4 = 11.4 px stays above
    ratio, why = choose_expand(16.0, 128, 4.0)
    assert ratio == 1.4
    assert why == (
        "the 10th percentile of the boxes' shorter sides is 16.0 px at 128 px: zoom-out by up to 4x would "
        "take it to 4.0 px, below 10.9 px; 1.4x keeps it above"
    )
    assert choose_expand(10.0, 128, 4.0) == (
        1.0,
        "the 10th percentile of the boxes' shorter sides is 10.0 px at 128 px: zoom-out by up to 4x would "
        "take it to 2.5 px, below 10.9 px, so zoom-out is off",
    )
    assert choose_expand(4 * MIN_SIDE, 128, 4.0) is None  # large boxes: the preset's zoom-out stays
    assert choose_expand(30.0, 128, 2.0) is None  # 30 / 2 = 15 px: the preset's 2x is fine


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 generated images imported as the COCO dataset 'digits' (15 train, 5 val)."""
    root = tmp_path_factory.mktemp("recipe")
    out = export_generator(root / "export", "coco", images=20, val_fraction=0.25, seed=0)
    Registry(root / "data").import_dataset(out, name="digits")
    return root / "data"


def fitted(data: dict[str, Any], data_dir: Path) -> tuple[dict[str, Any], list[Any]]:
    bound = apply_dataset(data, data_dir)
    return fit_recipe(bound, resolve(from_dict(bound), data_dir))


def test_an_import_gets_every_choice_with_its_reason(data_dir: Path) -> None:
    out, choices = fitted({"data": {"dataset": "digits"}}, data_dir)
    assert [c.key for c in choices] == ["data.image_size", "priors", "augment.expand", "train.steps", "train.ema_decay"]
    config = from_dict(out)
    assert config.augment.expand == choices[2].value == 1.4  # digits' shorter sides: 15.4 px at the 10th percentile
    assert config.data.image_size == 128  # digits of 22 px and more
    assert config.train.steps == MIN_STEPS  # 150 epochs of 15 images at 16 is 141 steps
    assert config.train.ema_decay == choices[4].value == EMA_DECAY == 0.999  # fewer than 2,000 training images
    priors = choices[1]
    assert list(config.priors.ratios) == priors.value["ratios"]
    assert "training boxes at 128 px" in priors.reason and "->" in priors.reason
    assert choices[3].text == "train.steps = 600: 150 epochs of 15 training images at batch 16 would be 141 steps; " + (
        "kept within 600..3600"
    )


def test_keys_the_user_set_are_kept_and_the_generator_gets_none(data_dir: Path) -> None:
    given = {
        "data": {"dataset": "digits", "image_size": 96},
        "priors": {"ratios": [1.0]},
        "train": {"steps": 7, "ema_decay": 0.0},
        "augment": {"expand": 4.0},
    }
    out, choices = fitted(given, data_dir)
    assert choices == []
    config = from_dict(out)
    assert (config.data.image_size, config.priors.ratios, config.train.steps) == (96, (1.0,), 7)
    mnist, none = fit_recipe({}, resolve(from_dict({}), data_dir))
    assert none == [] and mnist == {}


def test_no_average_of_the_weights_for_several_workers(data_dir: Path) -> None:
    """``train.ema_decay`` needs one worker (ssd.sections): with two the recipe leaves it off."""
    out, choices = fitted({"data": {"dataset": "digits"}, "train": {"workers": 2}}, data_dir)
    assert "train.ema_decay" not in [c.key for c in choices] and from_dict(out).train.ema_decay == 0.0


def test_train_prints_and_keeps_the_choices(data_dir: Path, tmp_path: Path, capsys: Any) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"data": {"dataset": "digits"}, "train": {"eval_images": 2}}))
    out = tmp_path / "run"
    argv = ["train", "--config", str(config), "--out", str(out), "--steps", "1", "--quiet", "--data-dir", str(data_dir)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "recipe: data.image_size = 128: " in err and "recipe: priors = {scales:" in err
    assert "recipe: train.steps" not in err  # --steps is the user's
    lines = read_recipe(out)
    assert lines is not None and [line.split(" = ")[0] for line in lines] == [
        "data.image_size",
        "priors",
        "augment.expand",
        "train.ema_decay",
    ]
    saved = json.loads((out / "config.json").read_text())
    choices = json.loads((out / RECIPE_FILE).read_text())["choices"]
    assert saved["priors"]["ratios"] == choices[1]["value"]["ratios"] and saved["train"]["steps"] == 1


def test_a_sweeps_jobs_fit_the_data_once(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs that differ only in keys the data choices do not read (a learning rate) share one fit."""
    import ssd.recipe

    calls = []
    real = ssd.recipe.fit
    monkeypatch.setattr(ssd.recipe, "fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(ssd.recipe, "_CACHE", type(ssd.recipe._CACHE)())
    first = fitted({"data": {"dataset": "digits"}, "train": {"learning_rate": 0.001}}, data_dir)
    second = fitted({"data": {"dataset": "digits"}, "train": {"learning_rate": 0.003}}, data_dir)
    assert len(calls) == 1 and first[0]["priors"] == second[0]["priors"]
    fitted({"data": {"dataset": "digits"}, "matching": {"iou_threshold": 0.4}}, data_dir)  # read by the fit
    assert len(calls) == 2
