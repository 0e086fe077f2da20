"""Read a YOLO (Ultralytics / YOLOv5-v8) detection dataset: a ``data.yaml``, images, label files.

Layouts (``ROOT`` is the folder given)::

    ROOT/data.yaml                      (or data.yml, or the one other *.yaml with ``names``)
    ROOT/images/{train,val}/NAME.jpg    Ultralytics, ssdboard's export, CVAT's Ultralytics export
    ROOT/labels/{train,val}/NAME.txt
    ROOT/{train,valid,test}/images/...  Roboflow (``train: ../train/images``)
    ROOT/{train,valid,test}/labels/...

Without a YAML, a class list names the classes, one a line in class-id order::

    ROOT/*.jpg + ROOT/*.txt + ROOT/classes.txt       labelImg's YOLO output (labels beside)
    ROOT/images/ + ROOT/labels/ + ROOT/classes.txt   Label Studio (and labels/classes.txt)
    ROOT/{train,valid}/*.jpg + *.txt + _darknet.labels   Roboflow's YOLO Darknet export

``data.yaml`` (YAML's safe subset without aliases)::

    path: .                  # optional: the folder the split paths are relative to
    train: images/train      # a folder of images, a .txt list of image paths, or a list of these
    val: images/val
    test: images/test        # optional; held-out images count as validation
    nc: 2                    # optional; must equal the number of names
    names: [cat, dog]        # or {0: cat, 1: dog}

Split paths resolve like Ultralytics': relative to ``path`` (relative to the YAML's folder; an
absolute ``path`` from another machine, or one that is missing, means the YAML's folder), a
leading ``../`` that leads nowhere is dropped (Roboflow's ``../train/images``), and only paths
inside ``ROOT`` count. A ``.txt`` list holds one image path a line, relative to the list's
folder (``./`` too), to ``path`` or to ``ROOT``. A folder is searched recursively for images
(Ultralytics' suffixes; validation reports types training cannot read). Without ``train`` and
``val`` (and without a YAML), ``ROOT/images/`` and ``ROOT/*/images/`` are searched, or the whole
of ``ROOT`` when there are none, the split read from the folder names below ``ROOT`` (hidden
folders and ``__MACOSX`` skipped).

A class list (``CLASS_FILES``: ``classes.txt``, ``obj.names``, ``_darknet.labels``) counts when it
lies in ``ROOT`` or down to two levels and some ``.txt`` file down to three levels reads as a YOLO
label (its first row ``cls cx cy w h ...``: an integer, then numbers), so a VOC or COCO folder that
ships a ``classes.txt`` of its own is not taken for YOLO. Several class lists (one a split) must
agree; a blank line within one is an error (it would shift every id after it).

An image's label file follows Ultralytics' rule: the last ``/images/`` of its path becomes
``/labels/`` and the suffix ``.txt`` (with no ``images`` folder the label lies beside the
image); where that file is missing, a ``.txt`` beside the image counts (labelImg saves its
labels into the folder it opened, often called ``images/``). Each non-empty line is
``cls cx cy w h``, the centre and size as fractions of the image (``box_format="cxcywh_normalized"``); the
label is the class's index in ``names`` (an id that is no name, or a class that is not an
integer, gives ``label=None`` with a ``label_text``). Rows with another number of fields
(segment polygons, a confidence column) pass their values as they are and validation reports
them malformed. An image without a label file, or with an empty one, is a background image. A
label file in a ``labels/`` folder that no image maps to is reported here as ``missing_image``
on the label file (class lists are skipped). Bad YAML, missing or malformed ``names`` and
unresolvable ``train``/``val`` paths raise DatasetError naming the YAML; a folder with neither a
YAML nor a class list raises one listing what the folder holds.

Every YAML is parsed by :func:`ssd.datasets.safe_yaml.parse_yaml` (no aliases: nested ones expand
exponentially), at most :data:`MAX_YAML_BYTES` of it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ssd.datasets.paths import (
    IMAGE_SUFFIXES,
    folder_split,
    head,
    hidden,
    inside,
    nothing_found,
    number_or_text,
    read_text,
    relative,
    walk,
)
from ssd.datasets.records import DatasetError, RawBox, RawDataset, RawImage, Split
from ssd.datasets.report import Reason, Report
from ssd.datasets.safe_yaml import AliasRefused, parse_yaml
from ssd.datasets.text import listed, quote, repeated

MAX_YAML_BYTES = 1 << 20
CLASS_FILES = ("classes.txt", "obj.names", "_darknet.labels")
CLASS_FILE_DEPTH = 2
LABEL_DEPTH = 3
# Label files read per folder until one with a row is found: background images have empty ones.
PEEK_LABELS = 20
PEEK_BYTES = 1024
SPLIT_KEYS: tuple[tuple[str, Split], ...] = (("train", "train"), ("val", "val"), ("test", "val"))


def find_data_yaml(folder: Path) -> list[Path]:
    """``data.yaml`` / ``data.yml`` of a folder, else every top-level ``*.yaml`` / ``*.yml`` whose
    mapping has ``names`` (a YAML that does not parse is no candidate)."""
    for name in ("data.yaml", "data.yml"):
        if (folder / name).is_file():
            return [folder / name]
    found = []
    for path in sorted(folder.glob("*.y*ml")):
        if path.suffix in (".yaml", ".yml") and path.is_file() and path.stat().st_size <= MAX_YAML_BYTES:
            try:
                data = parse_yaml(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError):
                continue
            if isinstance(data, dict) and "names" in data:
                found.append(path)
    return found


def find_class_files(folder: Path) -> list[Path]:
    """The class lists of a YOLO folder without a YAML (see the module), or [] when there are
    none or no ``.txt`` file reads as a YOLO label."""
    found: list[Path] = []
    labelled = False
    for here, names in walk(folder, LABEL_DEPTH):
        if len(here.relative_to(folder).parts) <= CLASS_FILE_DEPTH:
            found += [here / name for name in names if name.lower() in CLASS_FILES]
        if not labelled:
            texts = [here / n for n in names if n.lower().endswith(".txt") and n.lower() not in CLASS_FILES]
            labelled = _first_row_is_a_label(texts[:PEEK_LABELS])
    return found if labelled else []


def _first_row_is_a_label(files: list[Path]) -> bool:
    """Whether the first row of the first of ``files`` that has one is ``cls cx cy w h ...``."""
    for path in files:
        text = head(path, PEEK_BYTES).decode("utf-8", errors="replace")
        row = next((line.split() for line in text.splitlines() if line.strip()), None)
        if row is not None:
            numbers = [number_or_text(v) for v in row[1:5]]
            return len(row) >= 5 and row[0].isdigit() and not any(isinstance(n, str) for n in numbers)
    return False


def class_list(files: list[Path], root: Path) -> tuple[dict[str, Any], str]:
    """``{"names": [...]}`` from class lists that must agree, and the first one's name."""
    lists = []
    for path in files:
        name = relative(path, root)
        lines = read_text(path, name).splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            raise DatasetError(name, "names no class: a class list has one class name a line")
        blank = next((k for k, line in enumerate(lines) if not line.strip()), None)
        if blank is not None:
            raise DatasetError(name, f"line {blank + 1} is blank: class {blank} has no name (ids would shift)")
        lists.append((name, [line.strip() for line in lines]))
    first, names = lists[0]
    for other, their in lists[1:]:
        if their != names:
            raise DatasetError(other, f"names other classes than {first}: the class lists must agree")
    return {"names": names}, first


def _description(root: Path) -> tuple[dict[str, Any], str, Path]:
    """The mapping that describes the dataset (a YAML's, or a class list's ``names``), the file it
    comes from, and the folder its paths are relative to."""
    yamls = find_data_yaml(root)
    if len(yamls) > 1:
        raise DatasetError(root.name, f"several YAML files with names ({', '.join(y.name for y in yamls)}): keep one")
    if yamls:
        return load_yaml(yamls[0], yamls[0].name), yamls[0].name, yamls[0].parent
    class_files = find_class_files(root)
    if class_files:
        return (*class_list(class_files, root), root)
    raise nothing_found(
        root,
        "no data.yaml (or other .yaml with names), nor a classes.txt (obj.names, _darknet.labels) with YOLO label"
        f" files down to {LABEL_DEPTH} levels: a YOLO dataset needs one",
    )


def read_yolo(root: Path) -> RawDataset:
    """Read the YOLO dataset at ``root`` (see the module's layouts)."""
    root = Path(root)
    data, name, data_dir = _description(root)
    classes, index_of = _names(data, name)
    report = Report()
    found: dict[Path, Split | None] = {}
    for image, split in _images(data, root, data_dir, name, report):
        found.setdefault(image, split)
    images: list[RawImage] = []
    label_dirs: set[Path] = set()
    expected: set[Path] = set()
    for image, split in found.items():
        label, mapped = label_path(image, root)
        expected.add(label)
        if mapped:
            label_dirs.add(label.parent)
            if not label.is_file() and image.with_suffix(".txt").is_file():
                label = image.with_suffix(".txt")  # labelImg saved into the images/ folder
        raw = RawImage(relative(image, root), relative(image, root), "cxcywh_normalized", split=split)
        if label.is_file():
            raw.source = relative(label, root)
            raw.boxes = read_label_file(label, raw.source, index_of, name)
        images.append(raw)
    for folder in sorted(label_dirs):
        for label in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
            if label not in expected and label.name.lower() not in CLASS_FILES:
                stem = label.stem
                report.add(
                    Reason.missing_image,
                    relative(label, root),
                    detail=f"a label file without an image: no image {stem}.* maps to it",
                )
    return RawDataset("yolo", root, classes, images, report, classes_from=name)


def load_yaml(path: Path, name: str) -> dict[str, Any]:
    """A data.yaml's mapping; DatasetError when too big, not YAML or not a mapping."""
    if path.stat().st_size > MAX_YAML_BYTES:
        raise DatasetError(name, f"larger than {MAX_YAML_BYTES} bytes: not a data.yaml")
    try:
        data = parse_yaml(read_text(path, name))
    except AliasRefused as error:
        raise DatasetError(name, f"{error}: aliases are not read (nested ones expand exponentially)") from None
    except yaml.YAMLError as error:
        raise DatasetError(name, f"not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise DatasetError(name, "not valid YAML: nested too deeply") from None
    except ValueError:  # int() refuses more digits (CVE-2020-10735)
        raise DatasetError(name, "not valid YAML for Python: an integer of more than 4300 digits") from None
    if not isinstance(data, dict):
        raise DatasetError(name, "not a YAML mapping with names, train and val")
    return data


def _names(data: dict[str, Any], name: str) -> tuple[list[str], dict[int, int]]:
    """The class names in id order and class id → index; DatasetError for bad ``names``/``nc``."""
    names = data.get("names")
    if isinstance(names, list):
        pairs = list(enumerate(names))
    elif isinstance(names, dict):
        pairs = []
        for key, value in names.items():
            try:
                pairs.append((int(key), value))
            except (TypeError, ValueError):
                raise DatasetError(name, f"names: the key {quote(key)} is not a class id (an integer)") from None
        pairs.sort(key=lambda pair: pair[0])
    else:
        raise DatasetError(name, "names must be a list of class names or a mapping {id: name}")
    classes = []
    for cid, cname in pairs:
        if not isinstance(cname, str | int | float) or isinstance(cname, bool) or not str(cname).strip():
            raise DatasetError(name, f"names: class {cid} has no usable name ({quote(cname)})")
        classes.append(str(cname).strip())
    duplicates = repeated(classes)
    if duplicates:
        raise DatasetError(name, f"names: {listed(duplicates)} named more than once")
    nc = data.get("nc")
    if nc is not None and nc != len(classes):
        raise DatasetError(name, f"nc is {quote(nc)} but names holds {len(classes)} classes")
    return classes, {cid: k for k, (cid, _) in enumerate(pairs)}


def _base(data: dict[str, Any], root: Path, yaml_dir: Path) -> tuple[Path, PurePosixPath | None]:
    """The folder split paths are relative to, and the absolute ``path`` as written (if any)."""
    declared = data.get("path")
    if not isinstance(declared, str) or not declared.strip():
        return yaml_dir, None
    path = PurePosixPath(declared.strip())
    if path.is_absolute():
        return (Path(path) if Path(path).is_dir() and inside(Path(path), root) else yaml_dir), path
    candidate = yaml_dir / path
    return (candidate if candidate.is_dir() and inside(candidate, root) else yaml_dir), None


def _resolve(item: str, base: Path, root: Path, declared: PurePosixPath | None) -> Path | None:
    """A split entry as a folder or ``.txt`` file inside ``root``, or None."""
    path = PurePosixPath(item.strip())
    candidates = []
    if path.is_absolute():
        candidates.append(Path(path))
        if declared is not None and path.is_relative_to(declared):
            candidates.append(base / path.relative_to(declared))
    else:
        candidates += [base / path, root / path]
        if item.strip().startswith("../"):
            candidates.append(base / item.strip()[3:])
    for candidate in candidates:
        try:
            if inside(candidate, root) and (candidate.is_dir() or (candidate.is_file() and candidate.suffix == ".txt")):
                return candidate
        except OSError:  # a name longer than the file system allows: no such folder
            continue
    return None


def _images(
    data: dict[str, Any], root: Path, yaml_dir: Path, name: str, report: Report
) -> list[tuple[Path, Split | None]]:
    """Every image file the YAML's splits name, with its split, in order."""
    base, declared = _base(data, root, yaml_dir)
    found: list[tuple[Path, Split | None]] = []
    if data.get("train") is None and data.get("val") is None:
        folders = [f for f in [root / "images", *sorted(root.glob("*/images"))] if f.is_dir()] or [root]
        for folder in folders:
            found += [(image, folder_split(image.relative_to(root).parts[:-1])) for image in _scan(folder)]
        return found
    for key, split in SPLIT_KEYS:
        value = data.get(key)
        if value is None or value == "":
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str):
                raise DatasetError(name, f"{key}: expected a path or a list of paths, got {quote(item)}")
            source = _resolve(item, base, root, declared)
            if source is None:
                if key == "test":
                    continue
                raise DatasetError(name, f"{key}: {quote(item)} is no folder of images nor .txt list in the dataset")
            images = _scan(source) if source.is_dir() else _listed(source, base, root, report)
            found += [(image, split) for image in images]
    return found


def _scan(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted; hidden files and folders skipped, and
    links to folders not followed). One ``os.walk``: no ``stat`` per file."""
    found = []
    for here, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not hidden(name)]
        found += [
            Path(here, name)
            for name in files
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not hidden(name)
        ]
    return sorted(found)


def _listed(listing: Path, base: Path, root: Path, report: Report) -> list[Path]:
    """The images a ``.txt`` list names; lines naming a place outside the dataset are reported."""
    name = relative(listing, root)
    images = []
    for line in read_text(listing, name).splitlines():
        entry = line.strip()
        if not entry:
            continue
        path = PurePosixPath(entry.replace("\\", "/"))
        if path.is_absolute():
            candidates = [Path(path)]
        else:
            candidates = [listing.parent / path, base / path, root / path]
        inner = [c for c in candidates if inside(c, root)]
        if not inner:
            report.add(Reason.missing_image, name, image=entry, detail="the list names an image outside the dataset")
            continue
        images.append(Path(os.path.normpath(next((c for c in inner if c.is_file()), inner[0]))))
    return images


def label_path(image: Path, root: Path) -> tuple[Path, bool]:
    """Ultralytics' label file of an image (``/images/`` → ``/labels/``, suffix ``.txt``), and
    whether the ``images`` → ``labels`` mapping applied (otherwise the label is beside the image)."""
    rel = "/" + relative(image, root)
    mapped = "/images/" in rel
    if mapped:
        front, tail = rel.rsplit("/images/", 1)
        rel = f"{front}/labels/{tail}"
    return root / str(PurePosixPath(rel.lstrip("/")).with_suffix(".txt")), mapped


def read_label_file(path: Path, name: str, index_of: dict[int, int], yaml_name: str = "data.yaml") -> list[RawBox]:
    """One :class:`RawBox` a non-empty line of a label file (``cls cx cy w h``), values as written."""
    boxes = []
    for line in read_text(path, name).splitlines():
        fields = line.split()
        if not fields:
            continue
        label, text = _label(fields[0], index_of, yaml_name)
        boxes.append(RawBox(tuple(number_or_text(v) for v in fields[1:]), label, name, label_text=text))
    return boxes


def _label(field: str, index_of: dict[int, int], yaml_name: str) -> tuple[int | None, str]:
    number = number_or_text(field)
    if isinstance(number, str) or number != number or number in (float("inf"), float("-inf")) or number % 1:
        return None, f"class {quote(field)} is not an integer"
    if int(number) not in index_of:
        return None, f"class {int(number)} is not among the {len(index_of)} names of {yaml_name}"
    return index_of[int(number)], ""
