"""Read COCO instances JSON: boxes only (``segmentation`` and RLE masks are ignored).

One file holds ``images`` (``id``, ``file_name``, optional ``width``/``height``),
``annotations`` (``image_id``, ``category_id``, ``bbox`` = ``[x, y, w, h]`` in pixels →
``box_format="xywh"``, optional ``iscrowd`` → crowd) and ``categories`` (``id``, ``name``).
Classes are the categories sorted by id; a box's label is the index of its category in that list.

Layouts (the path given is a ``.json`` file or a folder):

- ``instances.json`` (any name) with the images beside it or in ``images/``: Label Studio
  (``result.json`` + ``images/``), a single file.
- ``annotations/instances_train2017.json`` + ``train2017/`` (the COCO download) or
  ``images/train2017/`` (Ultralytics' copy, ssdboard's export ``images/{train,val}/``).
- ``annotations/instances_default.json`` + ``images/`` (CVAT).
- ``train/_annotations.coco.json`` + ``train/*.jpg``, ``valid/...``, ``test/...`` (Roboflow).
- ``train.json`` + ``val.json`` + ``images/``.

A folder's COCO files are the ``.json`` files in it and one folder down whose first MiB names
``images`` or ``annotations`` as a key (``categories`` alone is Label Studio's ``notes.json``
beside a YOLO export); when some are named ``instances_*``
(COCO's own ``annotations/`` also holds ``captions_*`` and ``person_keypoints_*``), only those.
Several files must each name a split (``train``, ``val``, ``valid``, ``test`` in the file name,
or else in the folder name; test counts as validation) and share the same categories.

An image's ``file_name`` is looked up, in order, in the JSON's folder ``D``, ``D/images/``,
``D/images/NAME/``, ``D/../images/``, ``D/../images/NAME/`` and ``D/../NAME/``, where ``NAME`` is
the JSON's stem without ``instances_`` (``train2017``); only folders inside the dataset root
count. The root is the folder given, or for a single ``.json`` its folder, or that folder's parent
when it is called ``annotations`` or has an ``images/`` sibling. An absolute ``file_name`` or one
with ``..`` is looked up by its last component. An image found nowhere keeps the first candidate
path and validation reports it missing.

Boxes pass as written (validation checks them). What validation cannot see is reported here: an
annotation whose ``image_id`` names no image (``malformed_annotation`` on the JSON file). A
category id that is no category becomes ``label=None`` with a ``label_text`` saying so.
Unreadable JSON, missing top-level keys, wrong types, duplicate category names or ids and
duplicate image ids raise DatasetError naming the file and the key.

A file is parsed one element at a time (:mod:`ssd.datasets.json_stream`): an annotation's
polygons are freed as soon as its box is taken, and the keys may come in any order (COCO's own
files put ``categories`` last). :class:`~ssd.datasets.limits.ImportLimits` refuses a file by its
size before parsing it, and the images and boxes as they are counted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssd.datasets.json_stream import JsonStream
from ssd.datasets.limits import ImportLimits
from ssd.datasets.paths import head, inside, nothing_found, relative, safe_relative, split_of
from ssd.datasets.records import DatasetError, RawBox, RawDataset, RawImage, Split
from ssd.datasets.report import Reason, Report

HEAD_BYTES = 1 << 20
_COCO_KEY = re.compile(r'"(images|annotations)"\s*:')
Categories = list[tuple[int, str]]


def looks_like_coco(path: Path) -> bool:
    """Whether a ``.json`` file's first MiB names ``images`` or ``annotations`` as a key (real COCO
    files run to hundreds of MB: detection reads no further; ``categories``, small, comes before
    them or after)."""
    return _COCO_KEY.search(head(path, HEAD_BYTES).decode("utf-8", errors="ignore")) is not None


def json_files(folder: Path) -> list[Path]:
    """The ``.json`` files of a dataset folder (in it and one folder down, not hidden), sorted."""
    candidates = sorted(folder.glob("*.json")) + sorted(
        p for p in folder.glob("*/*.json") if not any(part.startswith((".", "__")) for part in p.parts[-2:])
    )
    return [p for p in candidates if p.is_file()]


def find_coco_files(folder: Path) -> list[Path]:
    """The COCO JSON files of a dataset folder (in it and one folder down), sorted."""
    found = [p for p in json_files(folder) if looks_like_coco(p)]
    instances = [p for p in found if p.name.startswith("instances_")]
    return instances or found


def file_split(path: Path) -> Split | None:
    """The split a COCO file names: in its stem, else in its folder's name."""
    return split_of(path.stem) or split_of(path.parent.name)


def read_coco(
    path: Path, limits: ImportLimits | None = None, progress: Callable[[int, int], None] | None = None
) -> RawDataset:
    """Read a COCO ``.json`` file, or every COCO file of a folder (see the module's layouts).

    Each file is refused by its size before it is parsed, and the images and boxes of all files
    are counted against ``limits`` as they are read; ``progress(bytes read, bytes)`` follows the
    files' bytes."""
    path = Path(path)
    limits = limits if limits is not None else ImportLimits()
    if path.is_file():
        jdir = path.parent
        root = jdir.parent if jdir.name.lower() == "annotations" or (jdir.parent / "images").is_dir() else jdir
        files = [path]
    else:
        root = path
        files = find_coco_files(path)
        if not files:
            raise nothing_found(
                path, "no COCO instances JSON file (with images and annotations) in this folder or one folder down"
            )
    splits = [file_split(f) for f in files]
    if len(files) > 1 and None in splits:
        names = ", ".join(relative(f, root) for f in files)
        raise DatasetError(
            relative(files[splits.index(None)], root),
            f"several COCO files ({names}) and this one's name says no split (train, val, valid, test):"
            " import one file, or name each after its split",
        )
    for file in files:
        limits.check_file(file, relative(file, root))
    total = sum(f.stat().st_size for f in files)
    report = Report()
    first: tuple[str, Categories] | None = None
    images: list[RawImage] = []
    counts = _Counts(limits)
    for file, split in zip(files, splits, strict=True):
        name = relative(file, root)
        done = counts.bytes

        def tell(read: int, size: int, done: int = done) -> None:
            if progress is not None:
                progress(done + read, max(total, done + read))

        reader = _FileReader(file, name, root, split, counts)
        categories = reader.read(tell)
        if first is None:
            first = (name, categories)
        elif categories != first[1]:
            raise DatasetError(name, f"its categories differ from those of {first[0]}: every file needs the same")
        images += reader.resolve(report)
        counts.bytes += file.stat().st_size
    assert first is not None
    return RawDataset("coco", root, [n for _, n in first[1]], images, report)


class _Counts:
    """Images and boxes read so far over the files of one dataset, against the limits."""

    def __init__(self, limits: ImportLimits) -> None:
        self.limits = limits
        self.images = 0
        self.boxes = 0
        self.bytes = 0

    def add(self, name: str, *, images: int = 0, boxes: int = 0) -> None:
        self.images += images
        self.boxes += boxes
        self.limits.check_counts(name, images=self.images, boxes=self.boxes)


LISTS = ("images", "annotations", "categories")
# An annotation kept until the images and categories are known (COCO writes the categories last):
# its index, id, image_id, category_id (MISSING when absent), bbox values and crowd flag.
_Pending = tuple[int, Any, Any, Any, tuple[Any, ...], bool]
MISSING = object()


class _FileReader:
    """One COCO file, read element by element (:class:`~ssd.datasets.json_stream.JsonStream`):
    images as :class:`RawImage`, annotations as small tuples, categories as ``(id, name)``."""

    def __init__(self, file: Path, name: str, root: Path, split: Split | None, counts: _Counts) -> None:
        self.file, self.name, self.root, self.split, self.counts = file, name, root, split, counts
        self.dirs = _image_dirs(file, root)
        self.last_hit = 0
        self.by_id: dict[Any, RawImage] = {}
        self.pending: list[_Pending] = []
        self.categories: list[Any] = []
        self.pairs: Categories = []

    def read(self, progress: Callable[[int, int], None]) -> Categories:
        """Read the file; its categories as ``(id, name)`` sorted by id. DatasetError for bad JSON,
        a missing or wrong-typed key, and the limits."""
        handlers: dict[str, Callable[[int, Any], None]] = {
            "images": self._image,
            "annotations": self._annotation,
            "categories": lambda i, category: self.categories.append(category),
        }
        seen: set[str] = set()
        with JsonStream.open(self.file, self.name, progress) as stream:
            if not stream.start_object():
                kind = _kind(stream.value())
                raise DatasetError(self.name, f"the top level is a JSON {kind}, not an object with images/annotations")
            for key in stream.keys():
                if key not in handlers:
                    stream.value()
                    continue
                if key in seen:
                    raise DatasetError(self.name, f"the key {key!r} appears twice")
                seen.add(key)
                if not stream.at_list():
                    raise DatasetError(self.name, f"{key!r} is a JSON {_kind(stream.value())}, not a list")
                for i, element in enumerate(stream.elements()):
                    handlers[key](i, element)
            stream.end()
        for key in LISTS:
            if key not in seen:
                raise DatasetError(
                    self.name, f"no {key!r} key: a COCO instances file has images, annotations and categories"
                )
        self.pairs = _categories(self.categories, self.name)
        return self.pairs

    def _image(self, i: int, entry: Any) -> None:
        name = self.name
        image_id = _field(entry, "id", f"images[{i}]", name, (int, str))
        file_name = _field(entry, "file_name", f"images[{i}]", name, (str,))
        if image_id in self.by_id:
            raise DatasetError(name, f"images: the id {image_id!r} appears twice")
        self.counts.add(name, images=1)
        rel = safe_relative(file_name)
        dirs = self.dirs
        order = [self.last_hit, *(k for k in range(len(dirs)) if k != self.last_hit)]
        hit = next((k for k in order if (dirs[k] / rel).is_file()), None)
        self.last_hit = hit if hit is not None else self.last_hit
        where = dirs[hit if hit is not None else 0] / rel
        self.by_id[image_id] = RawImage(
            file=relative(where, self.root),
            source=name,
            box_format="xywh",
            width=entry.get("width"),
            height=entry.get("height"),
            split=self.split,
        )

    def _annotation(self, i: int, ann: Any) -> None:
        if not isinstance(ann, dict):
            raise DatasetError(self.name, f"annotations[{i}] is a JSON {_kind(ann)}, not an object")
        self.counts.add(self.name, boxes=1)
        bbox = ann.get("bbox")
        values: tuple[Any, ...] = tuple(bbox) if isinstance(bbox, list) else (() if bbox is None else (bbox,))
        crowd = ann.get("iscrowd") in (1, True, "1")
        self.pending.append((i, ann.get("id"), ann.get("image_id"), ann.get("category_id", MISSING), values, crowd))

    def resolve(self, report: Report) -> list[RawImage]:
        """The images with their boxes, once the whole file is read (the pending annotations are
        freed as they become boxes); an annotation naming no image is reported here."""
        index_of = {cid: k for k, (cid, _) in enumerate(self.pairs)}
        pending, self.pending = self.pending, []
        pending.reverse()
        while pending:
            i, ann_id, image_id, category, values, crowd = pending.pop()
            image = (
                self.by_id.get(image_id) if isinstance(image_id, int | str) and not isinstance(image_id, bool) else None
            )
            if image is None:
                detail = f"annotations[{i}] (id {ann_id!r}) names the image_id {image_id!r}, which no image has"
                report.add(Reason.malformed, self.name, box=list(values), detail=detail)
                continue
            label = index_of.get(category) if isinstance(category, int) and not isinstance(category, bool) else None
            text = ""
            if label is None:
                text = (
                    "no category_id" if category is MISSING else f"category id {category!r} is not among the categories"
                )
            image.boxes.append(RawBox(values, label, self.name, crowd=crowd, label_text=text))
        return list(self.by_id.values())


def unparseable_json(folder: Path, limits: ImportLimits | None = None) -> DatasetError | None:
    """The error of the first ``.json`` file of a dataset folder (as :func:`json_files` finds them,
    within the limit's size) that is not valid JSON, naming it with the line and column; None when
    all parse. Detection asks when it found no dataset: an unparseable COCO file is not recognised
    as one, and "no dataset found" would hide what is wrong with it."""
    limit = (limits if limits is not None else ImportLimits()).annotation_bytes
    for path in json_files(folder):
        if path.stat().st_size <= limit and (problem := json_problem(path, relative(path, folder))) is not None:
            return problem
    return None


def json_problem(path: Path, name: str) -> DatasetError | None:
    """Why the file at ``path`` is not valid JSON (the error naming ``name``, line and column), or
    None; reads it through without keeping its values."""
    try:
        with JsonStream.open(path, name) as stream:
            if stream.start_object():
                for _ in stream.keys():
                    if stream.at_list():
                        for _ in stream.elements():
                            pass
                    else:
                        stream.value()
            else:
                stream.value()
            stream.end()
    except DatasetError as error:
        return error
    return None


KINDS = {dict: "object", list: "list", str: "string", int: "integer", float: "number", bool: "boolean"}


def _kind(value: Any) -> str:
    return KINDS.get(type(value), type(value).__name__)


def _field(item: Any, key: str, where: str, name: str, types: tuple[type, ...]) -> Any:
    if not isinstance(item, dict):
        raise DatasetError(name, f"{where} is a JSON {_kind(item)}, not an object")
    if key not in item:
        raise DatasetError(name, f"{where} has no {key!r}")
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, types):
        wanted = " or ".join(f"{'an' if _kind(t())[0] in 'aeiou' else 'a'} {_kind(t())}" for t in types)
        raise DatasetError(name, f"{where}.{key} must be {wanted}, got {value!r}")
    return value


def _categories(categories: list[Any], name: str) -> Categories:
    """``(id, name)`` pairs sorted by id; DatasetError for duplicate ids or names."""
    pairs: Categories = []
    for i, category in enumerate(categories):
        pairs.append(
            (
                _field(category, "id", f"categories[{i}]", name, (int,)),
                _field(category, "name", f"categories[{i}]", name, (str,)),
            )
        )
    pairs.sort()
    seen_ids: dict[int, str] = {}
    seen_names: dict[str, int] = {}
    for cid, cname in pairs:
        if cid in seen_ids:
            raise DatasetError(name, f"categories: the id {cid} appears twice")
        if cname in seen_names:
            raise DatasetError(name, f"categories: the name {cname!r} is used by the ids {seen_names[cname]} and {cid}")
        seen_ids[cid], seen_names[cname] = cname, cid
    return pairs


def _image_dirs(file: Path, root: Path) -> list[Path]:
    """Where a COCO file's images may lie (see the module docstring), inside ``root``."""
    jdir = file.parent
    stem = file.stem.removeprefix("instances_")
    dirs = [jdir, jdir / "images", jdir / "images" / stem, jdir.parent / "images", jdir.parent / "images" / stem]
    dirs.append(jdir.parent / stem)
    unique: list[Path] = []
    for d in dirs:
        if inside(d, root) and d not in unique:
            unique.append(d)
    return unique
