"""From a reader's raw records to a clean index: every image and box kept, noted or dropped.

Rules, in order, per image (:class:`~ssd.datasets.report.Reason` names in brackets):

0. Its file name follows the rule of names (:func:`ssd.datasets.text.name_fault`: no control
   character, bidirectional control, or lone surrogate — bytes that are not UTF-8) [bad_file_name]:
   every page, answer and terminal that shows the name could not, or would show another.
1. The file must exist [missing_image], have at most :data:`MAX_IMAGE_PIXELS` pixels by its
   header [too_large_image], decode completely with Pillow [unreadable_image] and be a JPEG, PNG
   or BMP [unsupported_image_type] (what the training pipeline's decoder reads); a declared
   width/height must equal the file's [size_mismatch]. A failing image is dropped with its boxes.
2. Per box: four finite numbers [malformed, not_numeric]; a known class [unknown_class];
   converted to pixel ``xyxy``; positive width and height as written [degenerate]; overlapping the
   image [outside_image]; clipped to the image when it reaches past the border [clipped, kept]; not
   an exact duplicate (same class, same clipped coordinates) of a box already kept [duplicate].
   Crowd and difficult boxes that pass become ignore regions [crowd, difficult].
3. An image left without boxes is kept as a background image [background].

One bad box never costs the other boxes of its image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ssd.datasets.records import DatasetIndex, ImageRecord, RawBox, RawDataset, RawImage, Split
from ssd.datasets.report import Reason, Report
from ssd.datasets.text import name_fault

SUPPORTED_TYPES = frozenset({"JPEG", "PNG", "BMP"})
# Pillow's own decompression-bomb bound (it warns above it, refuses above twice it): 89.5
# megapixels, about 9459 x 9459. Phone photos (50 MP: 8160 x 6144; 64 MP) pass; the probe's
# 12000 x 12000 PNGs of 17 KB each, whose every view decoded 432 MB of pixels, do not. A constant,
# not a setting: the training workers, the browser and the problem view all decode these files,
# and every one of them is bounded by it.
MAX_IMAGE_PIXELS = 89_478_485
BoxCheck = tuple[np.ndarray, Reason | None]


def read_image_size(path: Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int] | Reason:
    """``(width, height)`` of a fully decodable JPEG/PNG/BMP of at most ``max_pixels`` pixels, else
    the :class:`Reason` it fails with. The pixel count is read from the header, before decoding."""
    if not path.is_file():
        return Reason.missing_image
    try:
        with Image.open(path) as image:
            kind, size = image.format, image.size
            if size[0] * size[1] > max_pixels:
                return Reason.too_large_image
            image.load()  # decodes every pixel: a truncated file fails here, not in training
    except Image.DecompressionBombError:  # over twice Pillow's bound: refused by its header too
        return Reason.too_large_image
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return Reason.unreadable_image
    if kind not in SUPPORTED_TYPES:
        return Reason.unsupported_image_type
    return size


def _number(value: Any) -> float | None:
    """A finite float of a value as read (numbers or numeric strings), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def to_xyxy(values: Iterable[float], box_format: str, width: int, height: int) -> np.ndarray:
    """float64 [4] pixel ``xyxy`` of four numbers in ``box_format``."""
    a, b, c, d = values
    if box_format == "xywh":
        return np.array([a, b, a + c, b + d])
    if box_format == "cxcywh_normalized":
        return np.array([(a - c / 2) * width, (b - d / 2) * height, (a + c / 2) * width, (b + d / 2) * height])
    return np.array([a, b, c, d])


def label_of(box: RawBox, classes: list[str]) -> int | None:
    """The class index of a box's label (index or name), None when it names no class."""
    if isinstance(box.label, bool) or box.label is None:
        return None
    if isinstance(box.label, int):
        return box.label if 0 <= box.label < len(classes) else None
    return classes.index(box.label) if box.label in classes else None


def validate(
    raw: RawDataset,
    *,
    image_size: Callable[[Path], tuple[int, int] | Reason] = read_image_size,
    default_split: Split = "train",
) -> tuple[DatasetIndex, Report]:
    """The index of the images and boxes that pass, and the report (the reader's problems first).

    ``image_size`` reads an image file's size or says why it fails (tests pass a stub);
    ``default_split`` is given to images the dataset assigns none (the registry re-splits them).
    """
    report = raw.report
    kept: list[ImageRecord] = []
    for image in raw.images:
        fault = name_fault(image.file)
        if fault is not None:
            detail = f"the file name holds {fault}: {len(image.boxes)} boxes dropped with it"
            report.add(Reason.bad_file_name, image.source, image=image.file, detail=detail)
            continue
        record = _image(raw, image, report, image_size(raw.root / image.file), default_split)
        if record is not None:
            kept.append(record)
    report.images = len(kept)
    report.boxes = sum(len(r.labels) for r in kept)
    report.ignored = sum(len(r.ignore) for r in kept)
    return DatasetIndex(name=raw.root.name, format=raw.format, classes=list(raw.classes), images=kept), report


def _image(
    raw: RawDataset, image: RawImage, report: Report, size: tuple[int, int] | Reason, default_split: Split
) -> ImageRecord | None:
    if isinstance(size, Reason):
        where = image.file if size != Reason.missing_image else image.source
        report.add(size, where, image=image.file, detail=f"{len(image.boxes)} boxes dropped with it")
        return None
    width, height = size
    if image.width is not None or image.height is not None:
        declared = (_number(image.width), _number(image.height))
        if declared != (float(width), float(height)):
            report.add(
                Reason.size_mismatch,
                image.source,
                image=image.file,
                detail=f"annotation says {image.width}x{image.height}, the file is {width}x{height}",
            )
            return None
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    ignore: list[np.ndarray] = []
    ignore_labels: list[int] = []
    seen: set[tuple[int, tuple[float, ...]]] = set()
    for box in image.boxes:
        checked = _box(box, raw.classes, image, width, height, report)
        if checked is None:
            continue
        xyxy, label = checked
        if box.crowd or box.difficult:
            report.add(
                Reason.crowd if box.crowd else Reason.difficult, box.source, image=image.file, box=list(box.values)
            )
            ignore.append(xyxy)
            ignore_labels.append(label)
            continue
        key = (label, tuple(np.round(xyxy, 4).tolist()))
        if key in seen:
            report.add(Reason.duplicate, box.source, image=image.file, box=list(box.values))
            continue
        seen.add(key)
        boxes.append(xyxy)
        labels.append(label)
    if not boxes:
        report.add(Reason.background, image.source, image=image.file)
    return ImageRecord(
        file=image.file,
        width=width,
        height=height,
        split=image.split or default_split,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int32),
        ignore=np.asarray(ignore, np.float32).reshape(-1, 4),
        ignore_labels=np.asarray(ignore_labels, np.int32),
    )


def _box(
    box: RawBox, classes: list[str], image: RawImage, width: int, height: int, report: Report
) -> tuple[np.ndarray, int] | None:
    """The clipped pixel ``xyxy`` box and its class, or None after reporting why it is dropped."""

    def drop(reason: Reason, detail: str = "") -> None:
        report.add(reason, box.source, image=image.file, box=list(box.values), detail=detail)

    if len(box.values) != 4:
        drop(Reason.malformed, f"{len(box.values)} coordinates, not 4")
        return None
    numbers = [_number(v) for v in box.values]
    if any(n is None for n in numbers):
        drop(Reason.not_numeric)
        return None
    label = label_of(box, classes)
    if label is None:
        drop(Reason.unknown_class, box.label_text or f"class {box.label!r} is not one of {len(classes)} classes")
        return None
    xyxy = to_xyxy([n for n in numbers if n is not None], image.box_format, width, height)
    if xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
        drop(Reason.degenerate)
        return None
    clipped = np.clip(xyxy, 0.0, [width, height, width, height])
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        drop(Reason.outside_image)
        return None
    if not np.array_equal(clipped, xyxy):
        report.add(Reason.clipped, box.source, image=image.file, box=list(box.values))
    return clipped.astype(np.float32), label
