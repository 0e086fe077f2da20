"""End to end: ``validate(read(...))`` on hand-written datasets with one of each fault a format
can hold; every fault is counted once, against the file that holds it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from dataset_writers import coco, image, voc_xml, write, write_json

from ssd.datasets.report import Reason
from ssd.datasets.sources import read
from ssd.datasets.validate import validate


def bad_images(folder: Path) -> None:
    """``broken.png`` (truncated), ``anim.gif`` (a type training cannot read), ``ok``/``bg``/
    ``wrong`` PNGs of 40x30."""
    for name in ("ok.png", "bg.png", "wrong.png", "broken.png"):
        image(folder / name)
    data = (folder / "broken.png").read_bytes()
    (folder / "broken.png").write_bytes(data[: len(data) // 2])
    image(folder / "anim.gif", kind="GIF")


def check(root: Path, expected: dict[Reason, list[str]], images: int, boxes: int, ignored: int) -> None:
    index, report = validate(read(root))
    assert report.counts == Counter({r: len(f) for r, f in expected.items()})
    got: dict[Reason, list[str]] = {}
    for problem in report.problems:
        got.setdefault(problem.reason, []).append(problem.file)
    assert {r: sorted(f) for r, f in got.items()} == {r: sorted(f) for r, f in expected.items()}
    assert (report.images, report.boxes, report.ignored) == (images, boxes, ignored)
    assert index.counts()["images"] == images


def test_coco_faults(tmp_path: Path) -> None:
    bad_images(tmp_path / "images")
    box = {"image_id": 1, "category_id": 1}
    annotations = [
        {**box, "bbox": [2, 2, 10, 10]},
        {**box, "bbox": [2, 2, 10, 10]},  # duplicate
        {**box, "bbox": [100, 100, 5, 5]},  # outside
        {**box, "bbox": [2, 2, 0, 5]},  # zero width
        {**box, "bbox": ["a", 2, 5, 5]},  # not numeric
        {**box, "bbox": [2, 2, 5]},  # malformed
        {**box, "category_id": 99, "bbox": [3, 3, 5, 5]},  # unknown class
        {**box, "bbox": [35, 25, 10, 10]},  # clipped, kept
        {**box, "bbox": [0, 0, 40, 30], "iscrowd": 1},  # crowd: an ignore region
        {"image_id": 77, "category_id": 1, "bbox": [1, 1, 2, 2]},  # names no image: the reader's
        {"image_id": 3, "category_id": 1, "bbox": [1, 1, 2, 2]},  # dropped with its missing image
    ]
    pictures = [(1, "ok.png", 40, 30), (2, "bg.png", 40, 30), (3, "missing.png", 40, 30), (4, "broken.png", 40, 30)]
    pictures += [(5, "anim.gif", 40, 30), (6, "wrong.png", 50, 30)]
    write_json(tmp_path / "annotations" / "instances_default.json", coco(pictures, annotations, [(1, "cat")]))
    json_file = "annotations/instances_default.json"
    expected = {
        Reason.missing_image: [json_file],
        Reason.unreadable_image: ["images/broken.png"],
        Reason.unsupported_image_type: ["images/anim.gif"],
        Reason.size_mismatch: [json_file],
        Reason.duplicate: [json_file],
        Reason.outside_image: [json_file],
        Reason.degenerate: [json_file],
        Reason.not_numeric: [json_file],
        Reason.malformed: [json_file, json_file],
        Reason.unknown_class: [json_file],
        Reason.clipped: [json_file],
        Reason.crowd: [json_file],
        Reason.background: [json_file],
    }
    check(tmp_path, expected, images=2, boxes=2, ignored=1)


def test_voc_faults(tmp_path: Path) -> None:
    bad_images(tmp_path / "JPEGImages")
    write(tmp_path / "labels.txt", "cat\ndog\n")
    objects = [
        ("cat", (3, 3, 12, 12), 0),
        ("cat", (3, 3, 12, 12), 0),  # duplicate
        ("dog", (100, 100, 120, 120), 0),  # outside
        ("dog", (5, 5, 5, 9), 0),  # one pixel column wide (1-based, inclusive): kept
        ("dog", (5, 5, 4, 9), 0),  # xmax = xmin - 1: zero width
        ("dog", ("five", 5, 9, 9), 0),  # not numeric
        ("dog", (5, 5, 9), 0),  # malformed: three corners
        ("wolf", (5, 5, 9, 9), 0),  # unknown class
        ("dog", (30, 20, 45, 35), 0),  # clipped, kept
        ("dog", (1, 1, 40, 30), 1),  # difficult: an ignore region
    ]
    write(tmp_path / "Annotations" / "ok.xml", voc_xml("ok.png", objects))
    write(tmp_path / "Annotations" / "bg.xml", voc_xml("bg.png", []))
    write(tmp_path / "Annotations" / "missing.xml", voc_xml("missing.png", [("cat", (3, 3, 9, 9), 0)]))
    write(tmp_path / "Annotations" / "nameless.xml", voc_xml(None, [("cat", (3, 3, 9, 9), 0)]))
    write(tmp_path / "Annotations" / "broken.xml", voc_xml("broken.png", []))
    write(tmp_path / "Annotations" / "anim.xml", voc_xml("anim.gif", []))
    write(tmp_path / "Annotations" / "wrong.xml", voc_xml("wrong.png", [], size=(40, 31)))
    expected = {
        Reason.missing_image: ["Annotations/missing.xml", "Annotations/nameless.xml"],
        Reason.unreadable_image: ["JPEGImages/broken.png"],
        Reason.unsupported_image_type: ["JPEGImages/anim.gif"],
        Reason.size_mismatch: ["Annotations/wrong.xml"],
        Reason.duplicate: ["Annotations/ok.xml"],
        Reason.outside_image: ["Annotations/ok.xml"],
        Reason.degenerate: ["Annotations/ok.xml"],
        Reason.not_numeric: ["Annotations/ok.xml"],
        Reason.malformed: ["Annotations/ok.xml"],
        Reason.unknown_class: ["Annotations/ok.xml"],
        Reason.clipped: ["Annotations/ok.xml"],
        Reason.difficult: ["Annotations/ok.xml"],
        Reason.background: ["Annotations/bg.xml"],
    }
    check(tmp_path, expected, images=2, boxes=3, ignored=1)


def test_yolo_faults(tmp_path: Path) -> None:
    bad_images(tmp_path / "images")
    rows = [
        "0 0.25 0.25 0.2 0.2",
        "0 0.25 0.25 0.2 0.2",  # duplicate
        "0 3.0 3.0 0.1 0.1",  # outside
        "0 0.5 0.5 0 0.1",  # zero width
        "0 0.5 x 0.1 0.1",  # not numeric
        "0 0.5 0.5 0.1",  # malformed: four fields
        "4 0.5 0.5 0.1 0.1",  # unknown class
        "0 0.95 0.5 0.2 0.2",  # clipped, kept
    ]
    write(tmp_path / "labels" / "ok.txt", "\n".join(rows) + "\n")
    write(tmp_path / "labels" / "wrong.txt", "")  # an empty label file: a background image
    write(tmp_path / "labels" / "broken.txt", "0 0.5 0.5 0.1 0.1\n")
    write(tmp_path / "labels" / "lost.txt", "0 0.5 0.5 0.1 0.1\n")  # no image
    write(tmp_path / "data.yaml", "train: images\nval: images\nnames: [cat, dog]\n")
    expected = {
        Reason.missing_image: ["labels/lost.txt"],
        Reason.unreadable_image: ["images/broken.png"],
        Reason.unsupported_image_type: ["images/anim.gif"],
        Reason.duplicate: ["labels/ok.txt"],
        Reason.outside_image: ["labels/ok.txt"],
        Reason.degenerate: ["labels/ok.txt"],
        Reason.not_numeric: ["labels/ok.txt"],
        Reason.malformed: ["labels/ok.txt"],
        Reason.unknown_class: ["labels/ok.txt"],
        Reason.clipped: ["labels/ok.txt"],
        Reason.background: ["images/bg.png", "labels/wrong.txt"],
    }
    check(tmp_path, expected, images=3, boxes=2, ignored=0)
