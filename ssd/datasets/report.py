"""What an import kept, dropped and changed, and why: the validation report of a dataset.

Every image and every box a reader finds ends in exactly one place: kept, kept with a note
(a clipped box, a crowd or difficult region kept as an ignore region, an image without boxes), or
dropped with a :class:`Reason`. The report counts each and lists every problem with its file, so
a dirty annotation is found before it turns a loss into NaN. NumPy-free, TensorFlow-free.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ssd.datasets.text import MAX_PATH, MAX_QUOTED, quote, shown


class Reason(StrEnum):
    """Why an image or a box was dropped, or what was noted about one that was kept."""

    # Images dropped (with all their boxes).
    missing_image = "missing_image"
    unreadable_image = "unreadable_image"
    unsupported_image_type = "unsupported_image_type"
    size_mismatch = "size_mismatch"
    bad_file_name = "bad_file_name"
    too_large_image = "too_large_image"
    # Boxes dropped (the other boxes of the image stay).
    outside_image = "outside_image"
    degenerate = "zero_or_negative_size"
    not_numeric = "not_numeric"
    malformed = "malformed_annotation"
    unknown_class = "unknown_class"
    duplicate = "duplicate"
    # Kept, with a note.
    clipped = "clipped"
    crowd = "crowd"
    difficult = "difficult"
    background = "background_image"


IMAGE_DROPS = (
    Reason.missing_image,
    Reason.unreadable_image,
    Reason.unsupported_image_type,
    Reason.size_mismatch,
    Reason.bad_file_name,
    Reason.too_large_image,
)
BOX_DROPS = (
    Reason.outside_image,
    Reason.degenerate,
    Reason.not_numeric,
    Reason.malformed,
    Reason.unknown_class,
    Reason.duplicate,
)
NOTES = (Reason.clipped, Reason.crowd, Reason.difficult, Reason.background)

DESCRIPTIONS: dict[Reason, str] = {
    Reason.missing_image: "the annotation names an image file that is not there: image dropped",
    Reason.unreadable_image: "the image file is corrupt, truncated or not an image: image dropped",
    Reason.unsupported_image_type: "an image type other than JPEG, PNG or BMP: image dropped",
    Reason.size_mismatch: "the image's pixel size differs from the annotation's width/height: image dropped",
    Reason.too_large_image: "the image has more than 89.5 megapixels (Pillow's decompression-bomb bound,"
    " about 9459 x 9459): image dropped",
    Reason.bad_file_name: "the image's file name holds a control character, a bidirectional control character"
    " or bytes that are not UTF-8: image dropped",
    Reason.outside_image: "the box lies entirely outside the image: box dropped",
    Reason.degenerate: "zero or negative width or height (xmin >= xmax or ymin >= ymax): box dropped",
    Reason.not_numeric: "a coordinate is NaN, infinite or not a number: box dropped",
    Reason.malformed: "the annotation lacks fields (e.g. a YOLO row without 5 values): box dropped",
    Reason.unknown_class: "a class id or name that is not in the class list: box dropped",
    Reason.duplicate: "an exact duplicate of another box of the same class in the image: box dropped",
    Reason.clipped: "the box reached past the image border: clipped to it and kept",
    Reason.crowd: "a COCO crowd region (iscrowd=1): kept as a region the loss and the evaluation ignore",
    Reason.difficult: "a VOC difficult object: kept as a region the loss and the evaluation ignore",
    Reason.background: "an image without boxes: kept as a background image",
}


MAX_BOX_VALUES = 8  # of a box as written, in a problem (four are a box; more are listed as a count)


def _box_values(box: list[Any]) -> list[Any]:
    """A box's values as written, bounded: numbers as they are, text shown, anything else quoted."""
    values = [
        v
        if v is None or isinstance(v, bool | float) or (isinstance(v, int) and v.bit_length() <= 64)
        else shown(v, MAX_QUOTED)
        if isinstance(v, str)
        else quote(v)
        for v in box[:MAX_BOX_VALUES]
    ]
    return values + [f"... ({len(box)} values)"] if len(box) > MAX_BOX_VALUES else values


@dataclass(frozen=True)
class Problem:
    """One image or box that was dropped or noted: which file, why, and where.

    ``file`` is the file that holds the fault (the annotation file, or the image file for image
    faults), relative to the dataset's root; ``image`` the image it concerns; ``box`` the box as
    written in the annotation (raw values), when the fault is a box's.
    """

    file: str
    reason: Reason
    image: str | None = None
    box: list[Any] | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        # The dataset wrote these: escaped and bounded here, where every problem is made (those
        # read back from a report.json of an older import included), so none can make an answer
        # unencodable or huge.
        object.__setattr__(self, "file", shown(self.file, MAX_PATH))
        object.__setattr__(self, "image", None if self.image is None else shown(self.image, MAX_PATH))
        object.__setattr__(self, "box", None if self.box is None else _box_values(self.box))
        object.__setattr__(self, "detail", shown(self.detail))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the contract's ``{"file", "reason"}`` plus ``image``, ``box``, ``detail``)."""
        return {
            "file": self.file,
            "reason": self.reason.value,
            "image": self.image,
            "box": self.box,
            "detail": self.detail,
        }


@dataclass
class Report:
    """Counts per reason and the list of problems of one import."""

    images: int = 0  # kept
    boxes: int = 0  # kept (ignore regions not included)
    ignored: int = 0  # crowd and difficult regions kept as ignore regions
    counts: Counter[Reason] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    def add(
        self, reason: Reason, file: str, *, image: str | None = None, box: list[Any] | None = None, detail: str = ""
    ) -> None:
        """Count one occurrence of ``reason`` and list it."""
        self.counts[reason] += 1
        self.problems.append(Problem(file, reason, image, box, detail))

    def dropped(self) -> dict[str, dict[str, int]]:
        """``{"images": {reason: n}, "boxes": {reason: n}}`` with every reason, zeros included."""
        return {
            "images": {r.value: self.counts[r] for r in IMAGE_DROPS},
            "boxes": {r.value: self.counts[r] for r in BOX_DROPS},
        }

    def notes(self) -> dict[str, int]:
        """Kept-with-a-note counts: clipped, crowd, difficult, background images."""
        return {r.value: self.counts[r] for r in NOTES}

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON (what ``datasets import --json`` prints, with the dataset's fields)."""
        return {
            "images": self.images,
            "boxes": self.boxes,
            "ignored_regions": self.ignored,
            "dropped": self.dropped(),
            "kept_with_notes": self.notes(),
            "problems": [p.to_dict() for p in self.problems],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Read back :meth:`to_dict`."""
        report = cls(images=data["images"], boxes=data["boxes"], ignored=data.get("ignored_regions", 0))
        for group in (*data["dropped"].values(), data.get("kept_with_notes", {})):
            for reason, n in group.items():
                report.counts[Reason(reason)] = n
        report.problems = [
            Problem(p["file"], Reason(p["reason"]), p.get("image"), p.get("box"), p.get("detail", ""))
            for p in data["problems"]
        ]
        return report
