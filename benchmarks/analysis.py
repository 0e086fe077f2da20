"""Error-analysis benchmark: ``python -m benchmarks.analysis`` (``make bench`` runs it).

Times the analysis of a checkpoint on ``--images`` (500) validation images, as the dashboard
runs it: ``python -m ssd.cli analyze`` in a child process (``command_s``: TensorFlow's import,
the model's load, prediction, TIDE, AP by size, every object's story and the health checks;
the target is at most 30 s on 2 cores). In this process, on the same images, it splits that into
prediction (``predict_s``, ``Detector.predict``) and the NumPy analysis of the detections
(``analyze_s``: :func:`ssd.analysis.report.analyze`). Each is the median of ``--repeats`` runs.
Without ``--checkpoint`` a default-preset model is trained for ``--steps`` steps first (a barely
trained model scores many more boxes above the threshold than a good one: the analysis's worst
case). Results go to ``.bench/analysis.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.detect import median_seconds, train_checkpoint
from benchmarks.flops import cpu_description

TARGET_S = 30.0  # issue 23: a 500-image analysis in at most 30 s on 2 cores


def run(checkpoint: Path, *, images: int, repeats: int) -> dict[str, Any]:
    """Time the analysis of ``checkpoint`` on ``images`` validation images."""
    import numpy as np

    from ssd.analysis.report import analyze
    from ssd.datasets.resolve import resolve
    from ssd.detect import Detector
    from ssd.priors import make_priors

    out = Path(tempfile.mkdtemp()) / "analysis.json"
    argv = [sys.executable, "-m", "ssd.cli", "analyze", "--checkpoint", str(checkpoint)]
    argv += ["--images", str(images), "--json", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command_s, command_runs = median_seconds(
        lambda: subprocess.run(argv, check=True, capture_output=True, env=env), repeats
    )
    document = json.loads(out.read_text())

    detector = Detector.from_checkpoint(checkpoint)
    config = detector.config
    data = resolve(config).split(config, "val", augment=False)
    samples = [data[i] for i in range(images)]
    batch = np.stack([s.image for s in samples])
    detector.predict(batch[:32])  # the first call traces the graph
    predict_s, predict_runs = median_seconds(lambda: detector.predict(batch), repeats)
    detections = detector.predict(batch)
    priors = make_priors(config.priors, config.data.image_size).boxes
    boxes, labels = [s.boxes for s in samples], [s.labels for s in samples]
    regions = [data.ignore_regions(i) for i in range(images)]
    analyze_s, analyze_runs = median_seconds(
        lambda: analyze(boxes, labels, detections, config, priors, ignore=regions), repeats
    )
    return {
        "images": images,
        "ground_truths": len(document["ground_truths"]),
        "detections": int(sum(len(d.scores) for d in detections)),
        "false_positives": document["false_positives_total"],
        "command_s": round(command_s, 2),
        "command_runs_s": [round(r, 2) for r in command_runs],
        "predict_s": round(predict_s, 2),
        "predict_runs_s": [round(r, 2) for r in predict_runs],
        "predict_ms_per_image": round(1000 * predict_s / images, 1),
        "analyze_s": round(analyze_s, 2),
        "analyze_runs_s": [round(r, 2) for r in analyze_runs],
        "target_s": TARGET_S,
        "within_target": command_s <= TARGET_S,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.analysis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="a run directory (default: train one first)")
    parser.add_argument("--steps", type=int, default=100, help="training steps without --checkpoint")
    parser.add_argument("--images", type=int, default=500, help="validation images analyzed")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each timing (the median is reported)")
    parser.add_argument("--out", type=Path, default=Path(".bench/analysis.json"), help="where the JSON results go")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            checkpoint = Path(tmp) / "run"
            train_checkpoint(checkpoint, args.steps)
        result = run(checkpoint, images=args.images, repeats=args.repeats)
    summary = {"benchmark": "analysis", "cpu": cpu_description(), "cores": os.cpu_count(), **result}
    summary["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
