"""Export benchmark: ``python -m benchmarks.export`` (``make bench`` runs it).

Exports one checkpoint in every format (:mod:`ssd.export`) and runs each with its own runtime
(TensorFlow for the SavedModel, onnxruntime, LiteRT) against :meth:`ssd.detect.Detector.predict`
on the same ``--images`` validation images, in one process. Per format: the file size, the
conversion time, the parity figures (:func:`ssd.export.compare`: largest box and score
difference over the paired detections, and whether the detections are the same), and CPU
latency per image: one image at a time (``latency_ms``, median of ``--repeats`` runs) and a
batch of ``--images`` (``batch_ms_per_image``, median of 5 runs / images). TFLite timings include
:func:`ssd.detect.non_max_suppression` on its outputs, as a caller runs it. Without
``--checkpoint`` a default-preset model is trained for ``--steps`` steps first (batch 8).
Results go to ``.bench/export.json``.
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
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datasets_import import cpu_model
from benchmarks.detect import train_checkpoint
from ssd.data import for_config
from ssd.detect import Detections, Detector, non_max_suppression
from ssd.export import FORMATS, compare, export

Predict = Callable[[np.ndarray], list[Detections]]
FILE_NAMES = {"savedmodel": "savedmodel", "onnx": "model.onnx", "tflite": "model.tflite"}


def size_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a directory."""
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def from_padded(out: dict[str, np.ndarray]) -> list[Detections]:
    """Padded ``boxes``/``scores``/``classes``/``num_detections`` outputs as Detections."""
    return [
        Detections(out["boxes"][i, :n], out["scores"][i, :n], out["classes"][i, :n].astype(np.int32))
        for i, n in enumerate(np.asarray(out["num_detections"]).tolist())
    ]


def runner(fmt: str, path: Path, detector: Detector) -> Predict:
    """Images uint8 [N, S, S, 3] -> Detections with the format's own runtime."""
    if fmt == "savedmodel":
        import tensorflow as tf

        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        return lambda images: from_padded({k: v.numpy() for k, v in serve(images=tf.constant(images)).items()})
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return lambda images: from_padded(dict(zip(names, session.run(None, {"images": images}), strict=True)))
    from ai_edge_litert.interpreter import Interpreter

    run = Interpreter(model_path=str(path), num_threads=os.cpu_count()).get_signature_runner("serving_default")

    def predict(images: np.ndarray) -> list[Detections]:
        out = run(images=images)
        return non_max_suppression(out["boxes"], out["scores"], config=detector.config.detect)

    return predict


def timings(predict: Predict, images: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms per image: one image a call (``repeats`` calls) and the whole batch a call (5 calls)."""
    predict(images[:1])  # warm-up: first-call tracing and allocation are not latency
    predict(images)
    single = []
    for r in range(repeats):
        start = time.perf_counter()
        predict(images[r % len(images) : r % len(images) + 1])
        single.append(1000 * (time.perf_counter() - start))
    batch = []
    for _ in range(5):
        start = time.perf_counter()
        predict(images)
        batch.append(1000 * (time.perf_counter() - start) / len(images))
    return {"latency_ms": round(statistics.median(single), 2), "batch_ms_per_image": round(statistics.median(batch), 2)}


def run(checkpoint: Path, out_dir: Path, *, images: int, repeats: int) -> dict[str, Any]:
    """Export ``checkpoint`` in every format into ``out_dir`` and measure each against Detector.predict."""
    detector = Detector.from_checkpoint(checkpoint)
    batch, *_ = for_config(detector.config, "val").batch(0, images)
    reference = detector.predict(batch)
    rows: dict[str, Any] = {"detector": timings(detector.predict, batch, repeats)}
    rows["detector"]["bytes"] = size_bytes(checkpoint / "model.weights.h5")
    for fmt in FORMATS:
        path = out_dir / FILE_NAMES[fmt]
        start = time.perf_counter()
        export(checkpoint, fmt, path)
        convert_s = time.perf_counter() - start
        predict = runner(fmt, path, detector)
        parity = compare(reference, predict(batch))
        rows[fmt] = {
            "bytes": size_bytes(path),
            "convert_s": round(convert_s, 2),
            "max_box_diff_px": float(f"{parity.max_box_diff:.3g}"),
            "max_score_diff": float(f"{parity.max_score_diff:.3g}"),
            "same_detections": parity.same,
            "unpaired": parity.unpaired,
            **timings(predict, batch, repeats),
        }
    config = detector.config
    return {
        "checkpoint": str(checkpoint),
        "image_size": config.data.image_size,
        "num_units": config.model.num_units,
        "images": images,
        "detections": sum(len(d) for d in reference),
        "detect": {"score_threshold": config.detect.score_threshold, "max_detections": config.detect.max_detections},
        "repeats": repeats,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "formats": rows,
    }


def report(summary: dict[str, Any]) -> list[str]:
    """The summary as a table, a line per format."""
    s = summary
    lines = [f"{s['images']} images of {s['image_size']} px, {s['detections']} detections; {s['cpu']} x {s['cpus']}"]
    header = ("format", "size KiB", "box px", "score", "same", "ms/img (1)", "ms/img (N)")
    lines.append(f"{header[0]:<11} " + " ".join(f"{h:>10}" for h in header[1:]))
    for fmt, row in s["formats"].items():
        parity = [row.get(key, "-") for key in ("max_box_diff_px", "max_score_diff", "same_detections")]
        lines.append(
            f"{fmt:<11} {row['bytes'] / 1024:>10.0f} "
            + " ".join(f"{v!s:>10}" for v in parity)
            + f" {row['latency_ms']:>10.2f} {row['batch_ms_per_image']:>10.2f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print and save the summary."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".bench/export.json"), help="where the JSON results go")
    parser.add_argument("--checkpoint", type=Path, help="a job or `ssdboard train --out` directory")
    parser.add_argument("--steps", type=int, default=300, help="training steps when no --checkpoint is given")
    parser.add_argument("--images", type=int, default=32, help="validation images (default 32)")
    parser.add_argument("--repeats", type=int, default=20, help="one-image runs per format; the median is reported")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ssdboard-bench-export-") as tmp:
        checkpoint = args.checkpoint or Path(tmp) / "run"
        if args.checkpoint is None:
            print(f"training a default-preset model for {args.steps} steps into {checkpoint} ...", file=sys.stderr)
            train_checkpoint(checkpoint, args.steps)
        summary = run(checkpoint.resolve(), Path(tmp) / "exports", images=args.images, repeats=args.repeats)
    if args.checkpoint is None:
        summary["checkpoint"] = f"default preset, {args.steps} training steps (batch 8)"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(*report(summary), f"results in {args.out}", sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
