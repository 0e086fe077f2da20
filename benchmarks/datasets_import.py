"""Benchmark of dataset imports: ``python -m benchmarks.datasets_import`` (``make bench`` runs it).

Exports the built-in generator (``mnist``, 128x128 PNGs, 10% validation) with ``--sizes``
images (1000, 2500, 5000) in each format (COCO, VOC, YOLO), then imports each ``--repeats``
times (3) into a fresh registry (:meth:`ssd.datasets.registry.Registry.import_dataset`: read,
validate with every image decoded, split, copy, write), timing the import alone and each of its
stages; the median of the repeats counts (a shared machine's load comes and goes). Per format it fits
seconds = a + b * N over the sizes (how the time grows with N) and checks the target: 5,000
images in at most 60 s. Prints a table and writes ``.bench/datasets_import.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ssd.datasets.export import export_generator
from ssd.datasets.records import FORMATS
from ssd.datasets.registry import Registry
from ssd.precision import cpu_info

TARGET_S = 60.0
TARGET_IMAGES = 5000


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``)."""
    return cpu_info()[0]


def time_import(src: Path, data: Path) -> dict[str, Any]:
    """Import ``src`` into a fresh registry under ``data``; seconds in all and per stage."""
    stages: dict[str, float] = {}
    current, since = "", time.perf_counter()

    def progress(done: int, total: int, stage: str) -> None:
        nonlocal current, since
        now = time.perf_counter()
        if stage != current:
            if current:
                stages[current] = now - since
            current, since = stage, now

    started = time.perf_counter()
    meta = Registry(data).import_dataset(src, progress=progress)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "images_per_s": round(meta["counts"]["images"] / seconds, 1),
        "stages_s": {k: round(v, 3) for k, v in stages.items()},
        "images": meta["counts"]["images"],
        "boxes": meta["counts"]["boxes"],
        "splits": meta["splits"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and save the figures; exit 1 when a format misses the target."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.datasets_import", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2500, 5000])
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--repeats", type=int, default=3, help="imports of each export; the median counts")
    parser.add_argument("--out", type=Path, default=Path(".bench/datasets_import.json"))
    args = parser.parse_args(argv)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as tmp:
        for n in args.sizes:
            for fmt in args.formats:
                src = Path(tmp) / f"{fmt}-{n}"
                started = time.perf_counter()
                export_generator(src, fmt, images=n)
                exported = time.perf_counter() - started
                repeats = []
                for _ in range(args.repeats):
                    repeats.append(time_import(src, Path(tmp) / "data"))
                    shutil.rmtree(Path(tmp) / "data")
                shutil.rmtree(src)
                seconds = sorted(r["seconds"] for r in repeats)
                median = statistics.median(seconds)
                typical = min(repeats, key=lambda r: abs(r["seconds"] - median))
                run = {"format": fmt, "n": n, "export_s": round(exported, 3), **typical}
                run.update(seconds=round(median, 3), min_s=seconds[0], repeats_s=seconds)
                run["images_per_s"] = round(n / median, 1)
                runs.append(run)
                print(
                    f"{fmt:>4} {n:>5} images: import {median:7.2f} s (of {seconds}) {run['stages_s']}", file=sys.stderr
                )
    growth = {}
    for fmt in args.formats:
        ns = np.array([r["n"] for r in runs if r["format"] == fmt], float)
        ts = np.array([r["seconds"] for r in runs if r["format"] == fmt], float)
        slope, intercept = np.polyfit(ns, ts, 1) if len(ns) > 1 else (ts[0] / ns[0], 0.0)
        growth[fmt] = {"seconds_per_1000_images": round(1000 * slope, 3), "fixed_s": round(intercept, 3)}
    largest = max(args.sizes)
    at_target = {r["format"]: r["seconds"] for r in runs if r["n"] == largest}
    result = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "target": f"{TARGET_IMAGES} images in <= {TARGET_S:.0f} s per format",
        "runs": runs,
        "growth": growth,
        "largest": {"n": largest, "seconds": at_target},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"dataset import, 128x128 PNGs, {result['cpu']}, {result['cpus']} CPUs")
    print(f"{'format':<7}" + "".join(f"{n:>10}" for n in args.sizes) + "   s per 1000 images")
    for fmt in args.formats:
        times = [next(r["seconds"] for r in runs if r["format"] == fmt and r["n"] == n) for n in args.sizes]
        print(f"{fmt:<7}" + "".join(f"{t:>9.2f}s" for t in times) + f"   {growth[fmt]['seconds_per_1000_images']:.2f}")
    print(f"written to {args.out}")
    missed = largest >= TARGET_IMAGES and any(t > TARGET_S * largest / TARGET_IMAGES for t in at_target.values())
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
