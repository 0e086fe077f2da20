"""Path and text helpers the dataset readers share: confinement to the dataset folder, split names,
folder walks and case-insensitive file look-up, numbers as written.

Every path a reader hands on is relative to the dataset root and stays inside it: an annotation
that names ``../../etc/passwd`` or ``/home/someone/img.jpg`` is looked up by its file name only,
so an uploaded dataset can never make the importer read, or copy, a file outside its own folder.
Confinement is lexical (no symlink resolution), so a user's own folder may link its images in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ssd.datasets.records import DatasetError, Split
from ssd.datasets.text import quote

# Ultralytics' IMG_FORMATS: what a detection dataset may hold. Validation keeps JPEG, PNG and BMP
# and reports the others (unsupported_image_type) instead of skipping them silently.
IMAGE_SUFFIXES = frozenset(
    {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic", ".gif"}
)
# What archivers and file browsers add beside the data: macOS resource forks, Finder/Explorer metadata.
JUNK = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
# How many entries of a folder an error message quotes, and how much of each name.
LISTED_ENTRIES = 8
QUOTED_CHARS = 40
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


def folder_split(parts: tuple[str, ...]) -> Split | None:
    """The split the first folder name of ``parts`` that names one says (``("images", "valid")`` →
    val), or None."""
    return next((split for part in parts if (split := split_of(part))), None)


def hidden(name: str) -> bool:
    """Whether a file or folder is no part of a dataset: hidden (``.git``, ``._a.jpg``) or junk."""
    return name.startswith(".") or name in JUNK


def walk(root: Path, max_depth: int) -> Iterator[tuple[Path, list[str]]]:
    """Each folder from ``root`` down to ``max_depth`` levels below it, breadth first and by name,
    with the sorted names of its files; hidden and junk entries are skipped, unreadable folders
    too."""
    level = [root]
    for depth in range(max_depth + 1):
        below: list[Path] = []
        for folder in level:
            files: list[str] = []
            folders: list[str] = []
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if not hidden(entry.name):
                            (folders if entry.is_dir() else files).append(entry.name)
            except OSError:
                continue
            yield folder, sorted(files)
            if depth < max_depth:
                below += [folder / name for name in sorted(folders)]
        level = below


def head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of a file (b"" when it cannot be read): what detection peeks at."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def nothing_found(folder: Path, what: str) -> DatasetError:
    """The error for a folder where a reader found nothing: ``what`` was looked for, then what the
    folder holds (:func:`describe_folder`)."""
    return DatasetError(folder.name or str(folder), f"{what}; {describe_folder(folder)}")


def describe_folder(folder: Path) -> str:
    """What a folder holds, for an error: its first ``LISTED_ENTRIES`` names by name (folders with
    a trailing ``/``) and how many more, or that it is empty."""
    try:
        with os.scandir(folder) as entries:
            names = sorted(e.name + ("/" if e.is_dir() else "") for e in entries if e.name not in JUNK)
    except OSError as error:
        return f"the folder cannot be listed ({error.strerror or error})"
    if not names:
        return "the folder is empty"
    shown = ", ".join(quote(name, QUOTED_CHARS) for name in names[:LISTED_ENTRIES])
    more = f" and {len(names) - LISTED_ENTRIES} more" if len(names) > LISTED_ENTRIES else ""
    return f"the folder holds {shown}{more}"


@dataclass
class _Listing:
    files: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    folded_files: dict[str, str] = field(default_factory=dict)
    folded_folders: dict[str, str] = field(default_factory=dict)


class FolderIndex:
    """Files and subfolders looked up by name, exactly or else ignoring case, each folder listed
    once (one ``os.scandir``): resolving thousands of annotations' image names costs dictionary
    look-ups, not a ``stat`` per candidate path. Of names that differ only in case, the first by
    name answers a case-insensitive look-up."""

    def __init__(self) -> None:
        self._listings: dict[Path, _Listing] = {}

    def _listing(self, folder: Path) -> _Listing:
        listing = self._listings.get(folder)
        if listing is None:
            listing = self._listings[folder] = _Listing()
            try:
                with os.scandir(folder) as entries:
                    for entry in sorted(entries, key=lambda e: e.name):
                        is_dir = entry.is_dir()
                        (listing.folders if is_dir else listing.files).add(entry.name)
                        folded = listing.folded_folders if is_dir else listing.folded_files
                        folded.setdefault(entry.name.casefold(), entry.name)
            except OSError:
                pass
        return listing

    def folder(self, parent: Path, name: str) -> Path | None:
        """The subfolder ``name`` of ``parent`` (its case as on disk), or None."""
        listing = self._listing(parent)
        found = name if name in listing.folders else listing.folded_folders.get(name.casefold())
        return parent / found if found is not None else None

    def file(self, folder: Path, rel: str) -> tuple[Path, str] | None:
        """The file ``rel`` (a relative POSIX path, each component matched exactly, else ignoring
        case) below ``folder``: the folder that holds it and its name there, or None."""
        *parents, name = rel.split("/")
        here: Path | None = folder
        for part in parents:
            here = self.folder(here, part) if here is not None else None
        if here is None or not name:
            return None
        listing = self._listing(here)
        found = name if name in listing.files else listing.folded_files.get(name.casefold())
        return (here, found) if found is not None else None


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
