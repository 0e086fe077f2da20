"""Model variants side by side: size, FLOPs and training speed of each backbone (issue 12).

``python -m benchmarks.models [--quick] [--variants notebook,mobilenet_v2,resnet50]``
(``make bench``) measures, for each variant of :data:`VARIANTS` (``notebook`` at 128 px with the
``default`` preset; ``mobilenet_v2`` and ``resnet50`` at 300 px with their default extra layers,
``model.weights = "none"``):

1. **Parameters**: ``model.count_params()`` of the detector (BatchNorm's moving statistics included).
2. **Forward GFLOP per image**: convolutions (depthwise and 1x1 ones too) and Dense layers counted
   analytically by :func:`benchmarks.flops.conv_flops`, cross-checked against TensorFlow's profiler.
3. **Trainer images/s**: :class:`ssd.train.Trainer`'s compiled step in the precision
   ``train.precision = "auto"`` picks on this machine (printed with its reason), and the same
   trainer in float32, which shows whether "auto" picked the faster one here.
4. **Naive images/s**: the same model the notebook's way (:mod:`benchmarks.naive`): float32,
   Keras' own BatchNormalization, a softmax and the notebook's loss, ``model.fit`` on per-image
   NumPy targets. And the ratio trainer / naive.

The machine is shared and noisy, so the runs of a variant are measured interleaved, in rounds,
and medians are reported. Each run first takes :attr:`Plan.warmup_steps` untimed steps
(tracing, oneDNN's first-use setup); the timed steps per measurement are then chosen so the
slowest run of the variant takes about :attr:`Plan.target_seconds`, which keeps resnet50 at
300 px to a few steps on two cores. Results are printed, with a Markdown table for docs/guide/models.md,
and written to ``.bench/models.json`` (``--quick``: ``.bench/models_quick.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import keras
import tensorflow as tf

from benchmarks.flops import conv_flops, cpu_description, profiler_flops
from benchmarks.train import NaiveRun, TrainerRun
from ssd.config import Config, from_dict
from ssd.priors import make_priors

OUT_DIR = Path(".bench")
# Profiler op types of the layers conv_flops counts (a SeparableConv2D runs as both of the first two).
COUNTED_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


@dataclass(frozen=True)
class Variant:
    """A model to measure: a backbone at an input size, trained at a batch size."""

    backbone: str
    image_size: int
    batch_size: int

    @property
    def label(self) -> str:
        return f"{self.backbone}@{self.image_size}"

    def config(self) -> Config:
        """The ``default`` preset with this backbone; ``from_dict`` adds its extra layers and priors."""
        return from_dict(
            {
                "model": {"backbone": self.backbone},
                "data": {"image_size": self.image_size},
                "train": {"batch_size": self.batch_size},
            }
        )


# Batches that keep a step of each model around a second or a few on two cores.
VARIANTS: tuple[Variant, ...] = (
    Variant("notebook", 128, 32),
    Variant("mobilenet_v2", 300, 8),
    Variant("resnet50", 300, 8),
)
QUICK_IMAGE_SIZE, QUICK_BATCH = 80, 2  # 80 px: the generator's largest digit is 70 px


@dataclass(frozen=True)
class Plan:
    """How much to measure per variant."""

    rounds: int  # interleaved rounds of every run
    warmup_steps: int  # untimed steps of each run before the first round
    target_seconds: float  # a measurement of the variant's slowest run takes about this long
    min_steps: int
    max_steps: int


FULL = Plan(rounds=3, warmup_steps=2, target_seconds=6.0, min_steps=2, max_steps=12)
QUICK = Plan(rounds=1, warmup_steps=1, target_seconds=0.0, min_steps=1, max_steps=1)


class Run(Protocol):
    def measure(self, warmup: int, timed: int) -> float: ...


class QuietTrainerRun(TrainerRun):
    """:class:`benchmarks.train.TrainerRun` that also skips the checkpoint ``fit`` writes at its end:
    resnet50's weights and Adam state are ~0.3 GB a write, time spent after the timed steps."""

    def __init__(self, config: Config, out_dir: str) -> None:
        super().__init__(config, out_dir)
        self.trainer.save_checkpoint = lambda: None  # type: ignore[method-assign]


def timed_steps(step_seconds: float, plan: Plan) -> int:
    """Steps per measurement so that one of ``step_seconds`` a step takes ``plan.target_seconds``."""
    wanted = math.ceil(plan.target_seconds / step_seconds) if step_seconds > 0 else plan.max_steps
    return max(plan.min_steps, min(plan.max_steps, wanted))


def flops_check(model: keras.Model, image_size: int, counted: int) -> dict[str, Any] | None:
    """TensorFlow's profiler on the same model: its convolution FLOPs must equal ``counted``."""
    prof = profiler_flops(model, image_size)
    if prof is None:
        return None
    conv = sum(prof.get(op, 0) for op in COUNTED_OPS)
    return {"profiler_conv_flops": conv, "profiler_total_flops": prof["total"], "agrees": conv == counted}


def measure_variant(variant: Variant, plan: Plan, tmp: str) -> dict[str, Any]:
    """Build the runs of one variant, count its size, time the runs interleaved; the JSON record."""
    started = time.perf_counter()
    config = variant.config()
    f32_config = dataclasses.replace(config, train=dataclasses.replace(config.train, precision="float32"))
    trainer = QuietTrainerRun(config, os.path.join(tmp, f"{variant.backbone}-auto"))
    choice = trainer.trainer.precision
    runs: dict[str, Run] = {"trainer": trainer}
    if choice.policy != "float32":  # else "auto" is float32 already and the run would repeat it
        runs["trainer_float32"] = QuietTrainerRun(f32_config, os.path.join(tmp, f"{variant.backbone}-f32"))
    naive = NaiveRun(config)
    runs["naive"] = naive

    params = int(trainer.trainer.model.count_params())
    if params != naive.model.count_params():  # the naive model must be the same network
        raise RuntimeError(f"{variant.label}: trainer has {params} parameters, naive {naive.model.count_params()}")
    per_layer = conv_flops(naive.model)  # float32, the same convolutions as the trainer's model
    fwd = sum(per_layer.values())
    depthwise_layers = {la.name for la in naive.model.layers if isinstance(la, keras.layers.DepthwiseConv2D)}
    depthwise = sum(v for k, v in per_layer.items() if k in depthwise_layers)
    check = flops_check(naive.model, variant.image_size, fwd)
    print(
        f"{variant.label}: batch {variant.batch_size}, {params / 1e6:.2f} M parameters, "
        f"forward {fwd / 1e9:.2f} GFLOP/image ({len(per_layer)} conv layers), "
        f"{len(make_priors(config.priors, variant.image_size))} priors on {', '.join(config.model.source_layers)}"
    )
    if check is not None:
        verdict = "agrees" if check["agrees"] else "DIFFERS"
        print(f"  TF profiler: convolutions {check['profiler_conv_flops'] / 1e9:.3f} GFLOP ({verdict})")
    print(f"  trainer precision: {choice.describe()}")

    # Warm-up: the first call traces; its last step's speed sizes the timed measurements.
    step_seconds = {}
    for name, run in runs.items():
        ips = run.measure(plan.warmup_steps, 1)
        step_seconds[name] = variant.batch_size / ips
    steps = timed_steps(max(step_seconds.values()), plan)
    print(
        f"  warm-up ({time.perf_counter() - started:.0f} s so far), s/step: "
        + ", ".join(f"{k} {v:.2f}" for k, v in step_seconds.items())
        + f"; {steps} timed steps per measurement"
    )

    ips_by_run: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(plan.rounds):
        # Rotate who goes first, so a machine that slows down or speeds up over a round favours no one.
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            ips_by_run[name].append(runs[name].measure(1, steps))  # 1 step restarts the clock after fit's set-up
        print(
            f"  round {r + 1}/{plan.rounds}: " + ", ".join(f"{name} {ips_by_run[name][-1]:.2f} img/s" for name in names)
        )

    medians = {name: float(statistics.median(v)) for name, v in ips_by_run.items()}
    ratios = [t / n for t, n in zip(ips_by_run["trainer"], ips_by_run["naive"], strict=True)]
    record: dict[str, Any] = {
        "variant": variant.label,
        "backbone": variant.backbone,
        "image_size": variant.image_size,
        "batch_size": variant.batch_size,
        "weights": config.model.weights,
        "extra_layers": config.model.extra_layers,
        "source_layers": list(config.model.source_layers),
        "num_priors": len(make_priors(config.priors, variant.image_size)),
        "params": params,
        "trainable_params": int(sum(int(tf.size(v)) for v in trainer.trainer.model.trainable_variables)),
        "forward_flops": fwd,
        "depthwise_flops": depthwise,
        "flops_check": check,
        "precision": choice.policy,
        "precision_reason": choice.reason,
        "warmup_step_seconds": step_seconds,
        "timed_steps": steps,
        "images_per_sec": ips_by_run,
        "median_images_per_sec": medians,
        "ratios": ratios,
        "ratio_median": float(statistics.median(ratios)),
        "seconds": time.perf_counter() - started,
    }
    if "trainer_float32" in medians:
        record["auto_vs_float32"] = medians["trainer"] / medians["trainer_float32"]
    return record


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """The docs' table (docs/guide/models.md): one row per variant."""
    lines = [
        "| model | batch | parameters | forward GFLOP/image | trainer img/s (precision) | trainer float32 img/s "
        "| naive img/s | trainer / naive |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rec in records:
        med = rec["median_images_per_sec"]
        f32 = f"{med['trainer_float32']:.1f}" if "trainer_float32" in med else "(same)"
        lines.append(
            f"| `{rec['backbone']}` {rec['image_size']} px, {len(rec['source_layers'])} source layers "
            f"| {rec['batch_size']} | {rec['params'] / 1e6:.2f} M | {rec['forward_flops'] / 1e9:.2f} "
            f"| **{med['trainer']:.1f}** ({rec['precision']}) | {f32} | {med['naive']:.1f} "
            f"| **{rec['ratio_median']:.2f}x** |"
        )
    return "\n".join(lines)


def run_bench(variants: Sequence[Variant], plan: Plan, quick: bool, out: Path) -> int:
    """Measure every variant, print the figures and the table, write ``out``; the exit code (0)."""
    started = time.time()
    cpu = cpu_description()
    print(f"python -m benchmarks.models{' --quick (smoke run, not a measurement)' if quick else ''}")
    print(f"  machine: {cpu}, {os.cpu_count()} CPUs; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    load_at_start = os.getloadavg()
    records: list[dict[str, Any]] = []

    def write() -> None:
        # After every variant, so a run cut short (resnet50 on a loaded machine) keeps what it measured.
        result = {
            "quick": quick,
            "started": started,
            "seconds": time.time() - started,
            "complete": len(records) == len(variants),
            "machine": {
                "processor": cpu,
                "cpus": os.cpu_count(),
                "load_average_at_start": load_at_start,
                "load_average_now": os.getloadavg(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            },
            "plan": asdict(plan),
            "variants": records,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="ssd-models-bench-") as tmp:
        for variant in variants:
            records.append(measure_variant(variant, plan, tmp))
            write()
            gc.collect()
            keras.backend.clear_session()  # the next variant's graphs start from nothing
    print()
    print(f"{cpu}, {os.cpu_count()} CPUs; medians of {plan.rounds} interleaved rounds:")
    print(markdown_table(records))
    print(f"written {out} ({time.time() - started:.0f} s; load average {load_at_start[0]:.1f} at the start)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and run the benchmark; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.models", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_IMAGE_SIZE} px, batch {QUICK_BATCH}, one step (a smoke run)"
    )
    parser.add_argument(
        "--variants",
        default=",".join(v.backbone for v in VARIANTS),
        help="comma-separated backbones to measure (default: all)",
    )
    parser.add_argument("--out", type=Path, help="JSON file (default .bench/models.json, --quick: models_quick.json)")
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.variants.split(",") if name.strip()]
    known = {v.backbone: v for v in VARIANTS}
    unknown = [name for name in wanted if name not in known]
    if unknown or not wanted:
        parser.error(f"--variants: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    variants = [known[name] for name in wanted]
    if args.quick:
        variants = [dataclasses.replace(v, image_size=QUICK_IMAGE_SIZE, batch_size=QUICK_BATCH) for v in variants]
    out = args.out or OUT_DIR / ("models_quick.json" if args.quick else "models.json")
    return run_bench(variants, QUICK if args.quick else FULL, args.quick, out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
