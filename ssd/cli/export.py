"""``ssdboard export --checkpoint DIR --format savedmodel|onnx|tflite --out PATH [--weights best|last]``
(contract in DESIGN.md).

Writes the checkpoint's detector (its best weights where training kept them, unless
``--weights last``) in a deployment format (:mod:`ssd.export`): a SavedModel
directory, an ``.onnx`` or a ``.tflite`` file. A bad option is ``ssdboard: error: option
--NAME: ...`` with exit status 2, a missing optional package included (it names the package and
``pip install 'ssdboard[export]'``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ssd.checkpoint import CONFIG_FILE, weights_path
from ssd.cli.common import CliError, add_weights_argument, describe_weights

FORMATS = ("savedmodel", "onnx", "tflite")  # ssd.export.FORMATS, without importing TensorFlow for --help


def cmd_export(args: argparse.Namespace) -> int:
    checkpoint, out = Path(args.checkpoint), Path(args.out)
    # Checked before TensorFlow loads (seconds): the config and the weights --weights picks.
    for path in (checkpoint / CONFIG_FILE, weights_path(checkpoint, args.weights)):
        if not path.is_file():
            raise CliError(f"option --checkpoint: {path} not found (a training output directory?)")
    if out.is_dir() and (args.format != "savedmodel" or any(out.iterdir())):
        what = "a directory that is not empty" if args.format == "savedmodel" else "a directory, not a file"
        raise CliError(f"option --out: {out} is {what}")

    from ssd.export import MissingPackageError, export

    print(describe_weights(checkpoint, weights_path(checkpoint, args.weights)), file=sys.stderr)
    started = time.perf_counter()
    try:
        export(checkpoint, args.format, out, weights=args.weights)
    except MissingPackageError as exc:
        raise CliError(f"option --format: {exc}") from exc
    except (FileNotFoundError, ValueError) as exc:  # an unreadable config or weights file
        raise CliError(f"option --checkpoint: {exc}") from exc
    print(f"wrote {args.format} export of {checkpoint} to {out} in {time.perf_counter() - started:.1f} s")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``export`` to the ``ssdboard`` subparsers."""
    p = sub.add_parser("export", help="write a checkpoint as a SavedModel, ONNX or TFLite model")
    p.add_argument("--checkpoint", required=True, help="a training output directory")
    p.add_argument("--format", required=True, choices=FORMATS, help="savedmodel (a directory), onnx or tflite (a file)")
    p.add_argument("--out", required=True, help="the SavedModel directory (new or empty) or the model file")
    add_weights_argument(p)
    p.set_defaults(func=cmd_export)
