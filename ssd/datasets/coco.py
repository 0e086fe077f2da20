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
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ssd.datasets.paths import head, inside, nothing_found, read_text, relative, safe_relative, split_of
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


def find_coco_files(folder: Path) -> list[Path]:
    """The COCO JSON files of a dataset folder (in it and one folder down), sorted."""
    candidates = sorted(folder.glob("*.json")) + sorted(
        p for p in folder.glob("*/*.json") if not any(part.startswith((".", "__")) for part in p.parts[-2:])
    )
    found = [p for p in candidates if p.is_file() and looks_like_coco(p)]
    instances = [p for p in found if p.name.startswith("instances_")]
    return instances or found


def file_split(path: Path) -> Split | None:
    """The split a COCO file names: in its stem, else in its folder's name."""
    return split_of(path.stem) or split_of(path.parent.name)


def read_coco(path: Path) -> RawDataset:
    """Read a COCO ``.json`` file, or every COCO file of a folder (see the module's layouts)."""
    path = Path(path)
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
    report = Report()
    first: tuple[str, Categories] | None = None
    images: list[RawImage] = []
    for file, split in zip(files, splits, strict=True):
        name = relative(file, root)
        data = load_json(file, name)
        categories = _categories(data, name)
        if first is None:
            first = (name, categories)
        elif categories != first[1]:
            raise DatasetError(name, f"its categories differ from those of {first[0]}: every file needs the same")
        images += _read_file(data, file, name, root, split, categories, report)
    assert first is not None
    return RawDataset("coco", root, [n for _, n in first[1]], images, report)


def load_json(path: Path, name: str) -> dict[str, Any]:
    """A COCO file's top-level object; DatasetError for bad JSON or missing/wrong-typed keys."""
    try:
        data = json.loads(read_text(path, name))
    except json.JSONDecodeError as error:
        raise DatasetError(name, f"not valid JSON: line {error.lineno} column {error.colno} ({error.msg})") from None
    except RecursionError:
        raise DatasetError(name, "not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise DatasetError(name, f"the top level is a JSON {_kind(data)}, not an object with images/annotations")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise DatasetError(name, f"no {key!r} key: a COCO instances file has images, annotations and categories")
        if not isinstance(data[key], list):
            raise DatasetError(name, f"{key!r} is a JSON {_kind(data[key])}, not a list")
    return data


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


def _categories(data: dict[str, Any], name: str) -> Categories:
    """``(id, name)`` pairs sorted by id; DatasetError for duplicate ids or names."""
    pairs: Categories = []
    for i, category in enumerate(data["categories"]):
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


def _read_file(
    data: dict[str, Any], file: Path, name: str, root: Path, split: Split | None, categories: Categories, report: Report
) -> list[RawImage]:
    dirs = _image_dirs(file, root)
    last_hit = 0
    by_id: dict[Any, RawImage] = {}
    for i, entry in enumerate(data["images"]):
        image_id = _field(entry, "id", f"images[{i}]", name, (int, str))
        file_name = _field(entry, "file_name", f"images[{i}]", name, (str,))
        if image_id in by_id:
            raise DatasetError(name, f"images: the id {image_id!r} appears twice")
        rel = safe_relative(file_name)
        order = [last_hit, *(k for k in range(len(dirs)) if k != last_hit)]
        hit = next((k for k in order if (dirs[k] / rel).is_file()), None)
        last_hit = hit if hit is not None else last_hit
        where = dirs[hit if hit is not None else 0] / rel
        by_id[image_id] = RawImage(
            file=relative(where, root),
            source=name,
            box_format="xywh",
            width=entry.get("width"),
            height=entry.get("height"),
            split=split,
        )
    index_of = {cid: k for k, (cid, _) in enumerate(categories)}
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DatasetError(name, f"annotations[{i}] is a JSON {_kind(ann)}, not an object")
        bbox = ann.get("bbox")
        values: tuple[Any, ...] = tuple(bbox) if isinstance(bbox, list) else (() if bbox is None else (bbox,))
        image_id = ann.get("image_id")
        image = by_id.get(image_id) if isinstance(image_id, int | str) and not isinstance(image_id, bool) else None
        if image is None:
            detail = f"annotations[{i}] (id {ann.get('id')!r}) names the image_id {image_id!r}, which no image has"
            report.add(Reason.malformed, name, box=list(values), detail=detail)
            continue
        category = ann.get("category_id")
        label = index_of.get(category) if isinstance(category, int) and not isinstance(category, bool) else None
        text = ""
        if label is None:
            text = f"category id {category!r} is not among the categories" if "category_id" in ann else "no category_id"
        crowd = ann.get("iscrowd") in (1, True, "1")
        image.boxes.append(RawBox(values, label, name, crowd=crowd, label_text=text))
    return list(by_id.values())
