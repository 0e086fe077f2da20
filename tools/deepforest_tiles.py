"""Real aerial tree-crown data as a Pascal VOC dataset: DeepForest's sample tiles, cut into squares.

DeepForest (MIT licence, https://github.com/weecology/DeepForest) ships NEON airborne RGB images
(10 cm per pixel) with hand-drawn tree-crown boxes in Pascal VOC XML in its package data. This
script reads them from the installed package (``pip install --no-deps deepforest``: only its data
is used) and writes ``--tile`` px tiles with the boxes that fall in them:

    python tools/deepforest_tiles.py --out /tmp/trees [--tile 128] [--holdout sites|strips]

A box cut by a tile border is kept, clipped, when at least half of it lies inside, else left
out. Validation is spatial, so no tree is on both sides. ``--holdout sites`` (the default): every
tile of ``OSBS_029`` and ``SOAP_061`` (two NEON sites the training tiles never show) and the
tiles that reach into the right-most fifth of each larger image. ``--holdout strips``: those
right-most tiles of every image, the two small sites' included, so each site is seen in training
(held-out plots of seen sites). One class, ``Tree``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import defusedxml.ElementTree as ET
import numpy as np
from PIL import Image

SOURCES = (
    "2019_YELL_2_528000_4978000_image_crop2",
    "2019_YELL_2_541000_4977000_image_crop",
    "OSBS_029",
    "SOAP_061",
)
HELD_OUT_SITES = ("OSBS_029", "SOAP_061")


def data_dir() -> Path:
    """DeepForest's installed ``data`` folder."""
    spec = importlib.util.find_spec("deepforest")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("deepforest is not installed: pip install --no-deps deepforest")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def boxes_of(xml: Path) -> np.ndarray:
    """float [N, 4] pixel ``xyxy`` of a VOC file's objects (its corners as written)."""
    root = ET.parse(xml).getroot()
    out = [
        [float(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]  # type: ignore[union-attr]
        for o in root.iter("object")
    ]
    return np.asarray(out, np.float64).reshape(-1, 4)


def voc_xml(name: str, size: int, boxes: np.ndarray) -> str:
    """A VOC annotation (1-based corners, as VOC writes them)."""
    objects = "".join(
        "<object><name>Tree</name><difficult>0</difficult><bndbox>"
        f"<xmin>{x0 + 1:.1f}</xmin><ymin>{y0 + 1:.1f}</ymin><xmax>{x1:.1f}</xmax><ymax>{y1:.1f}</ymax>"
        "</bndbox></object>"
        for x0, y0, x1, y1 in boxes
    )
    return (
        f"<annotation><filename>{escape(name)}.png</filename><size><width>{size}</width>"
        f"<height>{size}</height><depth>3</depth></size>{objects}</annotation>"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--holdout", choices=("sites", "strips"), default="sites", help="what validation holds")
    args = parser.parse_args(argv)
    held_out_sites = HELD_OUT_SITES if args.holdout == "sites" else ()
    src, out, t = data_dir(), args.out, args.tile
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {"train": [], "val": []}
    kept = 0
    for stem in SOURCES:
        image = np.asarray(Image.open(src / f"{stem}.png").convert("RGB"))
        boxes = boxes_of(src / f"{stem}.xml")
        # The XML gives VOC's 1-based corners; to pixel xyxy as ssd.datasets.voc reads them.
        boxes[:, :2] -= 1
        height, width = image.shape[:2]
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        for top in range(0, height - t + 1, t):
            for left in range(0, width - t + 1, t):
                clipped = np.clip(boxes - [left, top, left, top], 0, t)
                inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
                mine = clipped[inside >= 0.5 * areas]
                name = f"{stem}_{top}_{left}"
                Image.fromarray(image[top : top + t, left : left + t]).save(out / "JPEGImages" / f"{name}.png")
                (out / "Annotations" / f"{name}.xml").write_text(voc_xml(name, t, mine))
                held_out = stem in held_out_sites or left + t > 0.8 * width
                splits["val" if held_out else "train"].append(name)
                kept += len(mine)
    for split, names in splits.items():
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    (out / "labels.txt").write_text("Tree\n")
    print(f"{out}: {len(splits['train'])} train and {len(splits['val'])} val tiles of {t} px, {kept} trees")
    return 0


if __name__ == "__main__":
    sys.exit(main())
