"""``ssdboard analyze`` (contract in DESIGN.md): why a checkpoint misses what it misses.

- ``analyze --checkpoint DIR [--dataset NAME|ID] [--split val|train] [--images N]
  [--data-dir DIR] [--json FILE] [--weights best|last]``

The checkpoint's best weights where training kept them, unless ``--weights last``.

Predicts the first ``N`` images of the split (default ``data.val_images``, fewer where the split
ends) of the checkpoint's dataset, or of ``--dataset`` (same classes), unaugmented, and prints
:func:`ssd.analysis.report.analyze`: TIDE's error breakdown, AP by object size, and what became
of every ground truth, misses that no prior can match counted apart; and the run's health checks
(:mod:`ssd.analysis.health`, from the checkpoint directory's ``metrics.jsonl`` and ``evals.jsonl``
and the data). ``--json`` writes the whole
document (:meth:`ssd.analysis.report.Analysis.to_dict`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ssd.cli.common import DATA_DIR_HELP, CliError, add_weights_argument, describe_weights

BATCH = 32  # images predicted at a time: memory stays one batch of images and their detections


def _config(detector: Any, args: argparse.Namespace) -> Any:
    """The checkpoint's config, on ``--dataset`` where given (its class count must be the same)."""
    from ssd.config import ConfigError, from_dict
    from ssd.datasets.resolve import apply_dataset

    config = detector.config
    if args.dataset is None:
        return config
    data = config.to_dict()
    data["data"] = {**data["data"], "dataset": args.dataset}
    try:
        return from_dict(apply_dataset(data, Path(args.data_dir) if args.data_dir else None))
    except ConfigError as exc:
        raise CliError(f"option --dataset: {exc.field}: {exc.message}") from exc


def cmd_analyze(args: argparse.Namespace) -> int:
    import numpy as np

    from ssd.analysis.health import check_data, run_health
    from ssd.analysis.report import analyze
    from ssd.checkpoint import EVALS_FILE, METRICS_FILE
    from ssd.config import ConfigError
    from ssd.datasets.resolve import resolve
    from ssd.detect import Detector
    from ssd.priors import make_priors

    if args.images is not None and args.images < 1:
        raise CliError(f"option --images: must be >= 1, got {args.images}")
    try:
        detector = Detector.from_checkpoint(args.checkpoint, args.weights)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(f"option --checkpoint: {exc}") from exc
    print(describe_weights(args.checkpoint, detector.weights_path), file=sys.stderr)
    config = _config(detector, args)
    try:
        source = resolve(config, Path(args.data_dir) if args.data_dir else None)
        data = source.split(config, args.split, augment=False, cache_bytes=0)
    except ConfigError as exc:
        option = "--dataset" if args.dataset else "--checkpoint"
        raise CliError(f"option {option}: {exc.field}: {exc.message}") from exc
    except ValueError as exc:  # an imported dataset without this split
        raise CliError(f"option --split: {exc}") from exc
    n = source.count(args.split, args.images if args.images is not None else config.data.val_images)
    gt_boxes, gt_labels, detections, ignore = [], [], [], []
    for start in range(0, n, BATCH):
        samples = [data[i] for i in range(start, min(start + BATCH, n))]
        detections += detector.predict(np.stack([s.image for s in samples]), batch_size=BATCH)
        gt_boxes += [s.boxes for s in samples]
        gt_labels += [s.labels for s in samples]
        ignore += [data.ignore_regions(i) for i in range(start, start + len(samples))]
    priors = make_priors(config.priors, config.data.image_size).boxes
    analysis = analyze(gt_boxes, gt_labels, detections, config, priors, ignore=ignore)
    health = run_health(
        config,
        _records(Path(args.checkpoint) / METRICS_FILE),
        _records(Path(args.checkpoint) / EVALS_FILE),
        check_data(config, source),
    )
    result = {
        "dataset": source.id,
        "dataset_name": source.name,
        "split": args.split,
        **replace(analysis, health=[c.to_dict() for c in health]).to_dict(),
    }
    for line in describe(result, dataset=source.name, split=args.split):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def _records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a run's ``metrics.jsonl`` / ``evals.jsonl`` (none where the file is missing)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):  # a line a running job is still writing
            records.append(json.loads(line))
    return records


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def describe(result: dict[str, Any], *, dataset: str, split: str) -> list[str]:
    """The terminal's table of an analysis document."""
    tide, causes = result["tide"], result["causes"]
    total = sum(causes.values())
    lines = [
        f"dataset {dataset}, {split} split, {result['images']} images, {total} ground truths",
        f"AP@.5 {_num(result['ap50'])}",
        "",
        "what fixing each error type would add (dAP, AP points at IoU .5; TIDE):",
        "  " + "  ".join(f"{k} {_num(tide[k])}" for k in ("cls", "loc", "both", "dupe", "bkg", "missed")),
        f"  all false positives {_num(tide['false_pos'])}  all false negatives {_num(tide['false_neg'])}",
        "",
        "AP by object size (COCO areas):   AP@.5  AP@[.5:.95]  objects",
    ]
    for label, size in result["ap_by_size"].items():
        lines.append(f"  {label:<30} {_num(size['ap50']):>6} {_num(size['ap']):>12} {size['num_gt']:>8}")
    lines.append("AP by size bucket (prior coverage's):")
    for size in result["ap_by_bucket"]:
        lines.append(f"  {size['label']:<30} {_num(size['ap50']):>6} {_num(size['ap']):>12} {size['num_gt']:>8}")
    lines += ["", "what became of each ground truth:"]
    names = {
        "found": "found",
        "cls": "seen, wrong class (cls)",
        "loc": "seen, box off (loc)",
        "missed": "missed",
        "no_prior": "missed: no prior can match it",
    }
    for cause, count in causes.items():
        share = f"{100 * count / total:.1f}%" if total else "-"
        lines.append(f"  {names[cause]:<30} {count:>8} {share:>7}")
    problems = [c for c in result["health"] if c["status"] in ("warn", "fail")]
    lines += ["", "health: " + ("no problem found" if not problems else f"{len(problems)} to look at")]
    for c in problems:
        lines += [f"  {c['status']}: {c['check']}: {c['evidence']}", f"    try: {c['advice']}"]
    lines += ["", "recall by best prior IoU:"]
    for b in result["recall_by_prior_iou"]:
        if b["ground_truths"]:
            lines.append(
                f"  {b['low']:.1f}-{b['high']:.1f}  {b['found']:>6} of {b['ground_truths']:<6} "
                f"recall {b['recall']:.2f}  no prior {b['no_prior']}"
            )
    return lines


def add_parser(sub: Any) -> None:
    """Add ``analyze`` to the ``ssdboard`` subparsers."""
    p = sub.add_parser("analyze", help="why a checkpoint misses: TIDE errors, AP by size, each object's story")
    p.add_argument("--checkpoint", required=True, help="a training output directory")
    p.add_argument("--dataset", help="analyze on this dataset (id or name; default the checkpoint's)")
    p.add_argument("--split", choices=("val", "train"), default="val", help="which split (default val)")
    p.add_argument("--images", type=int, help="images to analyze (default data.val_images; fewer where the split ends)")
    p.add_argument("--json", help="also write the whole analysis (every number, every ground truth) here")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    add_weights_argument(p)
    p.set_defaults(func=cmd_analyze)
