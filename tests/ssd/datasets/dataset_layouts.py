"""One tiny dataset per real-world layout, written as the tool that makes it writes it, with the
counts an import must find, worked out by hand from what each writer below puts on disk.

Shared by the reader and CLI tests (``test_dataset_layouts.py``) and the upload tests
(``tests/app/test_datasets_api.py``). Every image is 40x30 and every box lies inside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataset_writers import coco, image, voc_xml, write, write_json

BOX = (2, 3, 20, 25)
OTHER_BOX = (5, 5, 30, 28)
THIRD_BOX = (1, 1, 10, 10)
ROW = "0 0.5 0.5 0.25 0.5\n"
SECOND_ROW = "1 0.3 0.4 0.2 0.2\n"


@dataclass(frozen=True)
class Layout:
    """A layout, how to write it, and what importing it keeps: ``images`` and ``boxes`` kept,
    ``classes`` in class order, ``splits`` the dataset's own (None: none, split at import) and
    ``dropped`` images by reason."""

    id: str
    format: str
    write: Callable[[Path], Any]
    images: int
    boxes: int
    classes: list[str]
    splits: dict[str, int] | None
    dropped: dict[str, int] = field(default_factory=dict)


def voc(
    root: Path, xml: str, filename: str | None, *objects: tuple[str, tuple[int, ...]], path: str | None = None
) -> None:
    write(root / xml, voc_xml(filename, [(name, box, 0) for name, box in objects], path=path))


def voc_devkit(root: Path) -> None:
    """The VOC devkit: Annotations/ + JPEGImages/ + ImageSets/Main."""
    for stem in ("000001", "000002", "000003"):
        image(root / "JPEGImages" / f"{stem}.jpg")
    voc(root, "Annotations/000001.xml", "000001.jpg", ("cat", BOX), ("dog", OTHER_BOX))
    voc(root, "Annotations/000002.xml", "000002.jpg", ("cat", BOX))
    voc(root, "Annotations/000003.xml", "000003.jpg", ("dog", BOX))
    write(root / "ImageSets" / "Main" / "train.txt", "000001\n000002\n")
    write(root / "ImageSets" / "Main" / "val.txt", "000003\n")


def voc_lowercase(root: Path) -> None:
    """annotations/ + images/ (the 200-image raccoon set): <path> from the annotator's Mac, a
    <filename> in another case, and one whose suffix is not the file's (found by the stem)."""
    for k in (1, 2, 3):
        image(root / "images" / f"raccoon-{k}.jpg")
    mac = "/Users/dat/Desktop/raccoon_dataset/images/raccoon-1.jpg"
    voc(root, "annotations/raccoon-1.xml", "raccoon-1.jpg", ("raccoon", BOX), path=mac)
    voc(root, "annotations/raccoon-2.xml", "Raccoon-2.JPG", ("raccoon", BOX), ("raccoon", OTHER_BOX))
    voc(root, "annotations/raccoon-3.xml", "raccoon-3.png", ("raccoon", BOX))


def voc_annots(root: Path) -> None:
    """annots/ + images/ (the 164-image kangaroo set), with a truncated JPEG holding 3 boxes."""
    for k, boxes in ((1, 1), (2, 2), (3, 1), (4, 3)):
        image(root / "images" / f"0000{k}.jpg")
        path = f"/home/someone/kangaroo/images/0000{k}.jpg"
        objects = [("kangaroo", box) for box in (BOX, OTHER_BOX, THIRD_BOX)[:boxes]]
        voc(root, f"annots/0000{k}.xml", f"0000{k}.jpg", *objects, path=path)
    broken = root / "images" / "00004.jpg"
    broken.write_bytes(broken.read_bytes()[:-200])


def voc_labelimg(root: Path) -> None:
    """labelImg's default: each XML beside its image, <path> absolute on a Windows machine; one
    XML renamed, its image found by <path>'s base name alone."""
    for name in ("apple_1", "banana_1", "mixed"):
        image(root / f"{name}.jpg")
    voc(root, "apple_1.xml", "apple_1.jpg", ("apple", BOX), path="C:\\Users\\ann\\fruits\\apple_1.jpg")
    voc(root, "banana_1.xml", "banana_1.jpg", ("banana", BOX), ("apple", OTHER_BOX))
    voc(root, "shot 7.xml", None, ("banana", BOX), path="C:\\Users\\ann\\fruits\\mixed.jpg")


def voc_roboflow(root: Path) -> None:
    """Roboflow's Pascal VOC export: each split folder holds its images and XML side by side."""
    for split, names in (("train", ["a_jpg.rf.1", "b_jpg.rf.2"]), ("valid", ["c_jpg.rf.3"])):
        for name in names:
            image(root / split / f"{name}.jpg")
            boxes = [("helmet", BOX), ("helmet", OTHER_BOX)] if split == "valid" else [("helmet", BOX)]
            voc(root, f"{split}/{name}.xml", f"{name}.jpg", *boxes)
    write(root / "README.roboflow.txt", "Exported via roboflow.com\n")


def voc_split_folders(root: Path) -> None:
    """annotations/{train,val}/ mirrored by images/{train,val}/, the same names in both splits."""
    for split, stems in (("train", ["1", "2"]), ("val", ["1"])):
        for stem in stems:
            image(root / "images" / split / f"{stem}.jpg")
            voc(root, f"annotations/{split}/{stem}.xml", f"{stem}.jpg", ("person", BOX))


def yolo_ultralytics(root: Path) -> None:
    """Ultralytics: data.yaml + images/{train,val} + labels/{train,val}; one background image."""
    image(root / "images" / "train" / "a.jpg")
    image(root / "images" / "train" / "b.jpg")
    image(root / "images" / "val" / "c.jpg")
    write(root / "labels" / "train" / "a.txt", ROW + SECOND_ROW)
    write(root / "labels" / "val" / "c.txt", ROW)
    write(
        root / "data.yaml", "path: ../datasets/x\ntrain: images/train\nval: images/val\nnames:\n  0: person\n  1: car\n"
    )


def yolo_roboflow(root: Path) -> None:
    """Roboflow's YOLOv8 export: {train,valid,test}/{images,labels}, data.yaml with ../ paths."""
    for split, names in (("train", ["a", "b"]), ("valid", ["c"]), ("test", ["d"])):
        for name in names:
            image(root / split / "images" / f"{name}_jpg.rf.9.jpg")
            write(root / split / "labels" / f"{name}_jpg.rf.9.txt", ROW)
    write(
        root / "data.yaml",
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 1\nnames: ['helmet']\n",
    )
    write(root / "README.roboflow.txt", "Exported via roboflow.com\n")


def yolo_labelimg(root: Path) -> None:
    """labelImg's YOLO output: a .txt beside each image and classes.txt, no data.yaml."""
    for name in ("dog1", "both", "person"):
        image(root / f"{name}.jpg")
    write(root / "dog1.txt", ROW)
    write(root / "both.txt", ROW + SECOND_ROW)
    write(root / "person.txt", SECOND_ROW)
    write(root / "classes.txt", "dog\nperson\n")


def yolo_label_studio(root: Path) -> None:
    """Label Studio's YOLO export: images/ + labels/ + classes.txt + notes.json (whose
    "categories" must not make it look like COCO); one background image."""
    for name in ("1a2b-a", "3c4d-b", "5e6f-c"):
        image(root / "images" / f"{name}.jpg")
    write(root / "labels" / "1a2b-a.txt", ROW + SECOND_ROW)
    write(root / "labels" / "3c4d-b.txt", SECOND_ROW)
    write(root / "classes.txt", "cat\ndog\n")
    notes = {
        "categories": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}],
        "info": {"contributor": "Label Studio"},
    }
    write(root / "notes.json", json.dumps(notes))


def coco_roboflow(root: Path) -> None:
    """Roboflow's COCO export: _annotations.coco.json beside the images of each split; its
    category 0 is the project's name, a class no box uses."""
    categories = [(0, "helmets"), (1, "helmet")]
    for split, names in (("train", ["a", "b"]), ("valid", ["c"])):
        entries = [(k, f"{name}_jpg.rf.5.jpg", 40, 30) for k, name in enumerate(names)]
        for _, file_name, _, _ in entries:
            image(root / split / file_name)
        boxes = [{"image_id": k, "category_id": 1, "bbox": [2, 3, 18, 22]} for k, *_ in entries]
        write_json(root / split / "_annotations.coco.json", coco(entries, boxes, categories))
    write(root / "README.roboflow.txt", "Exported via roboflow.com\n")


LAYOUTS = [
    Layout("voc-devkit", "voc", voc_devkit, 3, 4, ["cat", "dog"], {"train": 2, "val": 1}),
    Layout("voc-lowercase", "voc", voc_lowercase, 3, 4, ["raccoon"], None),
    Layout("voc-annots", "voc", voc_annots, 3, 4, ["kangaroo"], None, {"unreadable_image": 1}),
    Layout("voc-labelimg", "voc", voc_labelimg, 3, 4, ["apple", "banana"], None),
    Layout("voc-roboflow", "voc", voc_roboflow, 3, 4, ["helmet"], {"train": 2, "val": 1}),
    Layout("voc-split-folders", "voc", voc_split_folders, 3, 3, ["person"], {"train": 2, "val": 1}),
    Layout("yolo-ultralytics", "yolo", yolo_ultralytics, 3, 3, ["person", "car"], {"train": 2, "val": 1}),
    Layout("yolo-roboflow", "yolo", yolo_roboflow, 4, 4, ["helmet"], {"train": 2, "val": 2}),
    Layout("yolo-labelimg", "yolo", yolo_labelimg, 3, 4, ["dog", "person"], None),
    Layout("yolo-label-studio", "yolo", yolo_label_studio, 3, 3, ["cat", "dog"], None),
    Layout("coco-roboflow", "coco", coco_roboflow, 3, 3, ["helmets", "helmet"], {"train": 2, "val": 1}),
]
