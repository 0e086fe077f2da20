"""Export: the files of each format as written (read back by hand), the generator's export, and
export -> import round trips through the real readers (boxes within 0.01 px, classes in order,
splits), and the broken fixtures of :mod:`dataset_faults` counted by the real import."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import yaml
from dataset_faults import IMAGES, make_broken
from PIL import Image

from ssd.data import DetectionDataset
from ssd.datasets.export import export_generator, export_index, number, pick, split_counts, unique_stems
from ssd.datasets.records import FORMATS, DatasetIndex, ImageRecord, Split
from ssd.datasets.report import BOX_DROPS, IMAGE_DROPS, NOTES, Reason

CLASSES = ["zebra", "cat", "dog"]  # not sorted: the order must survive


def record(
    file: str,
    split: Split,
    boxes: list[list[float]],
    labels: list[int],
    ignore: list[list[float]] | None = None,
    ignore_labels: list[int] | None = None,
) -> ImageRecord:
    return ImageRecord(
        file, 64, 48, split, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int32),
        np.asarray(ignore or [], np.float32).reshape(-1, 4), np.asarray(ignore_labels or [], np.int32),
    )  # fmt: skip


@pytest.fixture
def index(tmp_path: Path) -> tuple[DatasetIndex, Path]:
    """Five 64x48 images: fractional boxes, a box touching the border, an ignore region, a
    background image, two files of the same name in different folders, one JPEG."""
    root = tmp_path / "dataset"
    records = [
        record("images/a/x.png", "train", [[1.25, 2.5, 30.75, 40.01], [0, 0, 64, 48]], [0, 2]),
        record(
            "images/b/x.png", "train", [[10.33, 11.67, 12.99, 13.01]], [1], ignore=[[5, 5, 20, 20]], ignore_labels=[2]
        ),
        record("images/c.jpg", "train", [[3, 4, 5, 6]], [2]),
        record("images/empty.png", "val", [], []),
        record("images/v.png", "val", [[7.5, 8.5, 63.5, 47.5], [7.5, 8.5, 63.5, 47.5]], [1, 0]),
    ]
    for r in records:
        (root / r.file).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (40, 80, 120)).save(root / r.file)
    return DatasetIndex("mine", "coco", list(CLASSES), records), root


def test_coco_files(index: tuple[DatasetIndex, Path], tmp_path: Path) -> None:
    out = export_index(*index, tmp_path / "out", "coco")
    train = json.loads((out / "annotations/instances_train.json").read_text())
    assert [c["name"] for c in sorted(train["categories"], key=lambda c: c["id"])] == CLASSES
    assert [im["file_name"] for im in train["images"]] == ["x.png", "x_1.png", "c.jpg"]
    assert (out / "images/train/x_1.png").is_file() and (out / "images/train/c.jpg").is_file()
    bboxes = [(a["bbox"], a["category_id"], a["iscrowd"]) for a in train["annotations"]]
    assert bboxes[0] == ([1.25, 2.5, 29.5, 37.51], 1, 0)
    assert bboxes[3] == ([5.0, 5.0, 15.0, 15.0], 3, 1)  # the ignore region as a crowd annotation of its class
    val = json.loads((out / "annotations/instances_val.json").read_text())
    assert [im["file_name"] for im in val["images"]] == ["empty.png", "v.png"] and len(val["annotations"]) == 2


def test_voc_files_are_one_based(index: tuple[DatasetIndex, Path], tmp_path: Path) -> None:
    out = export_index(*index, tmp_path / "out", "voc")
    assert (out / "ImageSets/Main/train.txt").read_text().split() == ["x", "x_1", "c"]
    assert (out / "ImageSets/Main/val.txt").read_text().split() == ["empty", "v"]
    assert (out / "labels.txt").read_text().split() == CLASSES
    root = ET.parse(out / "Annotations/x.xml").getroot()
    assert root.findtext("filename") == "x.png" and root.findtext("size/width") == "64"
    objects = [
        (o.findtext("name"), [o.findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")])
        for o in root.iter("object")
    ]
    assert objects == [("zebra", ["2.25", "3.5", "30.75", "40.01"]), ("dog", ["1", "1", "64", "48"])]
    difficult = ET.parse(out / "Annotations/x_1.xml").getroot().findall("object")[1]
    assert difficult.findtext("difficult") == "1" and difficult.findtext("bndbox/xmin") == "6"
    assert difficult.findtext("name") == "dog"
    assert ET.parse(out / "Annotations/empty.xml").getroot().find("object") is None


def test_yolo_files(index: tuple[DatasetIndex, Path], tmp_path: Path) -> None:
    out = export_index(*index, tmp_path / "out", "yolo")
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert (
        data["names"] == CLASSES and data["nc"] == 3 and (data["train"], data["val"]) == ("images/train", "images/val")
    )
    rows = (out / "labels/train/x.txt").read_text().splitlines()
    cls, cx, cy, w, h = rows[1].split()
    assert (cls, float(cx), float(cy), float(w), float(h)) == ("2", 0.5, 0.5, 1.0, 1.0)
    assert (out / "labels/val/empty.txt").read_text() == ""
    assert len((out / "labels/train/x_1.txt").read_text().splitlines()) == 1  # YOLO has no ignore regions
    assert (out / "images/train/c.jpg").is_file()


def test_generator_export(tmp_path: Path) -> None:
    out = export_generator(tmp_path / "m", "coco", images=20, val_fraction=0.25, seed=3)
    train = json.loads((out / "annotations/instances_train.json").read_text())
    val = json.loads((out / "annotations/instances_val.json").read_text())
    assert (len(train["images"]), len(val["images"])) == (15, 5)
    assert [c["name"] for c in train["categories"]] == [str(d) for d in range(10)]
    sample = DetectionDataset("val", seed=0)[4]  # validation images are the generator's val split
    with Image.open(out / "images/val" / val["images"][4]["file_name"]) as image:
        np.testing.assert_array_equal(np.asarray(image), sample.image)
    boxes = [a["bbox"] for a in val["annotations"] if a["image_id"] == val["images"][4]["id"]]
    np.testing.assert_allclose([[x, y, x + w, y + h] for x, y, w, h in boxes], sample.boxes)
    assert sum(1 for _ in (out / "images/train").iterdir()) == 15


def test_helpers() -> None:
    assert unique_stems(["a/x.png", "b/x.png", "X.jpg", "c/we ird#.png", "..png"]) == [
        "x",
        "x_1",
        "X_2",
        "we_ird",
        "image",
    ]
    assert [number(v) for v in (12.0, 12.5, 0.1 + 0.2, np.float32(10.33))] == ["12", "12.5", "0.3", "10.33"]
    assert split_counts(10, 0.1) == (9, 1) and split_counts(1, 0.5) == (1, 0) and split_counts(5, 0.0) == (5, 0)
    with pytest.raises(ValueError):
        split_counts(10, 1.0)
    records = [record(f"{i}.png", "val" if i % 4 == 0 else "train", [], []) for i in range(8)]
    assert [r.file for r in pick(records, 4)] == ["0.png", "1.png", "2.png", "3.png"]
    assert [r.split for r in pick(records, 2)].count("val") == 1 and len(pick(records, None)) == 8


def test_out_must_be_new_and_a_failure_leaves_nothing(index: tuple[DatasetIndex, Path], tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ValueError, match="not an empty directory"):
        export_index(*index, tmp_path / "full", "voc")
    (index[1] / index[0].images[2].file).unlink()
    with pytest.raises(FileNotFoundError):
        export_index(*index, tmp_path / "out", "voc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset", "full"]


# -- through the real readers ------------------------------------------------------------------


def registry_import(src: Path, data: Path, **kwargs: object) -> tuple[dict, object, object]:  # type: ignore[type-arg]
    pytest.importorskip("ssd.datasets.sources")
    from ssd.datasets.registry import Registry

    registry = Registry(data)
    meta = registry.import_dataset(src, **kwargs)  # type: ignore[arg-type]
    return meta, registry.index(meta["id"]), registry.report(meta["id"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(index: tuple[DatasetIndex, Path], tmp_path: Path, fmt: str) -> None:
    original, root = index
    out = export_index(original, root, tmp_path / fmt, fmt)  # type: ignore[arg-type]
    meta, back, report = registry_import(out, tmp_path / "data")
    assert back.classes == CLASSES and meta["format"] == fmt
    assert meta["split_from"] == "dataset"
    # Readers order images their own way (YOLO scans folders): pair them by the exported name.
    stems = unique_stems([r.file for r in original.images])
    by_stem = {Path(r.file).stem: r for r in back.images}
    assert sorted(by_stem) == sorted(stems)
    for a, stem in zip(original.images, stems, strict=True):
        b = by_stem[stem]
        assert (b.split, b.width, b.height) == (a.split, a.width, a.height)
        assert b.labels.tolist() == a.labels.tolist()
        np.testing.assert_allclose(b.boxes, a.boxes, atol=0.01)
        if fmt != "yolo":  # YOLO has no ignore regions
            np.testing.assert_allclose(b.ignore, a.ignore, atol=0.01)
            assert b.ignore_labels.tolist() == a.ignore_labels.tolist()
    assert report.counts[Reason.duplicate] == 0 and report.counts[Reason.background] == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_generator_round_trip(tmp_path: Path, fmt: str) -> None:
    out = export_generator(tmp_path / fmt, fmt, images=12, val_fraction=0.25)  # type: ignore[arg-type]
    meta, back, report = registry_import(out, tmp_path / "data")
    assert back.classes == [str(d) for d in range(10)] and meta["splits"] == {"train": 9, "val": 3}
    assert sum(report.counts.values()) == 0
    val = DetectionDataset("val", seed=0)
    for k, r in enumerate(back.split("val")):
        np.testing.assert_allclose(r.boxes, val[k].boxes, atol=0.01)
        assert r.labels.tolist() == val[k].labels.tolist()


@pytest.mark.parametrize("fmt", FORMATS)
def test_broken_fixtures_give_the_expected_report(tmp_path: Path, fmt: str) -> None:
    broken = make_broken(tmp_path / fmt, fmt)
    meta, back, report = registry_import(broken.root, tmp_path / "data")
    every = (*IMAGE_DROPS, *BOX_DROPS, *NOTES)
    assert {r: report.counts[r] for r in every if report.counts[r]} == dict(broken.counts)
    for reason in every:
        assert sorted(p.file for p in report.problems if p.reason == reason) == broken.files.get(reason, []), reason
    assert meta["counts"]["images"] == broken.images_kept
    clean = [r for r in back.images if r.file.rsplit("/", 1)[-1] not in ("train_04.png", "train_05.png")]
    assert len(clean) == broken.images_kept - 2 and all(len(r.labels) >= 1 for r in clean)
    assert IMAGES - broken.images_kept == sum(broken.counts[r] for r in IMAGE_DROPS)
