"""The server's training-memory estimate against measured peaks, and the limits built on it (no TensorFlow)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from live_server import tiny

from app.main import create_app
from app.services.limits import GIB, check_limits, conv_values, memory_estimate, memory_terms, param_count
from app.settings import SERVER_RESERVE_GIB, Settings, job_memory_gib, machine_memory_bytes
from ssd.config import ConfigError, from_dict

# The hardening issue's family: 512 px, 50 digits, one source layer at stride 4 with 4 scales x
# 4 ratios = 16 priors per cell, num_units 1.
ISSUE: dict[str, Any] = {
    "data": {"image_size": 512, "min_digits": 40, "max_digits": 50},
    "model": {"num_units": 1, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[10, 16, 25, 36]], "ratios": [0.35, 0.6, 1.0, 1.7]},
}
_TRAIN = {"steps": 6, "checkpoint_every": 0, "warmup_steps": 0}  # what the benchmark ran

# Peak resident memory of a training worker (VmHWM, GiB; the higher of two runs) for each config:
# ``python -m benchmarks.memory --repeats 2`` on an AMD EPYC (avx512_bf16; 2 cores, 24 GiB),
# TensorFlow 2 on CPU, 2026-11-30; 6 steps, one evaluation batch and a checkpoint. A process that
# imported TensorFlow and built nothing peaked at BASELINE_GIB.
BASELINE_GIB = 0.63
MEASURED: list[tuple[str, dict[str, Any], float]] = [
    ("default 128px b32", {"train": {"batch_size": 32}}, 1.23),
    (
        "64px u8 b16",
        {"data": {"image_size": 64, "scale_range": [0.8, 2.0]}, "model": {"num_units": 8}, "train": {"batch_size": 16}},
        0.78,
    ),
    ("256px b16", {"data": {"image_size": 256}, "train": {"batch_size": 16}}, 1.70),
    ("128px u32 b32 fp32", {"model": {"num_units": 32}, "train": {"batch_size": 32, "precision": "float32"}}, 2.22),
    ("notebook 128px b64", {"preset": "notebook", "train": {"batch_size": 64}}, 2.14),
    ("512px u4 b4", {"data": {"image_size": 512}, "model": {"num_units": 4}, "train": {"batch_size": 4}}, 1.32),
    (
        "256px K20 stride2 9/cell b4",
        {
            "data": {"image_size": 256, "max_digits": 20},
            "model": {"num_units": 2, "source_layers": ["norm2_2"]},
            "priors": {"strides": [2], "scales": [[10, 16, 25]], "ratios": [0.5, 1.0, 2.0]},
            "train": {"batch_size": 4},
        },
        1.40,
    ),
    (
        "issue 512px K50 b2",
        {**ISSUE, "train": {"batch_size": 2}},
        1.93,
    ),
    (
        "issue 512px K50 b4",
        {**ISSUE, "train": {"batch_size": 4}},
        3.66,
    ),
    (
        "issue 512px K50 b8",
        {**ISSUE, "train": {"batch_size": 8}},
        5.84,
    ),
    ("128px u64 b8", {"model": {"num_units": 64}, "train": {"batch_size": 8}}, 1.35),
    (
        "64px u128 b4",
        {
            "data": {"image_size": 64, "scale_range": [0.8, 2.0]},
            "model": {"num_units": 128},
            "train": {"batch_size": 4},
        },
        1.90,
    ),
    ("128px 100 classes b32", {"model": {"num_classes": 100}, "train": {"batch_size": 32}}, 2.37),
    (
        "256px 50 classes u8 b16",
        {"data": {"image_size": 256}, "model": {"num_units": 8, "num_classes": 50}, "train": {"batch_size": 16}},
        2.35,
    ),
    (
        "notebook issue 512px K50 b4 fp32",
        {"preset": "notebook", **ISSUE, "train": {"batch_size": 4}},
        3.56,
    ),
    (
        "384px u8 K12 strides 2+8 b8",
        {
            "data": {"image_size": 384, "max_digits": 12},
            "model": {"num_units": 8, "source_layers": ["norm2_2", "norm4_2"]},
            "priors": {"strides": [2, 8], "scales": [[12], [40]], "ratios": [0.5, 1.0, 2.0]},
            "train": {"batch_size": 8},
        },
        1.79,
    ),
    (
        "256px u8 b32 image mining",
        {
            "data": {"image_size": 256},
            "model": {"num_units": 8},
            "loss": {"mining": "image", "normalization": "paper"},
            "train": {"batch_size": 32},
        },
        2.14,
    ),
]


def _run(config: dict[str, Any]) -> dict[str, Any]:
    """A measured config as the benchmark ran it (``benchmarks.memory._config``)."""
    train = {**config.get("train", {}), **_TRAIN}
    train["eval_images"] = min(train.get("batch_size", 32), 64)
    return {**config, "train": train}


@pytest.mark.parametrize("config, peak_gib", [(c, p) for _, c, p in MEASURED], ids=[m[0] for m in MEASURED])
def test_the_estimate_is_within_a_quarter_of_the_measured_peak(config: dict[str, Any], peak_gib: float) -> None:
    estimate = memory_estimate(from_dict(_run(config))) / GIB
    assert 0.75 <= estimate / peak_gib <= 1.25, (estimate, peak_gib)
    if peak_gib - BASELINE_GIB > 0.5:  # what the config adds to TensorFlow's baseline, too
        assert 0.75 <= (estimate - BASELINE_GIB) / (peak_gib - BASELINE_GIB) <= 1.25, (estimate, peak_gib)


def test_the_issue_config_grows_with_the_batch_as_measured() -> None:
    """Matching's [B, K, P] tensors dominate: about 0.65 GiB more per image of the batch."""
    small, large = (memory_estimate(from_dict(_run({**ISSUE, "train": {"batch_size": b}}))) for b in (4, 8))
    assert (large - small) / 4 / GIB == pytest.approx(0.65, rel=0.25)
    terms = memory_terms(from_dict({**ISSUE, "train": {"batch_size": 120}}))
    assert max(terms, key=terms.__getitem__) == "matching"


@pytest.mark.parametrize(
    "field, low, high",
    [
        ("train.batch_size", 8, 16),
        ("data.image_size", 128, 256),
        ("model.num_units", 16, 32),
        ("data.max_digits", 6, 20),
        ("model.num_classes", 10, 40),
    ],
)
def test_the_estimate_grows_with_every_field(field: str, low: int, high: int) -> None:
    section, key = field.split(".")
    low_config, high_config = (from_dict({section: {key: value}}) for value in (low, high))
    assert memory_estimate(high_config) > memory_estimate(low_config)


def test_float32_costs_more_than_mixed_bfloat16() -> None:
    bf16 = from_dict({"train": {"precision": "mixed_bfloat16"}})
    fp32 = from_dict({"train": {"precision": "float32"}})
    assert memory_estimate(fp32) > memory_estimate(bf16)


def test_an_imported_datasets_box_count_replaces_max_digits() -> None:
    config = from_dict(ISSUE)
    assert memory_estimate(config, max_objects=50) == memory_estimate(config)
    assert memory_estimate(config, max_objects=200) > 3 * memory_estimate(config, max_objects=50) / 2


def test_the_issue_config_at_batch_120_is_refused_naming_the_batch(tmp_path: Path) -> None:
    """Estimated at 15.8 GiB before (under the old 16 GiB default, so accepted); it needs ~75 GiB."""
    config = {**ISSUE, "train": {"batch_size": 120, "steps": 100}}
    settings = Settings(data_dir=tmp_path / "data", max_memory_gib=16.0, max_concurrent_jobs=0)
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/jobs", json=config)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", "train", "batch_size"]
        assert "GiB" in detail["msg"] and "data.max_digits" in detail["msg"]
        assert client.get("/api/jobs").json() == []
        # A batch the measurements cover is accepted.
        assert client.post("/api/jobs", json={**ISSUE, "train": {"batch_size": 4}}).status_code == 201


def test_the_message_names_the_largest_part_and_its_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        check_limits(
            from_dict({"data": {"image_size": 1024}, "model": {"num_units": 64}, "train": {"batch_size": 64}}),
            max_priors=10**7,
            max_memory_gib=16,
            max_train_images=10**12,
        )
    assert caught.value.field == "train.batch_size"
    assert "activations" in caught.value.message and "model.num_units" in caught.value.message


def test_the_default_limits_follow_the_machines_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSDBOARD_MAX_MEMORY_GIB", "SSDBOARD_WORKER_MEMORY_GIB"):
        monkeypatch.delenv(name, raising=False)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < machine_memory_bytes() <= physical
    expected = max(0.75 * machine_memory_bytes() / GIB - SERVER_RESERVE_GIB, 1.0)
    assert job_memory_gib() == pytest.approx(expected, abs=0.05)
    settings = Settings()
    assert settings.max_memory_gib == settings.worker_memory_gib == job_memory_gib()

    monkeypatch.setenv("SSDBOARD_MAX_MEMORY_GIB", "3.5")
    monkeypatch.setenv("SSDBOARD_WORKER_MEMORY_GIB", "4")
    settings = Settings()
    assert (settings.max_memory_gib, settings.worker_memory_gib) == (3.5, 4.0)


def test_the_tiny_api_config_fits_any_machine() -> None:
    """The API's example job (what the tests train) is estimated under the 1 GiB floor of the limit."""
    assert memory_estimate(from_dict(tiny())) / GIB < 1.0


@pytest.mark.parametrize(
    "config",
    [
        {"model": {"backbone": "mobilenet_v2"}, "data": {"image_size": 300}},
        {"model": {"backbone": "resnet50", "extra_layers": 2, "source_layers": ["conv4_block6_out", "extra2"]}},
        {"model": {"num_units": 4, "extra_layers": 2, "source_layers": ["norm3_2", "extra1", "extra2"]}},
    ],
)
def test_the_estimate_counts_the_weights_and_convs_of_every_backbone(config: dict[str, Any]) -> None:
    """Weights and conv output values the memory estimate uses, against the built Keras model."""
    import keras

    from ssd.model import build_ssd

    resolved = from_dict(config)
    size = resolved.data.image_size
    model = build_ssd(resolved.model, resolved.priors, size)
    assert param_count(resolved) == model.count_params()
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D)]
    heads = [layer for layer in convs if layer.name.endswith(("_clf", "_loc"))]
    counted = sum(math.prod(layer.output.shape[1:]) for layer in convs if layer not in heads)
    assert conv_values(resolved) == pytest.approx(counted, rel=0.02)  # the table is per pixel at 512 px
