"""How much one import may read: the size of an annotation file, the images and the boxes.

An annotation file is parsed one element at a time (:mod:`ssd.datasets.json_stream`), but what
is kept grows with the images and boxes it lists: 500,000 boxes are about 0.2 GiB of records, and
the 16 GiB a zip may unpack to could list a hundred times more. The limits refuse a dataset as
early as possible — an annotation file by its size before a byte of it is parsed, images and
boxes as they are counted — with a message that names the limit and how to raise it (``names``:
the server's ``SSDBOARD_*`` setting, the command line's option).

The defaults admit COCO train2017 (a 448 MB JSON of 118,287 images and 860,001 boxes) with room
to spare, and all they admit fits the server's import process in its default 4 GiB of address
space (``SSDBOARD_IMPORT_MEMORY_GIB``): measured with ``benchmarks/import_memory.py``, train2017's
size took 1.04 GiB, and 500,000 images with 2,000,000 boxes 2.74 GiB (2.57 GiB resident).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ssd.datasets.records import DatasetError

DEFAULT_ANNOTATION_BYTES = 1 << 30
DEFAULT_IMAGES = 500_000
DEFAULT_BOXES = 2_000_000
# How the command line raises each limit; the server passes its settings' names instead.
CLI_NAMES: Mapping[str, str] = {
    "annotation_bytes": "--max-annotation-bytes",
    "images": "--max-images",
    "boxes": "--max-boxes",
}


def _error(file: str, message: str) -> DatasetError:
    # Imported here: the command line builds its parser (these defaults) without loading NumPy.
    from ssd.datasets.records import DatasetError

    return DatasetError(file, message)


def _bytes(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n} bytes ({n / (1 << shift):.3g} {unit})"
    return f"{n} bytes"


@dataclass(frozen=True)
class ImportLimits:
    """The most one import reads: bytes of one annotation file, images and boxes of the dataset.

    ``names`` maps a limit (``annotation_bytes``, ``images``, ``boxes``) to what raises it, quoted
    in the refusal; a limit without a name is quoted by its own name.
    """

    annotation_bytes: int = DEFAULT_ANNOTATION_BYTES
    images: int = DEFAULT_IMAGES
    boxes: int = DEFAULT_BOXES
    names: Mapping[str, str] = field(default_factory=lambda: dict(CLI_NAMES))

    def __post_init__(self) -> None:
        for key in ("annotation_bytes", "images", "boxes"):
            if getattr(self, key) < 1:
                raise ValueError(f"ImportLimits.{key} must be at least 1, got {getattr(self, key)}")

    def _name(self, key: str) -> str:
        return self.names.get(key, key)

    def check_file(self, path: Path, name: str) -> None:
        """DatasetError(``name``) when the annotation file at ``path`` is larger than the limit."""
        try:
            size = path.stat().st_size
        except OSError as error:
            raise _error(name, f"cannot be read: {error.strerror or error}") from None
        if size > self.annotation_bytes:
            raise _error(
                name,
                f"{_bytes(size)}, over the limit of {_bytes(self.annotation_bytes)} for one annotation file"
                f" ({self._name('annotation_bytes')}): refused before parsing",
            )

    def check_counts(self, name: str, *, images: int = 0, boxes: int = 0) -> None:
        """DatasetError(``name``) when ``images`` or ``boxes`` (counted so far) pass their limits."""
        if images > self.images:
            raise _error(
                name, f"more than {self.images} images, the limit of one import ({self._name('images')}): refused"
            )
        if boxes > self.boxes:
            raise _error(
                name, f"more than {self.boxes} boxes, the limit of one import ({self._name('boxes')}): refused"
            )
