"""What TensorBoard event files cost a training step: :class:`ssd.tensorboard_log.TensorBoardLog` on and off.

``python -m benchmarks.tensorboard_log [--steps 200] [--repeats 3] [--quick] [--out FILE]`` trains the default config
(one :class:`ssd.train.Trainer`, so one model build and one trace) ``repeats`` times with the
log and ``repeats`` times without it, interleaved (off, on, off, on, ...) because the machine is
shared and its speed drifts. Per run it records

- the median wall time between consecutive steps (``on_step`` callbacks), after ``--warmup``
  steps, and
- with the log on, the time spent inside ``TensorBoardLog.step`` (the whole per-step cost it
  adds to the training thread: proto, CRC, buffered write, the occasional flush).

Printed and written to ``.bench/tensorboard_log.json``: the medians over runs of each, and the
difference of the step medians (noise on a loaded machine) beside the directly timed cost.
``--quick`` (a smoke run): a tiny model on 32x32 images, a few steps, written to
``.bench/tensorboard_log_quick.json`` so it never overwrites a measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ssd.train
from benchmarks.flops import cpu_description
from ssd.config import from_dict
from ssd.tensorboard_log import TensorBoardLog

OUT_FILE = Path(".bench") / "tensorboard_log.json"
QUICK_FILE = Path(".bench") / "tensorboard_log_quick.json"
#: The default recipe with no periodic checkpoint or evaluation inside the timed steps.
FULL_CONFIG: dict[str, Any] = {"train": {"eval_every": 0, "checkpoint_every": 0, "eval_images": 32}}
QUICK_CONFIG: dict[str, Any] = {
    "preset": "notebook",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[12, 18]], "ratios": [0.7]},
    "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2, "val_images": 8},
    "train": {"batch_size": 2, "eval_every": 0, "checkpoint_every": 0, "eval_images": 4},
}


class NoLog:
    """Stands in for :class:`TensorBoardLog` in the runs without it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def step(self, record: Any) -> None:
        pass

    def eval(self, record: Any) -> None:
        pass

    def __enter__(self) -> NoLog:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class TimedLog(TensorBoardLog):
    """The real log, timing its per-step calls."""

    spent: list[float] = []

    def step(self, record: Any) -> None:
        start = time.perf_counter()
        super().step(record)
        TimedLog.spent.append(time.perf_counter() - start)


def run_once(trainer: ssd.train.Trainer, out: Path, steps: int, warmup: int, log_on: bool) -> float:
    """Median seconds between steps of one ``fit`` from step 0 into ``out``."""
    out.mkdir(parents=True)
    trainer.out_dir, trainer.step = out, 0
    ends: list[float] = []
    ssd.train.TensorBoardLog = TimedLog if log_on else NoLog  # type: ignore[misc,assignment]
    try:
        trainer.fit(on_step=lambda _: ends.append(time.perf_counter()), steps=steps)
    finally:
        ssd.train.TensorBoardLog = TensorBoardLog  # type: ignore[misc]
    gaps = [b - a for a, b in zip(ends[warmup:], ends[warmup + 1 :], strict=False)]
    return statistics.median(gaps)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="steps of each run not timed")
    parser.add_argument("--repeats", type=int, default=3, help="runs with and without the log")
    parser.add_argument("--quick", action="store_true", help="smoke run: a tiny model, 6 steps, 1 repeat")
    parser.add_argument("--out", type=Path, help="the JSON file (default .bench/tensorboard_log[_quick].json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.repeats = 6, 1, 1
    config = from_dict(QUICK_CONFIG if args.quick else FULL_CONFIG)
    TimedLog.spent.clear()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = ssd.train.Trainer(config, Path(tmp) / "build")
        step_s: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(args.repeats):
            for mode in ("off", "on"):
                seconds = run_once(trainer, Path(tmp) / f"{mode}{r}", args.steps, args.warmup, mode == "on")
                step_s[mode].append(seconds)
                print(f"repeat {r + 1} log {mode}: {seconds * 1e3:.1f} ms/step", flush=True)
    off, on = statistics.median(step_s["off"]), statistics.median(step_s["on"])
    call = statistics.median(TimedLog.spent)
    result = {
        "cpu": cpu_description(),
        "command": "python -m benchmarks.tensorboard_log " + " ".join(argv or []),
        "quick": args.quick,
        "steps": args.steps,
        "batch_size": config.train.batch_size,
        "step_ms_off": [s * 1e3 for s in step_s["off"]],
        "step_ms_on": [s * 1e3 for s in step_s["on"]],
        "median_step_ms_off": off * 1e3,
        "median_step_ms_on": on * 1e3,
        "median_log_step_us": call * 1e6,
        "mean_log_step_us": statistics.fmean(TimedLog.spent) * 1e6,
        "log_share_of_step": call / off,
    }
    print(
        f"step: {off * 1e3:.1f} ms without the log, {on * 1e3:.1f} ms with it (medians of {args.repeats}); "
        f"TensorBoardLog.step itself: median {call * 1e6:.1f} us, mean {result['mean_log_step_us']:.1f} us "
        f"({call / off:.4%} of a step)"
    )
    out = args.out or (QUICK_FILE if args.quick else OUT_FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
