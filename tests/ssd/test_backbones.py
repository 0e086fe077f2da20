"""Backbones beyond the notebook: keras.applications networks, the paper's extra layers, "auto"
scales, and the config errors of impossible combinations. Nothing is downloaded (weights "none";
the ImageNet case is a simulated failed download)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from ssd.backbones import BACKBONES, layer_names, stride_of
from ssd.config import ConfigError, from_dict
from ssd.model import build_ssd
from ssd.priors import make_priors


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "resnet50"])
@pytest.mark.parametrize("size", [96, 300])
def test_every_listed_layer_has_a_ceil_size_over_stride_map(backbone: str, size: int) -> None:
    """The strides the config uses are the networks' own ('same' padding: ceil)."""
    config = from_dict({"model": {"backbone": backbone, "extra_layers": 2}, "data": {"image_size": size}})
    model = build_ssd(config.model, config.priors, size)
    for name in layer_names(backbone, 2):
        side = model.get_layer(name).output.shape[1]
        assert side == math.ceil(size / stride_of(backbone, name)), name


@pytest.mark.parametrize(
    ("backbone", "size", "maps"),
    [
        ("notebook", 128, [32, 16, 8]),
        ("mobilenet_v2", 300, [19, 10, 5, 3, 2, 1]),  # SSD300's last four maps: 5, 3, 2 (3 with 'valid'), 1
        ("resnet50", 300, [38, 19, 10, 5, 3, 2]),
        ("mobilenet_v2", 128, [8, 4, 2, 1]),  # extra layers stop at the first 1x1 map
    ],
)
def test_the_heads_output_one_prediction_per_prior(backbone: str, size: int, maps: list[int]) -> None:
    config = from_dict({"model": {"backbone": backbone}, "data": {"image_size": size}})
    layout = make_priors(config.priors, size)
    assert [g[0] for g in layout.grid] == maps
    model = build_ssd(config.model, config.priors, size)
    assert model.output.shape[1:] == (len(layout), config.model.num_classes + 1 + 4)
    out = model(np.zeros((1, size, size, 3), np.uint8))
    assert out.shape == (1, len(layout), 15) and out.dtype == "float32"


def test_auto_scales_follow_the_papers_rule() -> None:
    """Eq. 4 with s_min 0.2, s_max 0.9 and m = 6: 0.2, 0.34, 0.48, 0.62, 0.76, 0.9 of 300 px,
    each with the extra sqrt(s_k s_k+1) size (s_7 = 0.9 + 0.14 capped at 1)."""
    config = from_dict({"model": {"backbone": "resnet50"}, "data": {"image_size": 300}})
    s = [0.2, 0.34, 0.48, 0.62, 0.76, 0.9, 1.0]
    want = [(round(s[k] * 300, 1), round(math.sqrt(s[k] * s[k + 1]) * 300, 1)) for k in range(6)]
    assert config.priors.scales == tuple(want)
    assert want[0] == (60.0, 78.2) and want[-1] == (270.0, 284.6)
    assert config.priors.strides == (8, 16, 32, 64, 128, 256)
    assert config.priors.ratios == (0.5, 1.0, 2.0)  # the backbone's default when none are given
    notebook = from_dict({"priors": {"scales": "auto", "min_scale": 0.1, "max_scale": 0.5}})
    # s = 0.1, 0.3, 0.5 (and 0.7): sqrt(0.1 * 0.3) * 128 = 22.17, sqrt(0.15) * 128 = 49.57, sqrt(0.35) * 128 = 75.73
    assert notebook.priors.scales == ((12.8, 22.2), (38.4, 49.6), (64.0, 75.7))
    assert notebook.priors.ratios == (0.35, 0.6, 1.0)  # the preset's: a notebook config keeps them


def test_priors_of_a_size_the_strides_do_not_divide_stay_inside_the_image() -> None:
    config = from_dict({"model": {"backbone": "mobilenet_v2"}, "data": {"image_size": 300}})
    layout = make_priors(config.priors, 300)
    centres = (layout.boxes[:, :2] + layout.boxes[:, 2:]) / 2
    assert centres.min() > 0 and centres.max() < 300
    first = layout.boxes[layout.layer == 0][0]  # stride 16, 19 cells: centre (0 + 0.5) * 300 / 19
    assert np.isclose((first[0] + first[2]) / 2, 150 / 19)
    one = layout.boxes[layout.layer == 5]  # the 1x1 map: centred on the image
    assert np.allclose((one[:, 0] + one[:, 2]) / 2, 150)
    divisible = make_priors(from_dict({}).priors, 128)  # the notebook's rule where strides divide
    # cell (0, 0) of stride 4 centres at 2; scale 10, ratio 0.35 -> 6 x 17 px (rounded)
    assert divisible.boxes[0].tolist() == [-1.0, -6.5, 5.0, 10.5]


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"model": {"backbone": "mobilenet_v2", "source_layers": ["norm3_2"]}}, "model.source_layers", "mobilenet_v2"),
    ({"model": {"backbone": "resnet50", "source_layers": ["out_relu"]}}, "model.source_layers", "resnet50"),
    ({"model": {"source_layers": ["norm5_2", "extra1"]}}, "model.source_layers", "extra_layers >= 1"),
    ({"model": {"backbone": "vgg16"}}, "model.backbone", "notebook"),
    ({"model": {"weights": "imagenet"}}, "model.weights", "no ImageNet weights"),
    ({"model": {"backbone": "resnet50", "num_units": 8}}, "model.num_units", "notebook"),
    ({"model": {"extra_layers": 7}}, "model.extra_layers", "0..6"),
    ({"priors": {"strides": [4, 8, 32]}}, "priors.strides", "norm5_2 has stride 16"),
    ({"model": {"source_layers": ["norm3_2", "norm4_2"]}}, "priors.scales", "one entry per source layer (2)"),
    (
        {"model": {"backbone": "mobilenet_v2", "extra_layers": 4}, "data": {"image_size": 128}},
        "data.image_size",
        "extra3 (stride 256)",
    ),
    ({"priors": {"scales": "big"}}, "priors.scales", "auto"),
    ({"priors": {"scales": "auto", "min_scale": 0.5, "max_scale": 0.2}}, "priors.min_scale", "max_scale"),
]


@pytest.mark.parametrize(("data", "field", "words"), BAD)
def test_an_impossible_combination_is_an_error_naming_its_key(data: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    assert err.value.field == field and words in err.value.message


def test_a_failed_imagenet_download_is_an_error_naming_model_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test downloads: the download is made to fail as on a machine without internet."""
    from keras.src.utils import file_utils

    def offline(*args: Any, **kwargs: Any) -> str:
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- no route to host")

    monkeypatch.setattr(file_utils, "get_file", offline)
    config = from_dict({"model": {"backbone": "mobilenet_v2", "weights": "imagenet"}, "data": {"image_size": 96}})
    with pytest.raises(ConfigError) as err:
        build_ssd(config.model, config.priors, 96)
    assert err.value.field == "model.weights" and "~/.keras/models" in err.value.message
    assert keras.config.dtype_policy().name == "float32"  # the build left the global policy as it was
    build_ssd(config.model, config.priors, 96, pretrained=False)  # a checkpoint's weights need no download


def test_the_cli_names_model_weights_when_they_cannot_be_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline, ``ssdboard train`` fails at once with one error line, not a traceback."""
    import json

    from keras.src.utils import file_utils

    from ssd.cli import main

    def offline(*args: Any, **kwargs: Any) -> str:
        raise Exception("URL fetch failure: no route to host")

    monkeypatch.setattr(file_utils, "get_file", offline)
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps({"model": {"backbone": "mobilenet_v2", "weights": "imagenet"}, "data": {"image_size": 96}})
    )
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--steps", "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "ssdboard: error: option --config: model.weights:" in err and "Traceback" not in err


def test_a_backbone_trains_checkpoints_and_detects(tmp_path: Path) -> None:
    """Two steps of mobilenet_v2 at 64 px in mixed bf16, then the checkpoint detects."""
    from ssd.detect import Detector
    from ssd.train import train

    config = from_dict(
        {
            "model": {"backbone": "mobilenet_v2"},
            "data": {"image_size": 64, "scale_range": [0.8, 1.5], "val_images": 4},
            "train": {"steps": 2, "batch_size": 2, "eval_images": 4, "precision": "mixed_bfloat16"},
        }
    )
    assert config.model.source_layers == ("block_13_expand_relu", "out_relu", "extra1")  # 4, 2, 1 cells
    result = train(config, tmp_path / "run")
    assert result.status == "succeeded" and result.step == 2
    detector = Detector.from_checkpoint(tmp_path / "run")
    assert detector.config.model == config.model
    images = np.zeros((2, 64, 64, 3), np.uint8)
    assert len(detector.predict(images)) == 2


def test_every_backbone_default_is_a_valid_config() -> None:
    for name, spec in BACKBONES.items():
        config = from_dict({"model": {"backbone": name}, "data": {"image_size": 512}})
        assert config.model.source_layers == spec.default_layers
