"""A sheet of augmented training samples with their boxes drawn, for a person to look at.

    python tools/augment_preview.py --dataset NAME [--data-dir DIR] [--count 24] [--out augment.png]
    python tools/augment_preview.py --out augment.png          # the generator exported on the fly

Each tile is one training sample exactly as the trainer sees it (SSD augmentation, then the
square resize): object boxes in their class colour, ignore regions dashed grey. With no
``--dataset`` it imports 60 images of the built-in generator into a temporary data dir first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ssd.config import from_dict
from ssd.datasets.export import export_generator
from ssd.datasets.loader import FileDataset
from ssd.datasets.registry import Registry
from ssd.datasets.resolve import apply_dataset, for_config

COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def tile(dataset: FileDataset, index: int, scale: int) -> Image.Image:
    """Sample ``index`` enlarged ``scale`` times, with its boxes and ignore regions drawn."""
    sample = dataset[index]
    regions, _ = dataset.ignore_regions(index)
    size = sample.image.shape[0] * scale
    image = Image.fromarray(sample.image).resize((size, size), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    for box, label in zip(sample.boxes * scale, sample.labels, strict=True):
        draw.rectangle(box.tolist(), outline=COLOURS[int(label) % len(COLOURS)], width=2)
    for box in regions * scale:
        draw.rectangle(box.tolist(), outline="#9ca3af", width=1)
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", help="an imported dataset's name or id (default: the generator, imported)")
    parser.add_argument("--data-dir", default=None, help="the data dir of --dataset")
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--out", default="augment.png")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else None
        name = args.dataset
        if name is None:
            data_dir = Path(tmp) / "data"
            export_generator(Path(tmp) / "export", "coco", images=60)
            name = Registry(data_dir).import_dataset(Path(tmp) / "export", name="digits")["name"]
        config = from_dict(apply_dataset({"data": {"dataset": name, "image_size": args.image_size}}, data_dir))
        dataset = for_config(config, "train", data_dir)
        assert isinstance(dataset, FileDataset)
        tiles = [tile(dataset, i, 2) for i in range(args.count)]
    columns = 6
    side = tiles[0].width
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (side + 4), rows * (side + 4)), "white")
    for k, t in enumerate(tiles):
        sheet.paste(t, ((k % columns) * (side + 4), (k // columns) * (side + 4)))
    sheet.save(args.out)
    print(f"{args.out}: {len(tiles)} samples of {name!r}, {np.round(side / 2)} px each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
