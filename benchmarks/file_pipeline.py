"""Training on an imported dataset against training on the generator, and the file pipeline alone.

``python -m benchmarks.file_pipeline [--images 2000] [--repeats 3]`` (``make bench``):

1. Exports the generator's images as COCO and imports them (a real dataset on disk, 128 px).
2. Trains the ``default`` preset at batch 32 on the generator and on the import, interleaved
   (generator, import, generator, import, ...), warm-up steps first, and reports the median
   images/s of each and their ratio (the datasets issue's target: the import within 10%).
3. Times the file pipeline alone — :class:`ssd.datasets.loader.FileDataset` batches of 32 with
   the SSD augmentation, decode cache warm, on the trainer's two input threads — against the
   trainer's images/s (target: >= 3x), side by side in the same run.

Writes ``.bench/file_pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.flops import cpu_description
from benchmarks.train import TrainerRun
from ssd.config import Config, from_dict
from ssd.datasets.export import export_generator
from ssd.datasets.loader import FileDataset
from ssd.datasets.registry import Registry
from ssd.datasets.resolve import apply_dataset

BATCH = 32
TARGET_TRAIN_RATIO = 0.9
TARGET_PIPELINE_RATIO = 3.0


def pipeline_images_per_sec(dataset: FileDataset, batches: int, threads: int = 2) -> float:
    """Images/s of ``dataset.batch`` over ``batches`` batches on ``threads`` threads (as the
    trainer's tf.data map runs two of them)."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda b: dataset.batch(b * BATCH, BATCH), range(threads)))  # warm the cache
        started = time.perf_counter()
        list(pool.map(lambda b: dataset.batch(b * BATCH, BATCH), range(batches)))
    return batches * BATCH / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """Run; print and save the figures; 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.file_pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="images exported and imported (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements of each (default 3)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up steps per measurement")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--out", default=".bench/file_pipeline.json")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        export_generator(root / "export", "coco", images=args.images)
        data_dir = root / "data"
        Registry(data_dir).import_dataset(root / "export", name="digits")
        base = {"train": {"batch_size": BATCH, "steps": 10**6, "eval_every": 0, "checkpoint_every": 0}}
        configs: dict[str, Config] = {
            "generator": from_dict(base),
            "import": from_dict(apply_dataset({**base, "data": {"dataset": "digits"}}, data_dir)),
        }
        runs = {name: TrainerRun(config, str(root / name), data_dir) for name, config in configs.items()}
        speeds: dict[str, list[float]] = {name: [] for name in runs}
        pipeline: list[float] = []
        files = runs["import"].trainer.train_data
        assert isinstance(files, FileDataset)
        for _ in range(args.repeats):
            for name, run in runs.items():
                speeds[name].append(run.measure(args.warmup, args.steps))
            pipeline.append(pipeline_images_per_sec(files, batches=40))
    median = {name: statistics.median(v) for name, v in speeds.items()}
    result: dict[str, Any] = {
        "cpu": cpu_description(),
        "images": args.images,
        "batch": BATCH,
        "image_size": configs["generator"].data.image_size,
        "train_images_per_sec": {name: [round(v, 1) for v in values] for name, values in speeds.items()},
        "train_median": {name: round(v, 1) for name, v in median.items()},
        "import_over_generator": round(median["import"] / median["generator"], 3),
        "pipeline_images_per_sec": [round(v, 1) for v in pipeline],
        "pipeline_over_trainer": round(statistics.median(pipeline) / median["import"], 2),
    }
    result["ok"] = (
        result["import_over_generator"] >= TARGET_TRAIN_RATIO
        and result["pipeline_over_trainer"] >= TARGET_PIPELINE_RATIO
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
