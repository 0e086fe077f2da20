"""The ``ssdboard`` command line (contract in DESIGN.md): the parser, and the commands that train
and run a detector.

- ``ssdboard train [--config FILE] [--steps N] [--out DIR] [--seed S]``
- ``ssdboard detect --checkpoint DIR --images FILE.npz --out FILE.json [--weights best|last]``
- ``ssdboard evaluate --checkpoint DIR [--weights best|last]``
- ``ssdboard analyze ...`` (:mod:`ssd.cli.analyze`)
- ``ssdboard datasets import|list|show|remove|export ...`` (:mod:`ssd.cli.datasets`)
- ``ssdboard priors suggest --dataset ID [--config FILE] [--per-cell K]`` (:mod:`ssd.cli.priors`)
- ``ssdboard export --checkpoint DIR --format savedmodel|onnx|tflite --out PATH [--weights best|last]``
  (:mod:`ssd.cli.export`)
- ``ssdboard serve ...`` is added by :mod:`app.cli` (the library never imports the web layer)

Heavy imports (TensorFlow) happen inside the commands, so ``--help`` and errors are instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ssd.cli.analyze import add_parser as add_analyze_parser
from ssd.cli.common import DATA_DIR_HELP, CliError, add_weights_argument, describe_weights
from ssd.cli.datasets import add_parser as add_datasets_parser
from ssd.cli.export import add_parser as add_export_parser
from ssd.cli.priors import add_parser as add_priors_parser

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _config_arg(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """The config of ``--config`` (and ``--steps``, ``--seed``) with the data-fitted recipe's
    choices for the keys it leaves unset (:mod:`ssd.recipe`), and those choices."""
    from ssd.checkpoint import check_init
    from ssd.config import Config, ConfigError, from_dict, read_mapping
    from ssd.datasets.resolve import apply_dataset, default_data_dir, resolve
    from ssd.recipe import fit_recipe

    data_dir = Path(args.data_dir) if args.data_dir else None
    try:
        data = read_mapping(args.config) if args.config else {}
        train = data.get("train", {})
        if args.steps is not None and isinstance(train, dict):  # a key the user set: the recipe leaves it
            data = {**data, "train": {**train, "steps": args.steps}}
        bound = apply_dataset(data, data_dir)
        bound, choices = fit_recipe(bound, resolve(from_dict(bound), data_dir))
        config: Config = from_dict(bound)
        check_init(config, data_dir or default_data_dir())  # a bad model.init before TensorFlow starts
        if args.steps is not None:  # over a train section from_dict will refuse anyway
            config = replace(config, train=replace(config.train, steps=args.steps))
        if args.seed is not None:
            config = replace(config, seed=args.seed)
    except ConfigError as exc:
        option = "--steps" if exc.field == "train.steps" and args.steps is not None else "--config"
        option = "--seed" if exc.field == "seed" and args.seed is not None else option
        raise CliError(f"option {option}: {exc.field}: {exc.message}") from exc
    except FileNotFoundError as exc:
        raise CliError(f"option --config: no such file: {args.config}") from exc
    return config, choices


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ssd.train import NonFiniteLossError, Trainer

    config, choices = _config_arg(args)
    out = Path(args.out or f"runs/{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    from ssd.checkpoint import write_recipe
    from ssd.config import ConfigError

    for choice in choices:
        print(f"recipe: {choice.text}", file=sys.stderr)

    try:
        if config.train.workers > 1:  # this process is the chief; it starts the other workers itself
            from ssd.distributed import DistributedTrainer

            trainer: Trainer = DistributedTrainer.with_local_peers(config, out, data_dir=args.data_dir)
        else:
            trainer = Trainer(config, out, data_dir=args.data_dir)
    except ConfigError as exc:  # found only when building: e.g. ImageNet weights this machine cannot fetch
        raise CliError(f"option --config: {exc.field}: {exc.message}") from exc
    if choices and not trainer.has_checkpoint():  # a resumed run keeps the choices of its start
        write_recipe(out, [c.to_dict() for c in choices])
    if trainer.has_checkpoint():
        try:
            trainer.load_checkpoint()
        except ValueError as exc:
            raise CliError(f"option --out: cannot resume: {exc}") from exc
        print(f"resuming {out} at step {trainer.step}", file=sys.stderr)
    if trainer.init_report is not None and trainer.init_report.init != "none":
        for key, value in trainer.init_report.run_info().items():
            print(f"{key.replace('_', ' ')}: {value}", file=sys.stderr)
    print(f"precision: {trainer.precision.describe()}", file=sys.stderr)
    print(f"xla: {trainer.xla.describe()}", file=sys.stderr)
    print(f"loader processes: {trainer.loader.describe()}", file=sys.stderr)
    total = config.train.steps
    bar = tqdm(total=total, initial=trainer.step, unit="step", dynamic_ncols=True, disable=args.quiet)

    def on_step(m: dict[str, Any]) -> None:
        bar.set_postfix_str(
            f"pos {m['pos_clf']:.3f} neg {m['neg_clf']:.3f} loc {m['loc']:.3f} {m['images_per_sec']:.0f} img/s",
            refresh=False,
        )
        bar.update(1)

    def on_plan(total_steps: int, reason: str) -> None:
        bar.total = total_steps  # train.time_budget fitted the run's length
        bar.refresh()
        bar.write(f"time budget: {reason}")

    def on_eval(m: dict[str, Any]) -> None:
        bar.write(f"step {m['step']}: val total {m['val_total']:.3f}  mAP@.5 {m['map50']:.3f}  mAP {m['map']:.3f}")

    started = time.perf_counter()
    try:
        result = trainer.fit(on_step=on_step, on_eval=on_eval, on_plan=on_plan)
    except NonFiniteLossError as exc:
        bar.close()
        print(f"ssdboard: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        trainer.save_checkpoint()
        print(f"interrupted at step {trainer.step}; checkpoint saved in {out}", file=sys.stderr)
        return 130
    bar.close()
    if result.stop_reason:
        print(result.stop_reason, file=sys.stderr)
    if result.best is not None:
        best = result.best
        print(f"best: mAP@.5 {best['map50']:.4f} at step {best['step']} (best.weights.h5)", file=sys.stderr)
    print(f"{result.status} at step {result.step} in {time.perf_counter() - started:.0f} s; checkpoint in {out}")
    return 0


def load_detector(checkpoint: str, weights: str = "best") -> Any:
    """The checkpoint's detector with the ``--weights`` asked for; says on stderr which file it loaded."""
    from ssd.detect import Detector

    try:
        detector = Detector.from_checkpoint(checkpoint, weights)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(f"option --checkpoint: {exc}") from exc
    print(describe_weights(checkpoint, detector.weights_path), file=sys.stderr)
    return detector


def cmd_detect(args: argparse.Namespace) -> int:
    import numpy as np

    from ssd.detect import to_coco_results

    detector = load_detector(args.checkpoint, args.weights)
    try:
        with np.load(args.images) as data:
            images = data["images"]
    except (OSError, ValueError, KeyError) as exc:
        raise CliError(f"option --images: {args.images} must be an .npz with an 'images' array: {exc}") from exc
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise CliError(f"option --images: 'images' must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
    try:
        detector.check_image_size(images.shape[1], images.shape[2])
    except ValueError as exc:
        raise CliError(f"option --images: {exc}") from exc
    detections = detector.predict(images)
    results = to_coco_results(detections)
    Path(args.out).write_text(json.dumps(results))
    print(f"{len(results)} detections on {len(images)} images written to {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ssd.config import ConfigError
    from ssd.datasets.resolve import resolve
    from ssd.evaluate import evaluate_model

    if args.images is not None and args.images < 1:
        raise CliError(f"option --images: must be >= 1, got {args.images}")
    detector = load_detector(args.checkpoint, args.weights)
    try:
        source = resolve(detector.config, Path(args.data_dir) if args.data_dir else None)
    except ConfigError as exc:
        raise CliError(f"option --checkpoint: {exc.field}: {exc.message}") from exc
    num = source.count("val", args.images if args.images is not None else detector.config.data.val_images)
    result = evaluate_model(detector, source.split(detector.config, "val"), num)
    print(f"images        {num}")
    print(f"mAP@[.5:.95]  {result.map:.4f}")
    print(f"mAP@.5        {result.map50:.4f}")
    names = source.class_names  # the dataset's names (the digits for the generator)
    width = max(5, *(len(n) for n in names[: len(result.ap_per_class)]))
    print(f"{'class':<{width}}  AP@[.5:.95]  AP@.5")
    for k, (ap, ap50) in enumerate(zip(result.ap_per_class, result.ap50_per_class, strict=True)):
        name = names[k] if k < len(names) else str(k)
        print(f"{name:>{width}}  {ap:>11.4f}  {ap50:>5.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2))
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, Any]:
    """The parser of the library's commands and its subparsers (``app.cli`` adds ``serve``)."""
    parser = argparse.ArgumentParser(prog="ssdboard", description="Train and inspect SSD detectors.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train headless with a progress bar")
    p.add_argument("--config", help="TOML or JSON config file (every key optional)")
    p.add_argument("--steps", type=int, help="override train.steps")
    p.add_argument("--out", help="output directory (default runs/NAME-TIME); resumes if it holds a checkpoint")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("detect", help="run a checkpoint on images; write COCO results JSON")
    p.add_argument("--checkpoint", required=True, help="a training output directory")
    p.add_argument("--images", required=True, help=".npz with 'images' uint8 [N, H, W, 3]")
    p.add_argument("--out", required=True, help="output .json (COCO results list)")
    add_weights_argument(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("evaluate", help="COCO mAP of a checkpoint on the validation split")
    p.add_argument("--checkpoint", required=True, help="a training output directory")
    p.add_argument("--images", type=int, help="validation images (default data.val_images, 500)")
    p.add_argument("--json", help="also write the full result (per-class AP, PR curves) here")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    add_weights_argument(p)
    p.set_defaults(func=cmd_evaluate)

    add_analyze_parser(sub)
    add_datasets_parser(sub)
    add_priors_parser(sub)
    add_export_parser(sub)
    return parser, sub


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; a :class:`CliError` exits with status 2."""
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        parser.error(str(exc))  # exits with status 2
    return 2  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> int:
    """The library's commands only; the ``ssdboard`` console script is :func:`app.cli.main`."""
    return run(build_parser()[0], argv)
