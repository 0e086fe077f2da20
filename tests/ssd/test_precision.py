"""``train.precision``: the "auto" choice per hardware, and float16 loss scaling (tested on CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from ssd.config import ConfigError, from_dict
from ssd.precision import Gpu, XlaRequested, choose, choose_loader, choose_xla, cpu_bf16, cpu_info

AMX = frozenset({"avx512f", "amx_bf16", "avx512_bf16", "amx_tile"})
ZEN4 = frozenset({"avx512f", "avx512_bf16"})
OLD = frozenset({"avx2", "fma"})


@pytest.mark.parametrize(
    ("gpu", "flags", "policy", "words"),
    [
        (None, AMX, "mixed_bfloat16", "AMX-BF16"),
        (None, ZEN4, "mixed_bfloat16", "AVX512-BF16"),
        (None, OLD, "float32", "no bf16 units"),
        (Gpu("NVIDIA H200", (9, 0)), OLD, "mixed_bfloat16", "no loss scaling"),
        (Gpu("NVIDIA A100", (8, 0)), OLD, "mixed_bfloat16", "bf16 tensor cores"),
        (Gpu("NVIDIA T4", (7, 5)), OLD, "mixed_float16", "loss scaling"),
        (Gpu("Tesla V100", (7, 0)), AMX, "mixed_float16", "tensor cores"),  # the GPU trains, not the CPU
        (Gpu("Tesla K80", (3, 7)), AMX, "float32", "compute capability 3.7"),
    ],
)
def test_auto_follows_the_hardware(gpu: Gpu | None, flags: frozenset[str], policy: str, words: str) -> None:
    choice = choose("auto", gpu, flags=flags, cpu="Test CPU")
    assert choice.policy == policy and words in choice.reason


def test_auto_keeps_mobilenet_in_float32_on_a_cpu() -> None:
    """benchmarks.models measured mobilenet_v2's step at 0.70x in bf16 on AVX512-BF16."""
    choice = choose("auto", None, backbone="mobilenet_v2", flags=ZEN4, cpu="Test CPU")
    assert choice.policy == "float32" and "measured slower" in choice.reason
    assert choose("auto", None, backbone="resnet50", flags=ZEN4).policy == "mixed_bfloat16"
    assert choose("auto", Gpu("H200", (9, 0)), backbone="mobilenet_v2").policy == "mixed_bfloat16"
    assert choose("auto", Gpu("V100", (7, 0)), backbone="mobilenet_v2").policy == "mixed_float16"


def test_a_set_precision_is_kept_whatever_the_hardware() -> None:
    assert choose("float32", Gpu("H200", (9, 0))).policy == "float32"
    assert choose("mixed_bfloat16", None, flags=OLD).policy == "mixed_bfloat16"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx512f avx512_bf16\n\n")
    model, flags = cpu_info.__wrapped__(str(fake))
    assert model == "AMD EPYC 9R14" and cpu_bf16(flags) == "AVX512-BF16"
    assert cpu_info.__wrapped__(str(tmp_path / "none")) == ("unknown CPU", frozenset())


def test_presets_notebook_float32_default_auto() -> None:
    assert from_dict({"preset": "notebook"}).train.precision == "float32"
    assert from_dict({}).train.precision == "auto"


@pytest.mark.parametrize(
    ("requested", "gpu", "workers", "enabled", "words"),
    [
        ("auto", None, 1, False, "on CPUs"),
        ("auto", Gpu("NVIDIA H200", (9, 0)), 1, True, "NVIDIA H200"),
        ("auto", Gpu("NVIDIA H200", (9, 0)), 2, False, "collectives"),
        ("on", None, 1, True, "set in the config"),
        ("off", Gpu("NVIDIA H200", (9, 0)), 1, False, "set in the config"),
    ],
)
def test_xla_follows_the_hardware(
    requested: XlaRequested, gpu: Gpu | None, workers: int, enabled: bool, words: str
) -> None:
    choice = choose_xla(requested, gpu, workers=workers)
    assert choice.enabled is enabled and words in choice.reason


def test_loader_processes_follow_the_hardware() -> None:
    h200 = Gpu("NVIDIA H200", (9, 0))
    assert choose_loader(-1, None, cpus=16).processes == 0
    assert choose_loader(-1, h200, cpus=16).processes == 8  # at most 8
    assert choose_loader(-1, h200, cpus=6).processes == 4  # two cores left to the step and pipeline
    assert choose_loader(-1, h200, cpus=2).processes == 1
    assert "NVIDIA H200" in choose_loader(-1, h200, cpus=16).reason
    assert choose_loader(3, None).processes == 3 and choose_loader(0, h200).reason == "set in the config"


def test_xla_values_are_checked() -> None:
    assert from_dict({"preset": "notebook"}).train.xla == "off"
    assert from_dict({}).train.xla == "auto"
    with pytest.raises(ConfigError) as bad:
        from_dict({"train": {"xla": True}})
    assert bad.value.field == "train.xla" and "'auto', 'on', 'off'" in bad.value.message
    with pytest.raises(ConfigError) as workers:
        from_dict({"train": {"xla": "on", "workers": 2}})
    assert workers.value.field == "train.xla" and "workers" in workers.value.message


def tiny(precision: str, xla: str = "off") -> dict[str, object]:
    return {
        "model": {"num_units": 2, "source_layers": ["norm3_2"]},
        "priors": {"scales": [[8]], "ratios": [1.0]},
        "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2, "val_images": 4},
        "train": {
            "steps": 2,
            "batch_size": 2,
            "eval_images": 2,
            "precision": precision,
            "checkpoint_every": 0,
            "xla": xla,
        },
    }


@pytest.mark.parametrize("xla", ["off", "on"])
def test_float16_trains_with_dynamic_loss_scaling(tmp_path: Path, xla: str) -> None:
    """mixed_float16 on CPU: the optimizer scales the loss, a step whose scaled gradients
    overflow is skipped with the scale halved, and finite steps update the weights. With XLA too:
    "auto" picks both on a GPU of compute capability 7.x."""
    from ssd.train import Trainer

    trainer = Trainer(from_dict(tiny("mixed_float16", xla)), tmp_path / "run")
    optimizer = trainer.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.model.get_layer("conv1_1").compute_dtype == "float16"
    assert trainer.model.output.dtype == "float32"
    result = trainer.fit()
    assert result.status == "succeeded" and trainer.step == 2
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["precision"] == "mixed_float16" and run["precision_reason"] == "set in the config"
    assert run["xla"] == xla

    # Force an overflow: a scale of 2^127 makes float16 gradients infinite.
    optimizer.dynamic_scale.assign(2.0**127)
    before = [v.numpy().copy() for v in trainer.model.trainable_variables]
    iterations = int(optimizer.iterations.numpy())
    trainer.fit(steps=3)
    after = [v.numpy() for v in trainer.model.trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))  # the step was skipped
    assert float(optimizer.dynamic_scale.numpy()) == 2.0**126
    assert int(optimizer.iterations.numpy()) == iterations  # Adam's step count did not move


def test_auto_on_this_machine_matches_its_cpu(tmp_path: Path) -> None:
    from ssd.train import Trainer

    trainer = Trainer(from_dict({**tiny("auto")}), tmp_path / "run")
    expected = "mixed_bfloat16" if cpu_bf16() else "float32"
    assert trainer.precision.policy == expected
    assert isinstance(trainer.optimizer, keras.optimizers.Adam)  # no loss scaling for bf16 or float32


def test_an_xla_step_trains_like_the_graph_one(tmp_path: Path) -> None:
    """The XLA-compiled step (a sort instead of top_k in the loss) gives the same losses and
    weights as the plain graph, in float32."""
    from ssd.train import Trainer

    runs = {}
    for xla in ("off", "on"):
        trainer = Trainer(from_dict({**tiny("float32", xla), "preset": "notebook"}), tmp_path / xla)
        steps: list[dict[str, float]] = []
        trainer.fit(on_step=steps.append)
        runs[xla] = (steps, [v.numpy() for v in trainer.model.trainable_variables])
    (graph, graph_weights), (xla_steps, xla_weights) = runs["off"], runs["on"]
    for a, b in zip(graph, xla_steps, strict=True):
        for key in ("pos_clf", "neg_clf", "loc", "total", "num_pos", "num_neg"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
    for a, b in zip(graph_weights, xla_weights, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)
