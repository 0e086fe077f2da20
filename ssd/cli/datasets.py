"""``ssdboard datasets import | list | show | remove | export`` (contract in DESIGN.md).

- ``import SRC [--format auto|coco|voc|yolo] [--name NAME] [--val-fraction F] [--seed S] [--json]``
- ``list [--json]``, ``show ID [--json]``, ``remove ID``
- ``export ID|mnist --format coco|voc|yolo --out DIR [--images N] [--val-fraction F] [--seed S]``

Every command takes ``--data-dir`` (default ``SSDBOARD_DATA_DIR`` or ``data``), the directory the
server uses too. A dataset that cannot be imported exits with status 2:
``ssdboard: error: SRC: <file>: <message>``. Progress bars go to stderr (only on a terminal).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ssd.cli.common import CliError

PROBLEMS_SHOWN = 20


def data_dir(args: argparse.Namespace) -> Path:
    """``--data-dir``, else ``SSDBOARD_ARTIFACT_DIR`` (the registry root), ``SSDBOARD_DATA_DIR``, ``data``."""
    return Path(
        args.data_dir or os.environ.get("SSDBOARD_ARTIFACT_DIR") or os.environ.get("SSDBOARD_DATA_DIR") or "data"
    )


def _registry(args: argparse.Namespace) -> Any:
    from ssd.datasets.registry import Registry

    return Registry(data_dir(args))


class _Bars:
    """A tqdm bar per stage of a ``progress(done, total, stage)`` callback, on stderr."""

    def __init__(self, unit: str = "img") -> None:
        self.bar: Any = None
        self.stage = ""
        self.unit = unit

    def __call__(self, done: int, total: int, stage: str) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            if total > 1:
                self.bar = tqdm(
                    total=total, desc=stage, unit=self.unit, file=sys.stderr, delay=0.5, leave=False, disable=None
                )
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _dump(data: Any) -> None:
    from ssd.datasets.registry import json_safe

    print(json.dumps(json_safe(data), indent=1, allow_nan=False))


def _table(rows: Iterable[Iterable[Any]], header: Iterable[str], indent: str = "") -> list[str]:
    """Left-aligned columns (numbers right-aligned); None shows as ``-``."""
    cells = [[str(h) for h in header]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(cells[0]))]
    numeric = [all(row[k].isdigit() or row[k] == "-" for row in cells[1:]) for k in range(len(widths))]
    lines = []
    for row in cells:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row, widths, numeric, strict=True)]
        lines.append(indent + "  ".join(parts).rstrip())
    return lines


def _detail(problem: Any) -> str:
    """A problem's box as written (``[10 abc 20 20]``) and its detail."""
    from ssd.datasets.export import number

    def text(v: Any) -> str:
        return number(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else str(v)

    box = f"[{' '.join(text(v) for v in problem.box)}]" if problem.box is not None else ""
    return "  ".join(part for part in (box, problem.detail) if part)


def report_lines(report: Any, report_path: Path | None) -> list[str]:
    """The readable report: counts per reason (zeros left out), the first problems, the file."""
    from ssd.datasets.report import BOX_DROPS, IMAGE_DROPS, NOTES

    groups = (("image dropped", IMAGE_DROPS), ("box dropped", BOX_DROPS), ("kept, noted", NOTES))
    rows = [(what, r.value, report.counts[r]) for what, reasons in groups for r in reasons if report.counts[r]]
    lines = _table(rows, ("", "reason", "count")) if rows else ["nothing dropped, nothing noted"]
    problems = report.problems
    if problems:
        shown = problems[:PROBLEMS_SHOWN]
        title = "problems" if len(problems) <= PROBLEMS_SHOWN else f"first {len(shown)} of {len(problems)} problems"
        lines += ["", f"{title}:"]
        lines += _table(
            ((p.file, p.reason.value, p.image or "", _detail(p)) for p in shown),
            ("file", "reason", "image", "box / detail"),
            indent="  ",
        )
    if report_path is not None:
        lines += ["", f"full report: {report_path}"]
    return lines


def _summary(meta: dict[str, Any]) -> list[str]:
    counts, splits = meta["counts"], meta["splits"]
    classes = meta["classes"]
    shown = ", ".join(classes[:20]) + (f", ... ({len(classes) - 20} more)" if len(classes) > 20 else "")
    boxes = f"{counts['boxes']}" + (f" (+{counts['ignored']} ignore regions)" if counts.get("ignored") else "")
    return [
        f"id       {meta['id']}",
        f"name     {meta['name']}",
        f"format   {meta['format']}",
        f"created  {meta['created'] or '-'}",
        f"source   {meta.get('source', '-')}",
        f"images   {counts['images'] if counts['images'] is not None else 'generated'}"
        + (
            f" (train {splits['train']}, val {splits['val']}; split: {meta.get('split_from')})"
            if meta["created"]
            else ""
        ),
        f"boxes    {boxes if counts['boxes'] is not None else 'generated'}",
        f"classes  {len(classes)}: {shown}",
    ]


def _json_result(meta: dict[str, Any], report: Any, path: Path | None) -> dict[str, Any]:
    data = report.to_dict()
    return {
        **meta,
        "images": meta["counts"]["images"],
        "boxes": meta["counts"]["boxes"],
        "ignored_regions": data["ignored_regions"],
        "dropped": data["dropped"],
        "kept_with_notes": data["kept_with_notes"],
        "problems": data["problems"],
        "path": None if path is None else str(path),
        "report": None if path is None else str(path / "report.json"),
    }


def cmd_import(args: argparse.Namespace) -> int:
    """Import, validate and register SRC; print the report."""
    from ssd.datasets.limits import CLI_NAMES, ImportLimits
    from ssd.datasets.records import DatasetError
    from ssd.datasets.registry import NameTaken, RegistryError

    registry = _registry(args)
    if not 0.0 <= args.val_fraction < 1.0:
        raise CliError(f"option --val-fraction: must be in [0, 1), got {args.val_fraction}")
    for key, option in CLI_NAMES.items():
        if getattr(args, f"max_{key}") < 1:
            raise CliError(f"option {option}: must be at least 1, got {getattr(args, f'max_{key}')}")
    limits = ImportLimits(annotation_bytes=args.max_annotation_bytes, images=args.max_images, boxes=args.max_boxes)
    if not Path(args.src).exists():
        raise CliError(f"SRC: {args.src}: no such file or directory")
    bars = _Bars()
    try:
        meta = registry.import_dataset(
            Path(args.src), format=args.format, name=args.name, val_fraction=args.val_fraction, seed=args.seed,
            progress=bars, limits=limits,
        )  # fmt: skip
    except DatasetError as exc:
        raise CliError(f"SRC: {exc}") from exc
    except (NameTaken, RegistryError) as exc:
        raise CliError(
            f"option --name: {exc}: choose another name"
            if args.name
            else f"SRC: {exc}: choose another name with --name"
        ) from exc
    except KeyboardInterrupt:
        bars.close()
        print("interrupted: nothing was imported", file=sys.stderr)
        return 130
    finally:
        bars.close()
    path = registry.path(meta["id"])
    report = registry.report(meta["id"])
    if args.json:
        _dump(_json_result(meta, report, path))
        return 0
    counts, splits = meta["counts"], meta["splits"]
    print(
        f"imported {meta['name']!r} as {meta['id']} ({meta['format']}): {counts['images']} images "
        f"(train {splits['train']}, val {splits['val']}), {counts['boxes']} boxes, {len(meta['classes'])} classes"
    )
    print("")
    print("\n".join(report_lines(report, path / "report.json")))
    return 0


def _lookup(registry: Any, ident: str) -> dict[str, Any]:
    from ssd.datasets.registry import DatasetNotFound

    try:
        meta: dict[str, Any] = registry.get(ident)
    except DatasetNotFound as exc:
        raise CliError(f"ID: {exc}") from exc
    return meta


def cmd_list(args: argparse.Namespace) -> int:
    """A table of the registered datasets (``mnist`` first)."""
    metas = _registry(args).list()
    if args.json:
        _dump(metas)
        return 0
    rows = (
        (
            m["id"],
            m["name"],
            m["format"],
            m["counts"]["images"],
            m["counts"]["boxes"],
            len(m["classes"]),
            m["splits"]["train"],
            m["splits"]["val"],
            m["created"],
        )
        for m in metas
    )
    print("\n".join(_table(rows, ("id", "name", "format", "images", "boxes", "classes", "train", "val", "created"))))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """One dataset's meta and a summary of its validation report."""
    registry = _registry(args)
    meta = _lookup(registry, args.id)
    report = registry.report(meta["id"])
    path = None if meta.get("builtin") else registry.path(meta["id"])
    if args.json:
        _dump(_json_result(meta, report, path))
        return 0
    lines = _summary(meta)
    if path is not None:
        lines += ["", *report_lines(report, path / "report.json")]
    print("\n".join(lines))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """Delete an imported dataset (never ``mnist``)."""
    from ssd.datasets.registry import BuiltInDataset, DatasetNotFound

    try:
        meta = _registry(args).remove(args.id)
    except (BuiltInDataset, DatasetNotFound) as exc:
        raise CliError(f"ID: {exc}") from exc
    print(f"removed {meta['id']} ({meta['name']})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a registered dataset, or ``--images`` generated ones for ``mnist``, as COCO/VOC/YOLO."""
    from ssd.datasets.registry import DatasetNotFound

    if args.images is not None and args.images < 1:
        raise CliError(f"option --images: must be >= 1, got {args.images}")
    if not 0.0 <= args.val_fraction < 1.0:
        raise CliError(f"option --val-fraction: must be in [0, 1), got {args.val_fraction}")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CliError(f"option --out: {out} exists and is not an empty directory")
    try:
        source = _registry(args).source(args.id)
    except DatasetNotFound as exc:
        raise CliError(f"ID: {exc}") from exc
    bars = _Bars()
    try:
        source.export(
            out, args.format, images=args.images, val_fraction=args.val_fraction, seed=args.seed, progress=bars
        )
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    finally:
        bars.close()
    print(f"wrote {source.name} as {args.format} to {out}")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``datasets`` and its subcommands to the ``ssdboard`` subparsers."""
    datasets = sub.add_parser("datasets", help="import, list, show, remove and export datasets")
    dsub = datasets.add_subparsers(dest="datasets_command", required=True)

    def command(name: str, help: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = dsub.add_parser(name, help=help)
        p.add_argument("--data-dir", default=None, help="the data directory (default SSDBOARD_DATA_DIR or ./data)")
        p.set_defaults(func=func)
        return p

    p = command("import", "import and validate a COCO / VOC / YOLO dataset", cmd_import)
    p.add_argument("src", metavar="SRC", help="a COCO .json, a VOC or YOLO folder, or a .zip of one")
    p.add_argument("--format", default="auto", choices=["auto", "coco", "voc", "yolo"])
    p.add_argument("--name", help="the dataset's name (default: SRC's name); names are unique")
    p.add_argument(
        "--val-fraction", type=float, default=0.1, help="validation share when the dataset has no split (0.1)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of that split (0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    from ssd.datasets.limits import ImportLimits

    limits = ImportLimits()
    p.add_argument(
        "--max-annotation-bytes",
        type=int,
        default=limits.annotation_bytes,
        help=f"refuse a COCO JSON file larger than this, before parsing it ({limits.annotation_bytes})",
    )
    p.add_argument("--max-images", type=int, default=limits.images, help=f"refuse more images ({limits.images})")
    p.add_argument("--max-boxes", type=int, default=limits.boxes, help=f"refuse more boxes ({limits.boxes})")

    p = command("list", "the registered datasets", cmd_list)
    p.add_argument("--json", action="store_true", help="a JSON list of the datasets' metadata")

    p = command("show", "one dataset and its validation report", cmd_show)
    p.add_argument("id", metavar="ID", help="id or name")
    p.add_argument("--json", action="store_true", help="the metadata and the full report as JSON")

    p = command("remove", "delete an imported dataset", cmd_remove)
    p.add_argument("id", metavar="ID", help="id or name")

    p = command("export", "write a dataset (or generated mnist images) as COCO, VOC or YOLO", cmd_export)
    p.add_argument("id", metavar="ID", help="id or name, or mnist")
    p.add_argument("--format", required=True, choices=["coco", "voc", "yolo"])
    p.add_argument("--out", required=True, help="a new or empty directory")
    p.add_argument("--images", type=int, help="at most N images (mnist: N generated images, default 1000)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="mnist: the validation share (0.1)")
    p.add_argument("--seed", type=int, default=0, help="mnist: the generator's training seed (0)")
