"""What every ``ssdboard`` command shares: the user error, the ``--data-dir`` help and ``--weights``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd.checkpoint import BEST_WEIGHTS_FILE, STATE_FILE, WEIGHTS_CHOICES, read_best


class CliError(Exception):
    """A user error: printed as ``ssdboard: error: ...`` with exit status 2."""


DATA_DIR_HELP = "where imported datasets live (default SSDBOARD_DATA_DIR or ./data)"
WEIGHTS_HELP = (
    "which weights of the checkpoint: best (the evaluation with the highest mAP@.5, "
    "best.weights.h5, where training kept one; else the last) or last (model.weights.h5); default best"
)


def add_weights_argument(parser: argparse.ArgumentParser) -> None:
    """``--weights best|last`` (default best)."""
    parser.add_argument("--weights", choices=WEIGHTS_CHOICES, default="best", help=WEIGHTS_HELP)


def describe_weights(directory: str | Path, path: Path | None) -> str:
    """What a command says it loaded: the file, its step and, for the best, its mAP@.5."""
    directory = Path(directory)
    if path is None:
        return "weights: unknown"
    if path.name == BEST_WEIGHTS_FILE:
        best = read_best(directory)
        if best is not None:
            return f"weights: best ({path.name}, step {best['step']}, mAP@.5 {best['map50']:.4f} in training)"
        return f"weights: best ({path.name})"
    step = ""
    try:
        import numpy as np

        with np.load(directory / STATE_FILE) as state:
            step = f", step {int(state['step'])}"
    except Exception:  # no state file (an exported checkpoint): the step is unknown
        pass
    return f"weights: last ({path.name}{step})"
