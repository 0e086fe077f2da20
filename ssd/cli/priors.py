"""``ssdboard priors suggest`` (contract in DESIGN.md): priors fitted to a dataset's boxes.

- ``suggest --dataset ID [--config FILE] [--per-cell K] [--split train|val] [--images N]
  [--seed S] [--data-dir DIR] [--json]``

The config (default: the default preset) gives the source layers, their strides, the image size
and the matching threshold; ``--dataset`` (``mnist`` or an imported dataset's id or name)
replaces its ``data.dataset``. The output is the coverage of the config's priors and of the
suggestion on the first ``N`` images of the split (the ground truth at the network input,
unaugmented), and the ``priors`` section to paste into the config. NumPy only: no TensorFlow.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ssd.cli.common import DATA_DIR_HELP, CliError

DEFAULT_IMAGES = 2000


def _config(args: argparse.Namespace) -> Any:
    from ssd.config import ConfigError, from_dict, read_mapping
    from ssd.datasets.resolve import apply_dataset

    try:
        data = read_mapping(args.config) if args.config else {}
    except FileNotFoundError as exc:
        raise CliError(f"option --config: no such file: {args.config}") from exc
    except ConfigError as exc:
        raise CliError(f"option --config: {exc.field}: {exc.message}") from exc
    section = data.get("data")
    data["data"] = {**(section if isinstance(section, dict) else {}), "dataset": args.dataset}
    try:
        return from_dict(apply_dataset(data, Path(args.data_dir) if args.data_dir else None))
    except ConfigError as exc:
        option = "--dataset" if exc.field == "data.dataset" else "--config"
        raise CliError(f"option {option}: {exc.field}: {exc.message}") from exc


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _lines(out: dict[str, Any], per_cell: int) -> list[str]:
    """The text report: coverage before and after, per size bucket, then the section to paste."""
    rows = [("config", out["before"]), ("suggested", out["after"])]
    lines = [
        f"dataset {out['dataset']} ({out['split']}, {out['num_images']} images, {out['num_gt']} boxes): "
        f"IoU >= {out['iou_threshold']:g}, at most {per_cell} priors per cell",
        f"{'':<10} {'priors/cell':<12} {'priors':>7}  coverage",
    ]
    for name, r in rows:
        per_cell_text = " ".join(str(k) for k in r["priors_per_cell"])
        share = _pct(r["matched"], r["num_gt"])
        lines.append(f"{name:<10} {per_cell_text:<12} {r['num_priors']:>7}  {share} ({r['matched']} of {r['num_gt']})")
    lines.append("per size bucket (config -> suggested):")
    for before, after in zip(out["before"]["buckets"], out["after"]["buckets"], strict=True):
        if before["count"]:
            old, new = _pct(before["matched"], before["count"]), _pct(after["matched"], after["count"])
            lines.append(f"  {before['label']:<9} {before['count']:>6} boxes  {old:>6} -> {new}")
    lines.append(f"search {out['search']['ms']:.0f} ms, all {out['elapsed_ms']:.0f} ms; the priors section:")
    lines.append(json.dumps({"priors": out["priors"]}))
    return lines


def cmd_suggest(args: argparse.Namespace) -> int:
    from ssd.config import ConfigError
    from ssd.datasets.resolve import split_boxes
    from ssd.suggest import MAX_PER_CELL, fit

    if args.per_cell is not None and not 1 <= args.per_cell <= MAX_PER_CELL:
        raise CliError(f"option --per-cell: must be in 1..{MAX_PER_CELL}, got {args.per_cell}")
    if args.images < 1:
        raise CliError(f"option --images: must be >= 1, got {args.images}")
    config = _config(args)
    try:
        data = split_boxes(config, args.split, args.images, Path(args.data_dir) if args.data_dir else None)
    except ConfigError as exc:
        raise CliError(f"option --dataset: {exc.message}") from exc
    except ValueError as exc:  # an imported dataset without this split
        raise CliError(f"option --split: {exc}") from exc
    if not data.valid.any():
        raise CliError(f"option --dataset: {args.dataset} has no boxes in the first {args.images} {args.split} images")
    per_cell = args.per_cell if args.per_cell is not None else max(config.priors.priors_per_cell)
    fitted = fit(data, config, per_cell=per_cell, seed=args.seed)
    out = {"dataset": args.dataset, "split": args.split, "per_cell": per_cell, **fitted.to_dict()}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print("\n".join(_lines(out, per_cell)))
    return 0


def add_parser(sub: Any) -> None:
    """Add ``priors suggest`` to the ``ssdboard`` subparsers ``sub``."""
    p = sub.add_parser("priors", help="priors fitted to a dataset")
    commands = p.add_subparsers(dest="priors_command", required=True)
    s = commands.add_parser(
        "suggest",
        help="suggest scales and ratios that cover a dataset's boxes; print the coverage before and after",
    )
    s.add_argument("--dataset", required=True, help="mnist (the generator) or an imported dataset's id or name")
    s.add_argument("--config", help="TOML or JSON config: source layers, strides, image size, IoU threshold")
    s.add_argument("--per-cell", type=int, help="at most this many priors per cell (default: the config's most)")
    s.add_argument("--split", choices=("train", "val"), default="train", help="the boxes fitted to (default train)")
    s.add_argument("--images", type=int, default=DEFAULT_IMAGES, help=f"first N images (default {DEFAULT_IMAGES})")
    s.add_argument("--seed", type=int, default=0, help="the clustering's seed (default 0)")
    s.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    s.add_argument("--json", action="store_true", help="print one JSON object (the section, coverage, timings)")
    s.set_defaults(func=cmd_suggest)
