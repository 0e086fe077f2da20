"""Detection + evaluation benchmark: ``python -m benchmarks.detect`` (``make bench`` runs it).

Times, for one checkpoint, what the detections viewer does on 100 validation images: the model
on the images (``detect_s``), pycocotools plus the confusion matrix (``evaluate_s``), the whole
``GET /api/jobs/{id}/evaluation?n=100`` service call with a cold result cache and a loaded
detector (``endpoint_s``, figures included), and a page of 12 images of
``GET /api/jobs/{id}/detections`` (``page_s``). Each is the median of ``--repeats`` runs; the
first load of the checkpoint (``load_s``, TensorFlow import included) is timed once. Without
``--checkpoint`` a default-preset model is trained for ``--steps`` steps first (accuracy does not
matter for timing). Results go to ``.bench/detect.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.domain import Job, JobStatus
from app.services.detections import DetectionService
from app.settings import Settings
from ssd.config import from_dict
from ssd.datasets.resolve import for_config
from ssd.evaluate import coco_evaluate, confusion_matrix


def median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """Median seconds of ``repeats`` calls of ``fn``, and every call's seconds."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), runs


def train_checkpoint(directory: Path, steps: int) -> None:
    """A default-preset model trained for ``steps`` steps into ``directory`` (batch 8, no evaluation)."""
    from ssd.train import Trainer

    config = from_dict({"name": "bench-detect", "train": {"steps": steps, "batch_size": 8, "eval_images": 1}})
    Trainer(config, directory).fit()


def run(checkpoint: Path, *, images: int, repeats: int) -> dict[str, Any]:
    """Time detection and evaluation of ``checkpoint`` on ``images`` validation images."""
    config_dict = json.loads((checkpoint / "config.json").read_text())
    job = Job(
        id=checkpoint.name,
        name=config_dict["name"],
        config=config_dict,
        status=JobStatus.succeeded,
        created_at=datetime.now(UTC),
        step=0,
        total_steps=config_dict["train"]["steps"],
    )
    service = DetectionService(checkpoint.parent, max_upload_bytes=Settings().max_upload_bytes)  # no uploads here
    start = time.perf_counter()
    detector = service.detector(service.checkpoint(job))
    load_s = time.perf_counter() - start
    config = detector.config
    if images > config.data.val_images:
        raise SystemExit(f"--images {images} exceeds the checkpoint's data.val_images ({config.data.val_images})")
    samples = [for_config(config, "val", augment=False, cache_bytes=0)[i] for i in range(images)]
    batch = np.stack([s.image for s in samples])
    gt_boxes, gt_labels = [s.boxes for s in samples], [s.labels for s in samples]
    detector.predict(batch[:8])  # trace the model once, outside the timings

    detections: list[Any] = []

    def detect() -> None:
        detections[:] = detector.predict(batch)

    def evaluate() -> None:
        coco_evaluate(gt_boxes, gt_labels, detections, num_classes=config.model.num_classes, image_size=batch.shape[1])
        confusion_matrix(gt_boxes, gt_labels, detections, num_classes=config.model.num_classes)

    def endpoint() -> None:
        service.forget_results()
        service.evaluation(job, n=images, score=0.5)

    def page() -> None:
        service.forget_results()
        service.detections(job, limit=12, image_url=lambda i: f"/img/{i}.png")

    detect_s, detect_runs = median_seconds(detect, repeats)
    evaluate_s, evaluate_runs = median_seconds(evaluate, repeats)
    endpoint_s, endpoint_runs = median_seconds(endpoint, repeats)
    page_s, page_runs = median_seconds(page, repeats)
    return {
        "checkpoint": str(checkpoint),
        "images": images,
        "image_size": config.data.image_size,
        "repeats": repeats,
        "cpus": os.cpu_count(),
        "detections": int(sum(len(d) for d in detections)),
        "load_s": round(load_s, 3),
        "detect_s": round(detect_s, 3),
        "evaluate_s": round(evaluate_s, 3),
        "detect_plus_evaluate_s": round(detect_s + evaluate_s, 3),
        "endpoint_s": round(endpoint_s, 3),
        "page_s": round(page_s, 3),
        "runs": {"detect": detect_runs, "evaluate": evaluate_runs, "endpoint": endpoint_runs, "page": page_runs},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print and save the summary."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detect", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="a job or `ssdboard train --out` directory")
    parser.add_argument("--images", type=int, default=100, help="validation images (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is reported")
    parser.add_argument("--steps", type=int, default=3, help="training steps when no --checkpoint is given")
    parser.add_argument("--out", type=Path, default=Path(".bench/detect.json"), help="where the JSON results go")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ssdboard-bench-detect-") as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            checkpoint = Path(tmp) / "job"
            print(f"training a default-preset model for {args.steps} steps into {checkpoint} ...", file=sys.stderr)
            train_checkpoint(checkpoint, args.steps)
        summary = run(checkpoint.resolve(), images=args.images, repeats=args.repeats)
    if args.checkpoint is None:
        summary["checkpoint"] = f"default preset, {args.steps} training steps"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{summary['images']} images of {summary['image_size']} px on {summary['cpus']} CPUs, median of "
        f"{summary['repeats']}: detect {summary['detect_s']:.3f} s + evaluate {summary['evaluate_s']:.3f} s "
        f"= {summary['detect_plus_evaluate_s']:.3f} s; evaluation endpoint {summary['endpoint_s']:.3f} s; "
        f"12-image detections page {summary['page_s']:.3f} s; first load {summary['load_s']:.3f} s"
    )
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
