"""A checkpoint's mAP@.5 on the validation split, whole and per source image of tiled data.

Tiles that ``tools/deepforest_tiles.py`` cuts are named ``<source>_<top>_<left>``; this groups the
validation tiles by ``<source>`` and scores each group with pycocotools as ``ssdboard evaluate``
scores the whole (the same detector, the same COCO evaluation), so a low mean can be traced to
the sites it comes from:

    python tools/ap_by_source.py --checkpoint runs/trees [--data-dir DATA] [--weights best|last]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ssd.cli.commands import load_detector
from ssd.data import Sample
from ssd.datasets.resolve import resolve
from ssd.evaluate import Samples, evaluate_model

TILE = re.compile(r"^(?P<source>.+)_\d+_\d+$")


def source_of(file: str) -> str:
    """``<source>`` of a tile file named ``<source>_<top>_<left>.<ext>`` (else the file's stem)."""
    stem = Path(file).stem
    found = TILE.match(stem)
    return found.group("source") if found else stem


class Subset:
    """Some images of a split, in the order given (what :func:`ssd.evaluate.evaluate_model` reads)."""

    def __init__(self, samples: Samples, ids: list[int]) -> None:
        self.samples, self.ids, self.image_size = samples, ids, samples.image_size

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[self.ids[index]]

    def ignore_regions(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.samples.ignore_regions(self.ids[index])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--weights", choices=("best", "last"), default="best")
    args = parser.parse_args(argv)
    detector = load_detector(args.checkpoint, args.weights)
    config = detector.config
    source = resolve(config, args.data_dir)
    samples = source.split(config, "val")
    records = [source.record("val", i) for i in range(source.size("val") or 0)]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        groups[source_of(record.file if record is not None else str(i))].append(i)
    print(f"{'validation tiles of':40s} {'tiles':>5s} {'boxes':>6s} {'AP@.5':>6s}")
    for name, ids in [("all", list(range(len(records)))), *sorted(groups.items())]:
        subset = Subset(samples, ids)
        result = evaluate_model(detector, subset, len(ids))
        boxes = sum(len(subset[i].boxes) for i in range(len(ids)))
        print(f"{name:40s} {len(ids):5d} {boxes:6d} {result.map50:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
