"""Path and text helpers the dataset readers share: confinement to the dataset folder, split names,
numbers as written.

Every path a reader hands on is relative to the dataset root and stays inside it: an annotation
that names ``../../etc/passwd`` or ``/home/someone/img.jpg`` is looked up by its file name only,
so an uploaded dataset can never make the importer read, or copy, a file outside its own folder.
Confinement is lexical (no symlink resolution), so a user's own folder may link its images in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from ssd.datasets.records import DatasetError, Split

# Ultralytics' IMG_FORMATS: what a detection dataset may hold. Validation keeps JPEG, PNG and BMP
# and reports the others (unsupported_image_type) instead of skipping them silently.
IMAGE_SUFFIXES = frozenset(
    {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic", ".gif"}
)
# Names a split goes by in file and folder names: instances_train2017, valid/, test.txt, ...
# The library has two splits: held-out images (val, valid, test) form the validation split.
_SPLIT_WORDS: dict[str, Split] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "val",
}


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` lies in ``root`` (or is it), compared lexically after making both absolute."""
    p, r = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string (``path`` inside ``root``)."""
    return PurePosixPath(os.path.relpath(os.path.normpath(os.path.abspath(path)), os.path.abspath(root))).as_posix()


def safe_relative(name: str) -> PurePosixPath:
    """A file name from an annotation as a relative path that cannot leave its folder.

    Backslashes count as separators (Windows tools write them); an absolute path, a drive letter
    or a ``..`` component leaves only the last component (the file's own name). An empty result
    is ``PurePosixPath(".")``.
    """
    text = name.replace("\\", "/").strip()
    drive = re.match(r"^[A-Za-z]:", text) is not None
    if drive:
        text = text[2:]
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if drive or text.startswith("/") or ".." in parts:
        parts = parts[-1:] if parts and parts[-1] != ".." else []
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def split_of(name: str) -> Split | None:
    """The split a file or folder name says (``instances_train2017`` → train, ``valid`` → val,
    ``test.json`` → val), or None when it names none or both."""
    words = {_SPLIT_WORDS[w] for w in re.split(r"[^a-z]+", name.lower()) if w in _SPLIT_WORDS}
    return words.pop() if len(words) == 1 else None


def number_or_text(text: str) -> float | str:
    """A coordinate as written: the float it spells (NaN and infinities included: validation
    reports them), else the text itself (validation reports it as not numeric)."""
    try:
        return float(text)
    except ValueError:
        return text


def read_text(path: Path, name: str) -> str:
    """A UTF-8 text file's contents (a BOM is dropped); DatasetError(``name``) when it is not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(name, f"not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise DatasetError(name, f"cannot be read: {error.strerror or error}") from None
