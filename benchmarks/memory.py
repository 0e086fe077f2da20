"""Training memory: the peak resident memory of a worker against :func:`app.services.limits.memory_estimate`.

``python -m benchmarks.memory`` trains each config of :data:`CONFIGS` for a few steps (the
worker's own path: :class:`ssd.train.Trainer`'s ``fit`` with its input pipeline, compiled step,
final evaluation and checkpoint) in a fresh process, and records that process's peak resident
memory (``VmHWM`` of ``/proc/self/status``), next to the peak of a process that imported the
trainer's modules and built nothing (the baseline), and the server's estimate. Written to
``.bench/memory.json`` and printed as a table; ``tests/app/test_limits.py`` holds a copy of the
table and checks the estimate against it. ``--only LABEL`` measures a subset.

The configs span image size (64..512), ``model.num_units``, batch size, priors per cell, source
layers and ``data.max_digits`` (ground-truth boxes per image, the ``K`` of matching's
``[B, K, P]`` tensors), including the hardening issue's family: 512 px, 50 digits, one source
layer at stride 4 with 16 priors per cell, ``num_units`` 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.flops import cpu_description

OUT_DIR = Path(".bench")
GIB = 2**30
STEPS = 6  # enough for the input pipeline's prefetch and parallel maps to fill

# The issue's family: one source layer at stride 4 with 4 scales x 4 ratios = 16 priors per cell.
_ISSUE: dict[str, Any] = {
    "data": {"image_size": 512, "min_digits": 40, "max_digits": 50},
    "model": {"num_units": 1, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[10, 16, 25, 36]], "ratios": [0.35, 0.6, 1.0, 1.7]},
}

# (label, overrides of the default preset); train.steps, eval and checkpoints are set per run.
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("default 128px b32", {}),
    (
        "64px u8 b16",
        {"data": {"image_size": 64, "scale_range": [0.8, 2.0]}, "model": {"num_units": 8}, "train": {"batch_size": 16}},
    ),
    ("256px b16", {"data": {"image_size": 256}, "train": {"batch_size": 16}}),
    (
        "128px u32 b32 fp32",
        {"model": {"num_units": 32}, "train": {"batch_size": 32, "precision": "float32"}},
    ),
    ("notebook 128px b64", {"preset": "notebook", "train": {"batch_size": 64}}),
    ("512px u4 b4", {"data": {"image_size": 512}, "model": {"num_units": 4}, "train": {"batch_size": 4}}),
    (
        "256px K20 stride2 9/cell b4",
        {
            "data": {"image_size": 256, "max_digits": 20},
            "model": {"num_units": 2, "source_layers": ["norm2_2"]},
            "priors": {"strides": [2], "scales": [[10, 16, 25]], "ratios": [0.5, 1.0, 2.0]},
            "train": {"batch_size": 4},
        },
    ),
    ("issue 512px K50 b2", {**_ISSUE, "train": {"batch_size": 2}}),
    ("issue 512px K50 b4", {**_ISSUE, "train": {"batch_size": 4}}),
    ("issue 512px K50 b8", {**_ISSUE, "train": {"batch_size": 8}}),
    ("128px u64 b8", {"model": {"num_units": 64}, "train": {"batch_size": 8}}),
    (
        "64px u128 b4",
        {
            "data": {"image_size": 64, "scale_range": [0.8, 2.0]},
            "model": {"num_units": 128},
            "train": {"batch_size": 4},
        },
    ),
    ("128px 100 classes b32", {"model": {"num_classes": 100}, "train": {"batch_size": 32}}),
    (
        "256px 50 classes u8 b16",
        {"data": {"image_size": 256}, "model": {"num_units": 8, "num_classes": 50}, "train": {"batch_size": 16}},
    ),
    ("notebook issue 512px K50 b4 fp32", {"preset": "notebook", **_ISSUE, "train": {"batch_size": 4}}),
    (
        "384px u8 K12 strides 2+8 b8",
        {
            "data": {"image_size": 384, "max_digits": 12},
            "model": {"num_units": 8, "source_layers": ["norm2_2", "norm4_2"]},
            "priors": {"strides": [2, 8], "scales": [[12], [40]], "ratios": [0.5, 1.0, 2.0]},
            "train": {"batch_size": 8},
        },
    ),
    (
        "256px u8 b32 image mining",
        {
            "data": {"image_size": 256},
            "model": {"num_units": 8},
            "loss": {"mining": "image", "normalization": "paper"},
            "train": {"batch_size": 32},
        },
    ),
]


def _status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmHWM``: the peak resident memory)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def run_config(overrides: dict[str, Any], steps: int) -> dict[str, Any]:
    """In this process: train ``steps`` steps of a config as a worker does; the peak memory."""
    from ssd.config import from_dict
    from ssd.train import Trainer

    config = _config(overrides, steps)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ssd-memory-") as tmp:
        result = Trainer(from_dict(config), tmp).fit()
    return {"peak_bytes": _status_kib("VmHWM") * 1024, "seconds": time.perf_counter() - start, "step": result.step}


def _config(overrides: dict[str, Any], steps: int) -> dict[str, Any]:
    """The overrides with a short run: ``steps`` steps, one evaluation batch, no mid-run checkpoint."""
    config = json.loads(json.dumps(overrides))
    train = config.setdefault("train", {})
    batch = train.get("batch_size", 32)
    train.update(steps=steps, checkpoint_every=0, eval_images=min(batch, 64), warmup_steps=0)
    return config


def baseline() -> dict[str, Any]:
    """In this process: the peak memory after importing what a worker imports, building nothing."""
    import ssd.train  # noqa: F401 - TensorFlow, Keras and the library, as the worker loads them

    return {"peak_bytes": _status_kib("VmHWM") * 1024}


def _child(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", *args], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(labels: list[str] | None, steps: int, repeats: int) -> dict[str, Any]:
    """Every config (or those named) ``repeats`` times, each in a fresh process; the highest peak counts.

    Peaks vary by some 10% from run to run (how the pipeline's two matching threads and the
    training step overlap), so a config's peak is the highest of its runs.
    """
    from ssd.config import from_dict

    chosen = [(label, overrides) for label, overrides in CONFIGS if not labels or label in labels]
    for _, overrides in chosen:  # a bad config fails here, before minutes of measuring
        from_dict(_config(overrides, steps))
    base = _child(["--baseline"])["peak_bytes"]
    rows = []
    for label, overrides in chosen:
        runs = [_child(["--child", json.dumps(overrides), "--steps", str(steps)]) for _ in range(repeats)]
        peaks = [run["peak_bytes"] / GIB for run in runs]
        row = {"label": label, "config": overrides, "peak_gib": max(peaks), "peaks_gib": peaks}
        row["seconds"] = max(run["seconds"] for run in runs)
        row.update(_estimate(row, steps))
        rows.append(row)
        print(_line(row), flush=True)
    return {
        "cpu": cpu_description(),
        "date": datetime.date.today().isoformat(),
        "steps": steps,
        "baseline_gib": base / GIB,
        "rows": rows,
    }


def _estimate(row: dict[str, Any], steps: int) -> dict[str, Any]:
    """The server's estimate of a row's config, its ratio to the measured peak and its terms."""
    from app.services.limits import memory_terms
    from ssd.config import from_dict

    terms = memory_terms(from_dict(_config(row["config"], steps)))
    estimate = sum(terms.values()) / GIB
    return {
        "estimate_gib": estimate,
        "ratio": estimate / row["peak_gib"],
        "terms_gib": {name: value / GIB for name, value in terms.items()},
    }


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['label']:34s} peak {row['peak_gib']:5.2f} GiB  estimate {row['estimate_gib']:5.2f} GiB  "
        f"ratio {row['ratio']:.2f}"
    )


def fit(report: dict[str, Any]) -> dict[str, float]:
    """Least-squares constants of :mod:`app.services.limits` for a measurement (relative error).

    Unknowns: the fixed bytes above the baseline, bytes per activation value (bf16 and float32
    runs apart), per weight, per ``[B, P, C + 4]`` value and per ``[B, K, P]`` value. The
    measured baseline and the input batch (``INPUT_BYTES``, counted, not fitted) come off first.
    """
    import numpy as np

    from app.services.limits import INPUT_BYTES, memory_sizes
    from ssd import precision
    from ssd.config import from_dict

    columns, targets, peaks = [], [], []
    for row in report["rows"]:
        config = from_dict(_config(row["config"], report["steps"]))
        sizes = memory_sizes(config)
        bf16 = precision.choose(config.train.precision).policy != "float32"
        columns.append(
            [1.0, sizes["activations"] * bf16, sizes["activations"] * (not bf16)]
            + [sizes[name] for name in ("weights", "priors", "matching")]
        )
        peaks.append(row["peak_gib"] * GIB)
        targets.append(peaks[-1] - report["baseline_gib"] * GIB - sizes["input"] * INPUT_BYTES)
    x, y, weight = np.array(columns), np.array(targets), 1 / np.array(peaks)
    coef = np.linalg.lstsq(x * weight[:, None], y * weight, rcond=None)[0]
    names = ["FIXED_BYTES (GiB)", "ACTIVATION_BYTES bf16", "ACTIVATION_BYTES float32"]
    names += ["PARAM_BYTES", "PRIOR_BYTES", "MATCH_BYTES"]
    fitted = dict(zip(names, [coef[0] / GIB, *coef[1:]], strict=True))
    fitted["BASELINE_BYTES (GiB)"] = report["baseline_gib"]
    return {name: float(value) for name, value in fitted.items()}


def markdown(report: dict[str, Any]) -> str:
    """The docs' table of a measurement (docs/operations/limits.md), with today's estimate."""
    lines = ["| config | estimate GiB | measured peak GiB | estimate / peak |", "| --- | ---: | ---: | ---: |"]
    for row in report["rows"]:
        lines.append(f"| {row['label']} | {row['estimate_gib']:.2f} | {row['peak_gib']:.2f} | {row['ratio']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", action="append", help="measure only this label (repeatable)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--repeats", type=int, default=1, help="runs per config; the highest peak counts")
    parser.add_argument("--fit", action="store_true", help="fit the constants to .bench/memory.json instead")
    parser.add_argument("--report", action="store_true", help="re-estimate .bench/memory.json, a markdown table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline:
        print(json.dumps(baseline()))
        return
    if args.child is not None:
        print(json.dumps(run_config(json.loads(args.child), args.steps)))
        return
    path = OUT_DIR / "memory.json"
    if args.fit or args.report:
        report = json.loads(path.read_text())
        for row in report["rows"]:
            row.update(_estimate(row, report["steps"]))
        if args.fit:
            for name, value in fit(report).items():
                print(f"{name:26s} {value:.3f}")
        else:
            print(f"{report['cpu']}, {report['date']}; baseline {report['baseline_gib']:.2f} GiB\n")
            print(markdown(report))
        return
    report = measure(args.only, args.steps, args.repeats)
    print(f"baseline (TensorFlow imported, nothing built): {report['baseline_gib']:.2f} GiB; CPU {report['cpu']}")
    OUT_DIR.mkdir(exist_ok=True)
    out = path if not args.only else OUT_DIR / "memory_partial.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
