"""Natural photos as a Pascal VOC dataset: Dat Tran's raccoon set, with its own train/test split.

https://github.com/datitran/raccoon_dataset (MIT licence) holds 200 photos of raccoons from
Google and Pixabay, their VOC annotations in ``annotations/`` and the split its author trained
with in ``data/train_labels.csv`` and ``data/test_labels.csv`` (160 and 40 images). This script
lays a checkout of it out as VOC with that split in ``ImageSets/Main`` (``train.txt``, and the
test images as ``val.txt``), which ``ssdboard datasets import`` keeps:

    git clone https://github.com/datitran/raccoon_dataset /tmp/raccoon_dataset
    python tools/raccoon_voc.py /tmp/raccoon_dataset --out /tmp/raccoon
    ssdboard datasets import /tmp/raccoon --name raccoon
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path


def split_of(csv_path: Path) -> list[str]:
    """The image stems a split's CSV names (``filename`` column), sorted, each once."""
    with open(csv_path, newline="") as f:
        return sorted({Path(row["filename"]).stem for row in csv.DictReader(f)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of datitran/raccoon_dataset")
    parser.add_argument("--out", type=Path, required=True, help="the VOC folder to write")
    args = parser.parse_args(argv)
    src: Path = args.checkout
    if not (src / "annotations").is_dir() or not (src / "data" / "train_labels.csv").is_file():
        raise SystemExit(f"{src} is no checkout of datitran/raccoon_dataset (annotations/, data/*.csv)")
    out: Path = args.out
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for xml in sorted((src / "annotations").glob("*.xml")):
        shutil.copy2(xml, out / "Annotations" / xml.name)
    for jpg in sorted((src / "images").glob("*.jpg")):
        shutil.copy2(jpg, out / "JPEGImages" / jpg.name)
    train, val = split_of(src / "data" / "train_labels.csv"), split_of(src / "data" / "test_labels.csv")
    (out / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{s}\n" for s in train))
    (out / "ImageSets" / "Main" / "val.txt").write_text("".join(f"{s}\n" for s in val))
    print(f"{out}: {len(train)} train and {len(val)} val images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
