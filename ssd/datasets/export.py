"""Write a dataset to disk as COCO, Pascal VOC or YOLO: a registered one or the built-in generator.

Layouts (``out`` is created; ``{split}`` is ``train`` and ``val``):

- **COCO**: ``annotations/instances_{split}.json`` + ``images/{split}/NAME.png``. ``file_name``
  is the image's name inside ``images/{split}/``; categories have ids 1..C in class order;
  ``bbox`` is ``[x, y, w, h]`` in pixels; ignore regions are ``iscrowd: 1`` annotations of their class.
- **VOC**: ``Annotations/NAME.xml``, ``JPEGImages/NAME.png`` (or the image's own suffix),
  ``ImageSets/Main/{split}.txt`` (one name a line) and ``labels.txt`` (the class names in class
  order). Boxes are written 1-based, as VOC's tools expect: ``xmin = x1 + 1``, ``ymin = y1 + 1``,
  ``xmax = x2``, ``ymax = y2`` for the pixel ``xyxy`` box ``[x1, y1, x2, y2]`` (a reader converts
  back with ``xmin - 1, ymin - 1, xmax, ymax``). Ignore regions are ``difficult`` objects of their class.
- **YOLO**: ``data.yaml`` (``path``, ``train``, ``val``, ``nc``, ``names`` in class order),
  ``images/{split}/NAME.png``, ``labels/{split}/NAME.txt`` with one ``cls cx cy w h`` row a box,
  the centre and size as fractions of the image (8 decimals). YOLO has no ignore regions: they
  are left out. A background image has an empty label file.

Coordinates keep 1e-4 px (COCO, VOC) or 1e-8 of the image side (YOLO), so export then import
gives back every box within 0.01 px. ``NAME`` is the image's file stem, made unique over the
whole dataset (VOC keeps every split in one folder). Everything is written into a temporary
sibling of ``out`` and renamed into place at the end: a failed export leaves nothing.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np

from ssd.datasets.records import FORMATS, DatasetIndex, Format, ImageRecord, Split

Progress = Callable[[int, int, str], None]
"""``progress(done, total, stage)``: ``done`` of ``total`` items of ``stage`` are finished."""

SPLITS: tuple[Split, ...] = ("train", "val")
_THREADS = min(4, os.cpu_count() or 1)
MNIST_CLASSES = [str(d) for d in range(10)]


@dataclass
class Item:
    """One image to write: boxes float [K, 4] pixel ``xyxy``, labels int [K] class indices,
    ``ignore`` float [M, 4] pixel ``xyxy`` regions with their classes ``ignore_labels`` int [M]
    (class 0 where unknown); ``save(path)`` writes the image file there."""

    name: str
    suffix: str
    split: Split
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray
    ignore_labels: np.ndarray
    save: Callable[[Path], None]


def number(value: float) -> str:
    """A coordinate as text: an integer without a point, else up to 4 decimals (``12``, ``12.5``)."""
    rounded = round(float(value), 4)
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


class _Writer:
    """Writes items of one format under ``root``; :meth:`close` writes the per-dataset files."""

    def __init__(self, root: Path, classes: list[str]) -> None:
        self.root = root
        self.classes = classes

    def add(self, item: Item) -> Path:  # pragma: no cover - abstract
        """Write the item's annotation; returns where its image file goes."""
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _Coco(_Writer):
    def __init__(self, root: Path, classes: list[str]) -> None:
        super().__init__(root, classes)
        self.images: dict[Split, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self.annotations: dict[Split, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self.next_image = self.next_box = 1
        for split in SPLITS:
            (root / "images" / split).mkdir(parents=True)
        (root / "annotations").mkdir()

    def add(self, item: Item) -> Path:
        file = item.name + item.suffix
        image_id = self.next_image
        self.next_image += 1
        self.images[item.split].append({"id": image_id, "file_name": file, "width": item.width, "height": item.height})
        regions = [(b, int(c), 0) for b, c in zip(item.boxes, item.labels, strict=True)]
        regions += [(b, int(c), 1) for b, c in zip(item.ignore, item.ignore_labels, strict=True)]
        for box, label, crowd in regions:
            x1, y1, x2, y2 = (float(v) for v in box)
            w, h = x2 - x1, y2 - y1
            self.annotations[item.split].append(
                {
                    "id": self.next_box,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": [round(x1, 4), round(y1, 4), round(w, 4), round(h, 4)],
                    "area": round(w * h, 4),
                    "iscrowd": crowd,
                }
            )
            self.next_box += 1
        return self.root / "images" / item.split / file

    def close(self) -> None:
        categories = [{"id": k + 1, "name": name, "supercategory": ""} for k, name in enumerate(self.classes)]
        for split in SPLITS:
            document = {
                "info": {"description": "written by ssdboard"},
                "images": self.images[split],
                "annotations": self.annotations[split],
                "categories": categories,
            }
            (self.root / "annotations" / f"instances_{split}.json").write_text(json.dumps(document))


class _Voc(_Writer):
    def __init__(self, root: Path, classes: list[str]) -> None:
        super().__init__(root, classes)
        self.names: dict[Split, list[str]] = {s: [] for s in SPLITS}
        for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (root / folder).mkdir(parents=True)

    def add(self, item: Item) -> Path:
        file = item.name + item.suffix
        self.names[item.split].append(item.name)
        annotation = ET.Element("annotation")
        ET.SubElement(annotation, "folder").text = "JPEGImages"
        ET.SubElement(annotation, "filename").text = file
        size = ET.SubElement(annotation, "size")
        for tag, value in (("width", item.width), ("height", item.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        ET.SubElement(annotation, "segmented").text = "0"
        objects = [(b, self.classes[int(c)], 0) for b, c in zip(item.boxes, item.labels, strict=True)]
        objects += [(b, self.classes[int(c)], 1) for b, c in zip(item.ignore, item.ignore_labels, strict=True)]
        for box, name, difficult in objects:
            obj = ET.SubElement(annotation, "object")
            ET.SubElement(obj, "name").text = name
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = str(difficult)
            bndbox = ET.SubElement(obj, "bndbox")
            x1, y1, x2, y2 = (float(v) for v in box)
            for tag, coordinate in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
                ET.SubElement(bndbox, tag).text = number(coordinate)
        ET.indent(annotation)
        ET.ElementTree(annotation).write(self.root / "Annotations" / f"{item.name}.xml", encoding="utf-8")
        return self.root / "JPEGImages" / file

    def close(self) -> None:
        for split in SPLITS:
            lines = "".join(f"{name}\n" for name in self.names[split])
            (self.root / "ImageSets" / "Main" / f"{split}.txt").write_text(lines)
        (self.root / "labels.txt").write_text("".join(f"{name}\n" for name in self.classes))


class _Yolo(_Writer):
    def __init__(self, root: Path, classes: list[str]) -> None:
        super().__init__(root, classes)
        for folder in ("images", "labels"):
            for split in SPLITS:
                (root / folder / split).mkdir(parents=True)

    def add(self, item: Item) -> Path:
        rows = []
        for box, label in zip(item.boxes, item.labels, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            cx, cy = (x1 + x2) / 2 / item.width, (y1 + y2) / 2 / item.height
            w, h = (x2 - x1) / item.width, (y2 - y1) / item.height
            rows.append(f"{int(label)} {cx:.8f} {cy:.8f} {w:.8f} {h:.8f}\n")
        (self.root / "labels" / item.split / f"{item.name}.txt").write_text("".join(rows))
        return self.root / "images" / item.split / (item.name + item.suffix)

    def close(self) -> None:
        names = ", ".join(json.dumps(name) for name in self.classes)  # JSON strings are YAML scalars
        text = f"path: .\ntrain: images/train\nval: images/val\nnc: {len(self.classes)}\nnames: [{names}]\n"
        (self.root / "data.yaml").write_text(text)


WRITERS: dict[str, type[_Writer]] = {"coco": _Coco, "voc": _Voc, "yolo": _Yolo}


def write_items(
    out: Path, fmt: Format, classes: list[str], items: Iterator[Item], total: int, progress: Progress | None = None
) -> Path:
    """Write ``total`` items as ``fmt`` into the new directory ``out`` (absent or empty), atomically.

    Raises ValueError for an unknown format or an ``out`` that holds files.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        writer = WRITERS[fmt](tmp, classes)
        # Images are encoded or copied in a thread pool (zlib and file I/O release the GIL) while
        # this thread makes the next items; at most 4 per thread wait, holding their pixels.
        pending: deque[Future[None]] = deque()
        done = 0
        with ThreadPoolExecutor(_THREADS) as pool:
            for item in items:
                pending.append(pool.submit(item.save, writer.add(item)))
                while pending and (len(pending) > 4 * _THREADS or pending[0].done()):
                    pending.popleft().result()
                    done += 1
                    if progress is not None:
                        progress(done, total, "export")
            while pending:
                pending.popleft().result()
                done += 1
                if progress is not None:
                    progress(done, total, "export")
        writer.close()
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def unique_stems(files: list[str]) -> list[str]:
    """A file-system-safe stem per file, unique over the list (``a/x.png``, ``b/x.png`` -> ``x``, ``x_1``)."""
    taken: set[str] = set()
    stems = []
    for file in files:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file).stem).strip("._") or "image"
        candidate, k = stem, 1
        while candidate.lower() in taken:
            candidate, k = f"{stem}_{k}", k + 1
        taken.add(candidate.lower())
        stems.append(candidate)
    return stems


def pick(records: list[ImageRecord], limit: int | None) -> list[ImageRecord]:
    """At most ``limit`` records, each split keeping its share (the first ones of each, index order)."""
    if limit is None or limit >= len(records):
        return list(records)
    by_split = {s: [r for r in records if r.split == s] for s in SPLITS}
    val = min(len(by_split["val"]), round(limit * len(by_split["val"]) / len(records)))
    if by_split["val"] and limit >= 2:
        val = max(val, 1)
    chosen = {id(r) for r in by_split["val"][:val] + by_split["train"][: limit - val]}
    return [r for r in records if id(r) in chosen]


def export_index(
    index: DatasetIndex,
    root: Path,
    out: Path,
    fmt: Format,
    *,
    images: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write a validated dataset (image files under ``root``, ``record.file`` relative to it) as ``fmt``.

    ``images`` keeps at most that many, each split its share. Image files are copied as they are.
    """
    records = pick(index.images, images)

    def items() -> Iterator[Item]:
        for record, stem in zip(records, unique_stems([r.file for r in records]), strict=True):
            source = root / record.file

            def save(path: Path, source: Path = source) -> None:
                shutil.copyfile(source, path)

            yield Item(
                stem,
                source.suffix.lower() or ".png",
                record.split,
                record.width,
                record.height,
                record.boxes,
                record.labels,
                record.ignore,
                _ignore_labels(record),
                save,
            )

    return write_items(out, fmt, list(index.classes), items(), len(records), progress)


def _ignore_labels(record: ImageRecord) -> np.ndarray:
    """int [M]: the classes of a record's ignore regions (0 for an index written without them)."""
    labels = getattr(record, "ignore_labels", None)
    if labels is None or len(labels) != len(record.ignore):
        return np.zeros(len(record.ignore), np.int32)
    return np.asarray(labels, np.int32)


def split_counts(images: int, val_fraction: float) -> tuple[int, int]:
    """``(train, val)`` image counts: ``val = round(images * val_fraction)``, at least 1 when the
    fraction is positive and there are 2 images or more, and always leaving one training image."""
    if images < 1:
        raise ValueError(f"images must be >= 1, got {images}")
    if not 0.0 <= val_fraction < 1.0 or math.isnan(val_fraction):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    val = round(images * val_fraction)
    if val_fraction > 0 and images >= 2:
        val = max(val, 1)
    val = min(val, images - 1)
    return images - val, val


def generator_items(
    images: int, val_fraction: float = 0.1, *, seed: int = 0, image_size: int | None = None
) -> tuple[list[str], Iterator[Item], int]:
    """The built-in MNIST-detection generator as items: ``(classes "0".."9", items, count)``.

    Training images come from the generator's ``train`` split (digit pool and ``seed`` of the
    default config), validation images from its ``val`` split, as training sees them.
    """
    from dataclasses import replace

    from PIL import Image

    from ssd.config import from_dict
    from ssd.data import for_config

    train, val = split_counts(images, val_fraction)
    config = from_dict({"seed": seed})
    if image_size is not None:
        config = replace(config, data=replace(config.data, image_size=image_size))
    width = len(str(max(train, val)))

    def items() -> Iterator[Item]:
        plan: tuple[tuple[Split, int], ...] = (("train", train), ("val", val))
        for split, count in plan:
            generator = for_config(config, split)
            for i in range(count):
                sample = generator[i]
                height, side = sample.image.shape[:2]

                def save(path: Path, pixels: np.ndarray = sample.image) -> None:
                    Image.fromarray(pixels).save(path, compress_level=1)

                yield Item(
                    f"{split}_{i:0{width}d}",
                    ".png",
                    split,
                    side,
                    height,
                    sample.boxes,
                    sample.labels,
                    np.zeros((0, 4), np.float32),
                    np.zeros(0, np.int32),
                    save,
                )

    return list(MNIST_CLASSES), items(), images


def export_generator(
    out: Path,
    fmt: Format,
    *,
    images: int = 1000,
    val_fraction: float = 0.1,
    seed: int = 0,
    image_size: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write ``images`` generated MNIST-detection images (classes ``"0"``..``"9"``) as ``fmt``."""
    classes, items, total = generator_items(images, val_fraction, seed=seed, image_size=image_size)
    return write_items(out, fmt, classes, items, total, progress)
