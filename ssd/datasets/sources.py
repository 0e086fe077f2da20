"""Where a dataset comes from: a folder, a COCO JSON file, or a ``.zip`` of one; which format it
is; and reading it into a :class:`~ssd.datasets.records.RawDataset`.

``open_source`` unpacks a zip safely: every member is checked before anything is written (no
absolute paths, drive letters, backslashes, ``..`` components, symbolic links or encrypted
members), the sum of the sizes the archive declares must stay within ``max_unpacked_bytes``, and
the bytes actually written are counted too, so an archive whose headers lie cannot fill the disk.
``detect_format`` tells COCO, Pascal VOC and YOLO apart by their marker files; ``read`` runs the
matching reader (:mod:`ssd.datasets.coco`, :mod:`ssd.datasets.voc`, :mod:`ssd.datasets.yolo`).
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from ssd.datasets.coco import find_coco_files, read_coco, unparseable_json
from ssd.datasets.limits import ImportLimits
from ssd.datasets.paths import JUNK, nothing_found
from ssd.datasets.records import FORMATS, DatasetError, Format, RawDataset
from ssd.datasets.voc import read_voc
from ssd.datasets.voc_layout import find_xml_folders
from ssd.datasets.yolo import find_class_files, find_data_yaml, read_yolo

CHUNK = 1 << 20
# Folders that are part of a dataset's layout: a zip holding only one of them is not unwrapped.
LAYOUT_FOLDERS = frozenset({"annotations", "images", "labels", "jpegimages", "imagesets"})


def open_source(src: Path, workdir: Path, *, max_unpacked_bytes: int) -> Path:
    """The path the readers read for ``src``: a folder or a ``.json`` file as given, a zip unpacked
    into ``workdir`` (created; it must be absent or empty).

    Of an unpacked zip, the folder returned is ``workdir`` itself, or the single top-level folder
    the archive holds (repeatedly: ``VOCdevkit/VOC2007/`` gives ``VOC2007``, but never a layout
    folder such as ``images/``), or its single ``.json`` file. Raises DatasetError naming the
    zip (and the member at fault) for an unsafe, corrupt or oversized archive; nothing it wrote
    is left behind then.
    """
    src = Path(src)
    if src.is_dir():
        return src
    if not src.is_file():
        raise DatasetError(src.name, "no such file or folder")
    if src.suffix.lower() == ".json":
        return src
    if src.suffix.lower() == ".zip" or zipfile.is_zipfile(src):
        _extract(src, Path(workdir), max_unpacked_bytes)
        return _unwrap(Path(workdir))
    raise DatasetError(src.name, "expected a dataset folder, a COCO .json file or a .zip of one")


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be unpacked (absolute, climbing, a link, ...), or None."""
    name = info.filename
    if "\\" in name:
        return "has a backslash in its path (a Windows path trick)"
    if name.startswith("/"):
        return "has an absolute path"
    if re.match(r"^[A-Za-z]:", name):
        return "starts with a drive letter"
    if ".." in name.split("/"):
        return "climbs out of the archive with '..'"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def _extract(src: Path, dest: Path, limit: int) -> None:
    """Unpack ``src`` into ``dest`` after checking every member; counts the bytes written."""
    try:
        archive = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as error:
        raise DatasetError(src.name, f"not a readable zip archive ({error})") from None
    with archive:
        members = [m for m in archive.infolist() if m.filename.split("/")[0] not in JUNK]
        for member in members:
            problem = member_problem(member)
            if problem:
                raise DatasetError(src.name, f"member {member.filename!r} {problem}: refused, nothing unpacked")
        declared = sum(m.file_size for m in members)
        if declared > limit:
            biggest = max(members, key=lambda m: m.file_size)
            raise DatasetError(
                src.name,
                f"declares {declared} bytes unpacked (the largest member {biggest.filename!r}: {biggest.file_size}),"
                f" over the limit of {limit}: refused, nothing unpacked",
            )
        created = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True)
        if not created and any(dest.iterdir()):
            raise ValueError(f"{dest} must be absent or empty")
        try:
            _write_members(archive, members, src.name, dest, limit)
        except BaseException:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            else:
                for entry in dest.iterdir():
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            raise


def _write_members(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], name: str, dest: Path, limit: int) -> None:
    written = 0
    for member in members:
        parts = [p for p in member.filename.split("/") if p not in ("", ".")]
        if not parts:
            continue
        target = dest.joinpath(*parts)
        try:
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            size = 0
            with archive.open(member) as source, open(target, "wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    written += len(chunk)
                    if size > member.file_size or written > limit:
                        raise DatasetError(
                            name,
                            f"member {member.filename!r} unpacks to more than its header declares"
                            f" ({member.file_size} bytes) or past the limit of {limit}: refused",
                        )
                    out.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as error:
            raise DatasetError(name, f"member {member.filename!r} is corrupt or unsupported ({error})") from None
        except OSError as error:
            reason = error.strerror or error
            raise DatasetError(name, f"member {member.filename!r} cannot be unpacked ({reason})") from None


def _visible(folder: Path) -> list[Path]:
    return [e for e in folder.iterdir() if e.name not in JUNK and not e.name.startswith("._")]


def _unwrap(folder: Path) -> Path:
    entries = _visible(folder)
    if len(entries) == 1 and entries[0].is_file() and entries[0].suffix.lower() == ".json":
        return entries[0]
    while len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() not in LAYOUT_FOLDERS:
        folder = entries[0]
        entries = _visible(folder)
    return folder


def detect_format(path: Path) -> Format:
    """The format of the dataset at ``path`` (what :func:`open_source` returned).

    - COCO: a ``.json`` file, or a folder with COCO instances JSON files (``images`` or
      ``annotations`` among their keys) in it or one folder down (``annotations/instances_*.json``,
      Roboflow's ``train/_annotations.coco.json``); several must name their splits.
    - Pascal VOC: a folder of ``<annotation>`` XML files in the folder or up to three levels down
      (``Annotations/``, ``annotations/``, ``annots/``, beside the images: labelImg, Roboflow).
    - YOLO: a ``data.yaml`` / ``data.yml``, or one other ``*.yaml`` with ``names``; without one, a
      ``classes.txt`` (or ``obj.names``, ``_darknet.labels``) with YOLO label files (labelImg,
      Label Studio, Roboflow's darknet export).

    Raises DatasetError when none or more than one of these is found, saying what was looked for
    and, when none, what the folder holds.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise DatasetError(path.name, "not a COCO .json file: give a dataset folder, a .json or a .zip")
    found: list[tuple[Format, str]] = []
    coco_files = find_coco_files(path)
    if coco_files:
        found.append(("coco", _some(f.relative_to(path).as_posix() for f in coco_files)))
    xml_folders = find_xml_folders(path)
    if xml_folders:
        folders = (f.folder.relative_to(path).as_posix() for f in xml_folders)
        found.append(("voc", _some("*.xml" if f == "." else f"{f}/*.xml" for f in folders)))
    yolo_files = find_data_yaml(path) or find_class_files(path)
    if yolo_files:
        found.append(("yolo", _some(f.relative_to(path).as_posix() for f in yolo_files)))
    if len(found) == 1:
        return found[0][0]
    if not found and (problem := unparseable_json(path)) is not None:
        raise problem  # a COCO file that does not parse is not recognised as one: say why
    if not found:
        raise nothing_found(
            path,
            "no dataset found: looked for COCO instances JSON files (in the folder or one folder down, e.g."
            " annotations/instances_train.json, train/_annotations.coco.json), Pascal VOC Annotations/ .xml files"
            " (or any folder of <annotation> .xml files down to three levels: annotations/, annots/, beside the"
            " images),"
            " and a YOLO data.yaml (or another .yaml with names, or a classes.txt beside YOLO label files)",
        )
    kinds = "; ".join(f"{fmt.upper()} ({what})" for fmt, what in found)
    raise DatasetError(path.name or str(path), f"more than one format found: {kinds}; choose one with --format")


def _some(names: Iterable[str], shown: int = 3) -> str:
    """The first ``shown`` of ``names``, comma-separated, and how many more."""
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def read(
    path: Path,
    format: Format | Literal["auto"] = "auto",
    *,
    limits: ImportLimits | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RawDataset:
    """Read the dataset at ``path`` (a folder, or a COCO ``.json``) in ``format`` (``auto``:
    :func:`detect_format`) within ``limits``. Raises DatasetError for what cannot be imported at all.

    COCO files are refused by their size before parsing and counted as they are read (their
    bytes go to ``progress(done, total)``); VOC and YOLO, many small files, are counted once read.
    """
    path = Path(path)
    limits = limits if limits is not None else ImportLimits()
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise DatasetError(path.name, f"unknown format {format!r}: one of auto, {', '.join(FORMATS)}")
    if fmt == "coco":
        return read_coco(path, limits, progress)
    if not path.is_dir():
        raise DatasetError(path.name, f"a {fmt.upper()} dataset is a folder, not a file")
    raw = read_voc(path) if fmt == "voc" else read_yolo(path)
    limits.check_counts(path.name or str(path), images=len(raw.images), boxes=sum(len(i.boxes) for i in raw.images))
    return raw
