"""The records of a dataset: what readers find (raw) and what validation keeps (the index).

Readers (:mod:`ssd.datasets.coco`, ``voc``, ``yolo``) turn annotation files into a
:class:`RawDataset`: image files with the boxes as written (coordinates possibly strings, NaN,
out of the image; classes as indices or names). :func:`ssd.datasets.validate.validate` turns that
into a :class:`DatasetIndex` of :class:`ImageRecord` — boxes float32 pixel ``xyxy`` inside the
image, labels int32 indices into ``classes`` — and the :class:`~ssd.datasets.report.Report`.

The index is what training, evaluation and the pages read: one JSON file (``index.json``) in the
dataset's directory, image paths relative to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ssd.datasets.report import Report
from ssd.datasets.text import MAX_CLASS_NAME, MAX_PATH, name_fault, quote, shown

Format = Literal["coco", "voc", "yolo"]
FORMATS: tuple[Format, ...] = ("coco", "voc", "yolo")
Split = Literal["train", "val"]
# How a reader's four values describe a box: pixel corners (VOC), pixel corner + size (COCO),
# or centre + size as fractions of the image (YOLO).
BoxFormat = Literal["xyxy", "xywh", "cxcywh_normalized"]


class DatasetError(ValueError):
    """A dataset that cannot be imported at all (bad JSON or XML, an unsafe zip, no annotations
    found, ...); ``file`` names the file at fault, relative to what the user gave.

    Both are :func:`~ssd.datasets.text.shown`: escaped and bounded here, once for every reader,
    since they quote what the dataset wrote and travel to the API, the pages and the terminal.
    """

    def __init__(self, file: str, message: str) -> None:
        file, message = shown(file, MAX_PATH), shown(message)
        super().__init__(f"{file}: {message}")
        self.file = file
        self.message = message


@dataclass(frozen=True)
class RawBox:
    """A box as an annotation file writes it.

    ``values`` holds what was read (numbers, or strings a reader could not parse, or fewer than
    four values); ``label`` a class index into the dataset's class list, a class name, or None
    when the reader found a class reference that names nothing (e.g. a COCO category id that is
    not among the categories: ``label_text`` then says what was written).
    """

    values: tuple[Any, ...]
    label: int | str | None
    source: str
    crowd: bool = False
    difficult: bool = False
    label_text: str = ""


@dataclass
class RawImage:
    """An image file as an annotation names it, with its boxes.

    ``file`` is relative to the dataset root; ``width``/``height`` the size the annotation
    declares (None where the format declares none, as YOLO); ``split`` the split the dataset
    assigns (None: decided at import).
    """

    file: str
    source: str
    box_format: BoxFormat
    boxes: list[RawBox] = field(default_factory=list)
    width: Any = None
    height: Any = None
    split: Split | None = None


@dataclass
class RawDataset:
    """A reader's result: the class names in class-index order, the images, and the problems the
    reader itself met (an annotation naming no image, ...) already in ``report``.

    ``classes_from`` is the file the class list comes from (a data.yaml, a labels.txt), when one
    does. The class names are checked here, as every reader hands them over and before any image
    is decoded: a name a dataset writes follows the rule of names given to the API
    (:func:`~ssd.datasets.text.name_fault`, at most :data:`~ssd.datasets.text.MAX_CLASS_NAME`
    characters, not blank), else DatasetError naming the file that writes it.
    """

    format: Format
    root: Path
    classes: list[str]
    images: list[RawImage]
    report: Report = field(default_factory=Report)
    classes_from: str = ""

    def __post_init__(self) -> None:
        for k, name in enumerate(self.classes):
            fault = name_fault(name)
            why = f"holds {fault}" if fault else "is blank" if not name.strip() else ""
            if not why and len(name) > MAX_CLASS_NAME:
                why = f"is {len(name)} characters long"
            if why:
                raise DatasetError(
                    self._class_source(k),
                    f"class {k} {quote(name)} {why}: a class name has 1 to {MAX_CLASS_NAME} characters and no"
                    " control character, bidirectional control or lone surrogate",
                )

    def _class_source(self, k: int) -> str:
        """The file that names class ``k``: ``classes_from``, else the first annotation that
        labels a box with it, else the first annotation file."""
        if self.classes_from:
            return self.classes_from
        labels = (k, self.classes[k])
        found = (box.source for image in self.images for box in image.boxes if box.label in labels)
        return next(found, self.images[0].source if self.images else self.root.name)


@dataclass
class ImageRecord:
    """One kept image: file (relative to the dataset directory), size, split, boxes.

    ``boxes`` float32 [K, 4] pixel ``xyxy`` within ``[0, width] x [0, height]``, each with
    positive width and height; ``labels`` int32 [K]; ``ignore`` float32 [M, 4] crowd and difficult
    regions, which the evaluation neither rewards nor punishes, with their classes
    ``ignore_labels`` int32 [M].
    """

    file: str
    width: int
    height: int
    split: Split
    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray
    ignore_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, coordinates rounded to 1/100 px."""
        return {
            "file": self.file,
            "width": self.width,
            "height": self.height,
            "split": self.split,
            "boxes": np.round(self.boxes.astype(np.float64), 2).tolist(),
            "labels": self.labels.tolist(),
            "ignore": np.round(self.ignore.astype(np.float64), 2).tolist(),
            "ignore_labels": self.ignore_labels.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        """Read back :meth:`to_dict`."""
        return cls(
            file=data["file"],
            width=int(data["width"]),
            height=int(data["height"]),
            split=data["split"],
            boxes=np.asarray(data["boxes"], np.float32).reshape(-1, 4),
            labels=np.asarray(data["labels"], np.int32).reshape(-1),
            ignore=np.asarray(data.get("ignore", []), np.float32).reshape(-1, 4),
            ignore_labels=np.asarray(data.get("ignore_labels", []), np.int32).reshape(-1),
        )


@dataclass
class DatasetIndex:
    """A validated dataset: class names (index order), kept images, and where it came from."""

    name: str
    format: Format | Literal["generator"]
    classes: list[str]
    images: list[ImageRecord]

    def split(self, split: Split) -> list[ImageRecord]:
        """The images of one split, in index order."""
        return [image for image in self.images if image.split == split]

    def counts(self) -> dict[str, Any]:
        """Images, boxes and per-split image counts."""
        return {
            "images": len(self.images),
            "boxes": int(sum(len(image.labels) for image in self.images)),
            "splits": {s: sum(image.split == s for image in self.images) for s in ("train", "val")},
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "format": self.format,
            "classes": list(self.classes),
            "images": [image.to_dict() for image in self.images],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetIndex:
        """Read back :meth:`to_dict` (class names shown escaped: an index written before the name
        rule may hold a lone surrogate, which no answer could encode)."""
        return cls(
            name=data["name"],
            format=data["format"],
            classes=[shown(name, MAX_CLASS_NAME) for name in data["classes"]],
            images=[ImageRecord.from_dict(image) for image in data["images"]],
        )

    def save(self, path: Path) -> None:
        """Write ``path`` (JSON)."""
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")))

    @classmethod
    def load(cls, path: Path) -> DatasetIndex:
        """Read an index written by :meth:`save`."""
        return cls.from_dict(json.loads(path.read_text()))
