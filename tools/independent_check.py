"""Score a checkpoint on images drawn by an independent reading of the data description.

The detector is scored elsewhere on images from another implementation of the notebook's
description (seed/NOTES.md), not from ``ssd.data``. This script writes such an implementation
from scratch (nearest-neighbour rescaling, boxes from the raw digit mask, its own placement
rule) so that over-fitting to quirks of ``ssd.data`` shows up before then. It goes through the
``ssdboard detect`` contract (an ``.npz`` in, a COCO results list out) and pycocotools.

    .venv/bin/python tools/independent_check.py --checkpoint runs/mnist [--images 300]

Placement modes: ``free`` (digits land anywhere, occluding each other), ``apart`` (digit
squares never overlap). Ink threshold: ``0`` (any non-zero pixel) or ``0.5``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ssd.data import load_digits


def draw(n: int, placement: str, ink: float, seed: int = 12345) -> tuple[np.ndarray, list[dict[str, object]]]:
    """``n`` images uint8 [n, 128, 128, 3] and their COCO annotations (bbox ``[x, y, w, h]``)."""
    rng = np.random.default_rng(seed)
    digits, labels = load_digits("val")  # digits the model never trained on
    images = np.zeros((n, 128, 128, 3), np.uint8)
    anns: list[dict[str, object]] = []
    for k in range(n):
        canvas = rng.uniform(0, 0.1, (128, 128, 3))
        placed: list[tuple[int, int, int]] = []
        for _ in range(int(rng.integers(2, 7))):
            i, side = int(rng.integers(len(digits))), int(28 * rng.uniform(0.8, 2.5))
            idx = np.minimum((np.arange(side) * 28 / side).astype(int), 27)
            digit = digits[i].astype(float)[idx][:, idx] / 255
            colour = rng.uniform(0.3, 0.7, 3)
            for _try in range(50):
                y, x = (int(v) for v in rng.integers(0, 128 - side + 1, 2))
                if placement == "free" or all(
                    x >= px + ps or px >= x + side or y >= py + ps or py >= y + side for px, py, ps in placed
                ):
                    break
            else:
                continue
            placed.append((x, y, side))
            region = canvas[y : y + side, x : x + side]
            np.maximum(region, digit[..., None] * colour, out=region)
            mask = digit > ink
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            box = [x + cols[0], y + rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1]
            anns.append({"image_id": k, "category_id": int(labels[i]), "bbox": [float(v) for v in box]})
        images[k] = np.round(canvas * 255).astype(np.uint8)
    return images, anns


def score(anns: list[dict[str, object]], results: list[dict[str, object]], n: int) -> tuple[float, float]:
    """COCO mAP@[.5:.95] and mAP@.5 of ``results`` against ``anns``."""
    for i, a in enumerate(anns):
        w, h = a["bbox"][2], a["bbox"][3]  # type: ignore[index]
        a.update(id=i + 1, area=w * h, iscrowd=0)
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i, "width": 128, "height": 128} for i in range(n)],
        "annotations": anns,
        "categories": [{"id": c, "name": str(c)} for c in range(10)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    ssdboard = Path(sys.executable).with_name("ssdboard")
    with tempfile.TemporaryDirectory() as tmp:
        for placement in ("apart", "free"):
            for ink in (0.0, 0.5):
                images, anns = draw(args.images, placement, ink)
                npz, out = Path(tmp) / "images.npz", Path(tmp) / "dets.json"
                np.savez(npz, images=images)
                cmd = [str(ssdboard), "detect", "--checkpoint", args.checkpoint]
                cmd += ["--images", str(npz), "--out", str(out)]
                subprocess.run(cmd, check=True, capture_output=True)
                m, m50 = score(anns, json.loads(out.read_text()), args.images)
                print(f"placement {placement:5}  ink > {ink:3}  mAP@[.5:.95] {m:.4f}  mAP@.5 {m50:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
