"""Tests for ssd.config: presets, validation naming the dotted field, file loading."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from ssd.config import (
    BASE_LAYERS,
    Config,
    ConfigError,
    PriorConfig,
    from_dict,
    layer_stride,
    load,
    scale_groups,
)


def _field_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    return info.value.field


def test_notebook_preset_is_the_notebook_set_up() -> None:
    cfg = from_dict({"preset": "notebook"})
    # seed/NOTES.md, "The rest of the set-up".
    assert cfg.model.num_units == 16
    assert cfg.model.source_layers == ("norm3_2", "norm4_2", "norm5_2")
    assert cfg.model.num_classes == 10
    assert cfg.priors.strides == (4, 8, 16)
    assert cfg.priors.scales == ((10.0,), (25.0,), (40.0,))
    assert cfg.priors.ratios == (0.4, 0.8, 1.2)
    assert cfg.priors.priors_per_cell == (3, 3, 3)
    assert cfg.matching.iou_threshold == 0.5
    assert cfg.matching.force_best is False
    assert cfg.matching.variances is None
    assert (cfg.loss.alpha, cfg.loss.pos_neg_ratio) == (1.0, 3.0)
    assert (cfg.loss.normalization, cfg.loss.mining) == ("notebook", "batch")
    assert cfg.data.image_size == 128
    assert (cfg.data.min_digits, cfg.data.max_digits) == (2, 6)
    assert cfg.data.scale_range == (0.8, 2.5)
    assert cfg.train.learning_rate == 1e-3
    assert cfg.train.schedule == "constant"
    # The dataclass defaults are the notebook's values; the preset only names the run.
    assert dataclasses.replace(cfg, name=Config().name) == Config()


def test_empty_document_gives_the_default_preset() -> None:
    cfg = from_dict({})
    assert cfg == from_dict({"preset": "default"}) == from_dict(None)
    assert cfg.name == "default"
    assert cfg.priors.scales == ((10.0, 16.0), (25.0, 36.0), (48.0, 64.0))
    assert cfg.priors.priors_per_cell == (6, 6, 6)
    assert cfg.matching.force_best is True
    assert cfg.matching.variances == (0.1, 0.2)


def test_empty_source_layers_and_strides_mean_the_backbones_own() -> None:
    cfg = from_dict({"model": {"source_layers": []}, "priors": {"strides": []}})
    assert cfg.model.source_layers == ("norm3_2", "norm4_2", "norm5_2") and cfg.priors.strides == (4, 8, 16)


def test_overrides_merge_into_the_preset() -> None:
    cfg = from_dict({"train": {"steps": 20}, "matching": {"iou_threshold": 0.4}})
    assert cfg.train.steps == 20
    assert cfg.train.schedule == "cosine"  # still the default preset's
    assert cfg.matching == dataclasses.replace(from_dict({}).matching, iou_threshold=0.4)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"train": {"foo": 1}}, "train.foo"),
        ({"foo": 1}, "foo"),
        ({"preset": "huge"}, "preset"),
        ({"preset": ["notebook"]}, "preset"),  # unhashable: once escaped as a TypeError
        ({"priors": {"strides": [-4, 8, 16]}}, "priors.strides"),
        ({"priors": {"ratios": []}}, "priors.ratios"),
        ({"train": {"batch_size": 0}}, "train.batch_size"),
        ({"train": {"steps": "many"}}, "train.steps"),
        ({"train": {"steps": True}}, "train.steps"),
        ({"model": {"source_layers": ["norm3_2", "norm4_2", "norm9_2"]}}, "model.source_layers"),
        ({"model": {"source_layers": ["norm3_2", "norm4_2", "norm4_2"]}}, "model.source_layers"),  # twice
        ({"priors": {"strides": [8, 8, 16]}}, "priors.strides"),  # norm3_2 has stride 4
        ({"priors": {"strides": [4, 8]}}, "priors.scales"),  # 3 scale groups for 2 strides
        ({"priors": {"scales": [10, 25]}}, "priors.scales"),
        ({"priors": {"scales": [10, [], 40]}}, "priors.scales"),
        ({"matching": {"iou_threshold": 0}}, "matching.iou_threshold"),
        ({"matching": {"variances": [0.1]}}, "matching.variances"),
        ({"loss": {"normalization": "mean"}}, "loss.normalization"),
        ({"data": {"image_size": 16}}, "data.image_size"),
        ({"data": {"image_size": 32}}, "data.scale_range"),  # default high 2.5: 70 px digits (found by fuzzing)
        ({"model": "big"}, "model"),
    ],
)
def test_bad_values_name_their_field(data: dict[str, Any], field: str) -> None:
    assert _field_of(data) == field


def test_layer_strides() -> None:
    expected = {"1_1": 1, "1_3": 1, "2_1": 1, "2_2": 2, "3_1": 2, "3_2": 4, "4_2": 8, "5_1": 8, "5_2": 16}
    for suffix, stride in expected.items():
        assert layer_stride(f"conv{suffix}") == layer_stride(f"norm{suffix}") == stride
    assert len(BASE_LAYERS) == 2 * (3 + 4 * 2)
    with pytest.raises(KeyError):
        layer_stride("norm6_2")


def test_scales_normalisation() -> None:
    assert scale_groups([10, [25, 32]]) == ((10.0,), (25.0, 32.0))
    cfg = from_dict(
        {
            "preset": "notebook",
            "model": {"source_layers": ["norm3_2", "norm4_2"]},
            "priors": {"strides": [4, 8], "scales": [10, [25, 32]]},
        }
    )
    assert cfg.priors.scales == ((10.0,), (25.0, 32.0))
    assert cfg.priors.priors_per_cell == (3, 6)  # 1 x 3 ratios, 2 x 3 ratios


def test_prior_config_checks_on_construction() -> None:
    with pytest.raises(ConfigError) as info:
        PriorConfig(strides=(4,), scales=((0.5,),), ratios=(1.0,))
    assert info.value.field == "priors.scales"


@pytest.mark.parametrize("preset", ["default", "notebook"])
def test_to_dict_from_dict_round_trip(preset: str) -> None:
    cfg = from_dict({"preset": preset, "seed": 5, "train": {"steps": 30}})
    data = cfg.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-ready
    assert from_dict(data) == cfg
    assert from_dict({"preset": "notebook", **data}) == cfg


def test_json_load_round_trip(tmp_path: Path) -> None:
    cfg = from_dict({"name": "json-run", "seed": 11, "loss": {"alpha": 2.0}})
    path = tmp_path / "run.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert load(path) == cfg


def test_toml_load(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        "\n".join(
            [
                'preset = "notebook"',
                'name = "toml-run"',
                "seed = 3",
                "[priors]",
                "scales = [10, [25, 32], 40]",
                "[train]",
                "steps = 20",
                "batch_size = 4",
                "",
            ]
        )
    )
    cfg = load(path)
    assert cfg == from_dict(
        {
            "preset": "notebook",
            "name": "toml-run",
            "seed": 3,
            "priors": {"scales": [10, [25, 32], 40]},
            "train": {"steps": 20, "batch_size": 4},
        }
    )
    assert cfg.priors.scales == ((10.0,), (25.0, 32.0), (40.0,))
    assert (cfg.train.steps, cfg.train.batch_size) == (20, 4)


@pytest.mark.parametrize(("suffix", "text"), [(".toml", "steps = = 3"), (".json", "{steps: 3")])
def test_unparsable_file_is_a_config_error(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.field == "config"
