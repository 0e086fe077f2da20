"""Deliberately broken datasets in each format, with a known count of every validation fault.

:func:`make_broken` exports 16 clean generated images (12 train, 4 val) as COCO, VOC or YOLO
with :func:`ssd.datasets.export.export_generator`, then breaks them in place: one image of each
image fault, and extra boxes, one per box fault (two for ``not_numeric``: a word and NaN), added
to images that keep their good boxes. :class:`Broken` says what an import must report: how
many of each :class:`~ssd.datasets.report.Reason`, the file each one names, and the images and
boxes that stay. Faults a format cannot hold are left out (YOLO declares no image size, has no
crowd or difficult flag; COCO has no difficult flag, VOC no crowd flag).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

from PIL import Image

from ssd.datasets.export import export_generator
from ssd.datasets.report import Reason

IMAGES, VAL_FRACTION = 16, 0.25


@dataclass
class Broken:
    """A broken dataset at ``root``: ``counts`` per reason, ``files[reason]`` the sorted files its
    problems name (relative to ``root``), and what the import keeps."""

    root: Path
    counts: Counter[Reason] = field(default_factory=Counter)
    files: dict[Reason, list[str]] = field(default_factory=dict)
    images_kept: int = IMAGES
    boxes_added_kept: int = 0  # clipped boxes kept besides the clean ones

    def add(self, reason: Reason, file: str) -> None:
        self.counts[reason] += 1
        self.files.setdefault(reason, []).append(file)
        self.files[reason].sort()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _to_gif(path: Path) -> Path:
    gif = path.with_suffix(".gif")
    with Image.open(path) as image:
        image.save(gif)
    path.unlink()
    return gif


# The box faults, as (reason, how many) in the order they are added.
BOX_FAULTS = (
    (Reason.outside_image, 1),
    (Reason.degenerate, 1),
    (Reason.not_numeric, 2),
    (Reason.malformed, 1),
    (Reason.unknown_class, 1),
    (Reason.duplicate, 1),
    (Reason.clipped, 1),
)


def make_broken(out: Path, fmt: str) -> Broken:
    """Write the broken copy of one format into ``out`` (a new directory); see module docstring."""
    export_generator(out, fmt, images=IMAGES, val_fraction=VAL_FRACTION)  # type: ignore[arg-type]
    broken = Broken(out)
    {"coco": _break_coco, "voc": _break_voc, "yolo": _break_yolo}[fmt](broken)
    return broken


def _break_coco(b: Broken) -> None:
    ann = "annotations/instances_train.json"
    doc = json.loads((b.root / ann).read_text())
    images = {im["file_name"]: im for im in doc["images"]}
    boxes_of = {name: [a for a in doc["annotations"] if a["image_id"] == im["id"]] for name, im in images.items()}
    next_id = max(a["id"] for a in doc["annotations"]) + 1

    (b.root / "images/train/train_00.png").unlink()
    b.add(Reason.missing_image, ann)
    _truncate(b.root / "images/train/train_01.png")
    b.add(Reason.unreadable_image, "images/train/train_01.png")
    _to_gif(b.root / "images/train/train_02.png")
    images["train_02.png"]["file_name"] = "train_02.gif"
    b.add(Reason.unsupported_image_type, "images/train/train_02.gif")
    images["train_03.png"]["width"] = 64
    b.add(Reason.size_mismatch, ann)
    b.images_kept -= 4

    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != images["train_04.png"]["id"]]
    b.add(Reason.background, ann)

    target = images["train_05.png"]["id"]
    first = boxes_of["train_05.png"][0]
    bboxes: list[list[object]] = [[200, 10, 10, 10], [10, 10, 0, 5], [10, "abc", 5, 5], [float("nan"), 1, 5, 5]]
    bboxes += [[1, 2, 3]]
    extra: list[dict[str, object]] = [{"bbox": bbox, "category_id": 1} for bbox in bboxes]
    extra += [
        {"bbox": [1, 1, 5, 5], "category_id": 99},
        {"bbox": list(first["bbox"]), "category_id": first["category_id"]},
    ]
    extra += [{"bbox": [120, 120, 20, 20], "category_id": 4}, {"bbox": [0, 0, 50, 50], "category_id": 1, "iscrowd": 1}]
    for reason, n in (*BOX_FAULTS, (Reason.crowd, 1)):
        for _ in range(n):
            b.add(reason, ann)
    for item in extra:
        doc["annotations"].append({"id": next_id, "image_id": target, "iscrowd": 0, "area": 1.0, **item})
        next_id += 1
    b.boxes_added_kept = 1
    (b.root / ann).write_text(json.dumps(doc))


def _voc_objects(xml: Path) -> tuple[ET.ElementTree, ET.Element]:
    tree = ET.parse(xml)
    return tree, tree.getroot()


def _voc_object(root: ET.Element, name: str, values: dict[str, str], difficult: int = 0) -> None:
    obj = ET.SubElement(root, "object")
    ET.SubElement(obj, "name").text = name
    ET.SubElement(obj, "difficult").text = str(difficult)
    box = ET.SubElement(obj, "bndbox")
    for tag, value in values.items():
        ET.SubElement(box, tag).text = value


def _break_voc(b: Broken) -> None:
    def ann(name: str) -> str:
        return f"Annotations/{name}.xml"

    (b.root / "JPEGImages/train_00.png").unlink()
    b.add(Reason.missing_image, ann("train_00"))
    _truncate(b.root / "JPEGImages/train_01.png")
    b.add(Reason.unreadable_image, "JPEGImages/train_01.png")
    _to_gif(b.root / "JPEGImages/train_02.png")
    tree, root = _voc_objects(b.root / ann("train_02"))
    root.find("filename").text = "train_02.gif"  # type: ignore[union-attr]
    tree.write(b.root / ann("train_02"))
    b.add(Reason.unsupported_image_type, "JPEGImages/train_02.gif")
    tree, root = _voc_objects(b.root / ann("train_03"))
    root.find("size/width").text = "64"  # type: ignore[union-attr]
    tree.write(b.root / ann("train_03"))
    b.add(Reason.size_mismatch, ann("train_03"))
    b.images_kept -= 4

    tree, root = _voc_objects(b.root / ann("train_04"))
    for obj in root.findall("object"):
        root.remove(obj)
    tree.write(b.root / ann("train_04"))
    b.add(Reason.background, ann("train_04"))

    tree, root = _voc_objects(b.root / ann("train_05"))
    first = root.find("object")
    assert first is not None
    name = first.findtext("name") or ""
    copy = {tag: first.findtext(f"bndbox/{tag}") or "" for tag in ("xmin", "ymin", "xmax", "ymax")}

    def box(x1: str, y1: str, x2: str, y2: str) -> dict[str, str]:
        return {"xmin": x1, "ymin": y1, "xmax": x2, "ymax": y2}

    _voc_object(root, "3", box("200", "10", "210", "20"))  # outside
    _voc_object(root, "3", box("20", "10", "10", "20"))  # negative width
    _voc_object(root, "3", box("10", "abc", "20", "20"))
    _voc_object(root, "3", box("nan", "10", "20", "20"))
    _voc_object(root, "3", {"xmin": "1", "ymin": "1", "xmax": "5"})  # no ymax
    _voc_object(root, "zebra", box("1", "1", "5", "5"))
    _voc_object(root, name, copy)  # duplicate
    _voc_object(root, "4", box("121", "121", "140", "140"))  # clipped
    _voc_object(root, "1", box("1", "1", "50", "50"), difficult=1)
    tree.write(b.root / ann("train_05"))
    for reason, n in (*BOX_FAULTS, (Reason.difficult, 1)):
        for _ in range(n):
            b.add(reason, ann("train_05"))
    b.boxes_added_kept = 1


def _break_yolo(b: Broken) -> None:
    def label(name: str) -> str:
        return f"labels/train/{name}.txt"

    (b.root / "images/train/train_00.png").unlink()  # its label file is left without an image
    b.add(Reason.missing_image, label("train_00"))
    _truncate(b.root / "images/train/train_01.png")
    b.add(Reason.unreadable_image, "images/train/train_01.png")
    _to_gif(b.root / "images/train/train_02.png")
    b.add(Reason.unsupported_image_type, "images/train/train_02.gif")
    b.images_kept -= 3
    (b.root / label("train_04")).write_text("")
    b.add(Reason.background, label("train_04"))
    path = b.root / label("train_05")
    rows = path.read_text().splitlines()
    rows += ["3 1.5 1.5 0.1 0.1", "3 0.5 0.5 0 0.1", "3 abc 0.5 0.1 0.1", "3 nan 0.5 0.1 0.1", "3 0.5 0.5 0.1"]
    rows += ["42 0.5 0.5 0.1 0.1", rows[0], "4 0.98 0.5 0.1 0.1"]
    path.write_text("\n".join(rows) + "\n")
    for reason, n in BOX_FAULTS:
        for _ in range(n):
            b.add(reason, label("train_05"))
    b.boxes_added_kept = 1
