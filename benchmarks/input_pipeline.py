"""The training input pipeline alone: how many images a second it can feed a fast accelerator.

``python -m benchmarks.input_pipeline [--processes 0 1 2] [--batches 60] [--repeats 3]``
(``make bench``) iterates :func:`ssd.pipeline.input_pipeline` for the ``default`` preset at batch 32
(generation, then XLA-compiled matching, as a run feeds its step) with no training step
consuming it, once per ``data.loader_processes`` count, interleaved (0, 1, 2, 0, 1, 2, ...), and
reports medians and each count's ratio to the in-process pipeline (0: the generator in the
pipeline's own thread). On a CPU-only machine the training step needs the cores, so a run uses
none (``-1``, auto); the figure says what a GPU host gets from its spare cores.

Writes ``.bench/input_pipeline.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.flops import cpu_description
from ssd.config import Config, from_dict
from ssd.data import for_config
from ssd.datasets.source import GeneratedSource
from ssd.loader_pool import BatchPool
from ssd.pipeline import input_pipeline

BATCH = 32


def images_per_sec(config: Config, processes: int, batches: int, warmup: int = 4) -> float:
    """Images/s over ``batches`` batches after ``warmup`` (the pool's start-up and XLA's compile)."""
    dataset = for_config(config, "train")
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(BatchPool(config, GeneratedSource(), processes)) if processes else None
        it = iter(input_pipeline(config, dataset, 0, warmup + batches, pool=pool))
        for _ in range(warmup):
            next(it)
        started = time.perf_counter()
        for _ in range(batches):
            images, y_true = next(it)
        _ = y_true.numpy()
        return batches * BATCH / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """Run; print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.input_pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[0, 1, 2], help="loader process counts")
    parser.add_argument("--batches", type=int, default=60, help="timed batches of 32 per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements of each count")
    parser.add_argument("--out", default=".bench/input_pipeline.json")
    args = parser.parse_args(argv)
    config = from_dict({"train": {"batch_size": BATCH}})
    print("python -m benchmarks.input_pipeline")
    print(f"  machine: {cpu_description()}, {os.cpu_count()} CPUs; default preset, batch {BATCH}, no training step")
    runs: dict[int, list[float]] = {n: [] for n in args.processes}
    for r in range(args.repeats):
        for n in args.processes:
            runs[n].append(images_per_sec(config, n, args.batches))
        print(
            f"  repeat {r + 1}/{args.repeats}: "
            + ", ".join(f"{n} processes {v[-1]:.0f} img/s" for n, v in runs.items())
        )
    medians = {n: statistics.median(v) for n, v in runs.items()}
    base = medians.get(0)
    print(f"\n{'loader processes':<18}{'median img/s':>14}{'vs in-process':>15}")
    for n, m in medians.items():
        ratio = f"{m / base:.2f}x" if base else "-"
        print(f"{n:<18}{m:>14.0f}{ratio:>15}")
    result = {
        "machine": {"processor": cpu_description(), "cpus": os.cpu_count()},
        "batch_size": BATCH,
        "batches": args.batches,
        "images_per_sec": {str(n): v for n, v in runs.items()},
        "median": {str(n): m for n, m in medians.items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
