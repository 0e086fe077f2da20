"""ssd.datasets.coco: the layouts COCO exporters write, boxes as written, errors naming the key,
and a cross-check against pycocotools on the same file."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dataset_writers import coco, image, write, write_json

from ssd.datasets.coco import read_coco
from ssd.datasets.records import DatasetError
from ssd.datasets.report import Reason
from ssd.datasets.sources import read
from ssd.datasets.validate import validate

CATS = [(1, "cat"), (2, "dog")]


def one(path: Path, file_name: str = "a.png") -> Path:
    """A COCO file with one image and one box."""
    return write_json(
        path, coco([(1, file_name, 40, 30)], [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}], CATS)
    )


def files(dataset: Any) -> list[tuple[str, str | None]]:
    return [(i.file, i.split) for i in dataset.images]


# -- layouts ------------------------------------------------------------------------------------


def test_images_beside_the_json_or_in_images(tmp_path: Path) -> None:
    image(tmp_path / "beside" / "a.png")
    assert files(read(one(tmp_path / "beside" / "result.json"))) == [("a.png", None)]
    image(tmp_path / "ls" / "images" / "a.png")  # Label Studio: result.json + images/
    raw = read(one(tmp_path / "ls" / "result.json"))
    assert files(raw) == [("images/a.png", None)] and raw.root == tmp_path / "ls"


def test_the_coco_download_layout(tmp_path: Path) -> None:
    """annotations/instances_{train,val}2017.json + train2017/ and val2017/ beside annotations/."""
    root = tmp_path / "coco"
    image(root / "train2017" / "000000000009.jpg")
    image(root / "val2017" / "000000000139.jpg")
    one(root / "annotations" / "instances_train2017.json", "000000000009.jpg")
    one(root / "annotations" / "instances_val2017.json", "000000000139.jpg")
    write_json(root / "annotations" / "captions_val2017.json", {"images": [], "annotations": []})
    expected = [("train2017/000000000009.jpg", "train"), ("val2017/000000000139.jpg", "val")]
    assert files(read(root)) == expected
    single = read(root / "annotations" / "instances_val2017.json")  # one file: root above annotations/
    assert single.root == root and files(single) == expected[1:]


def test_images_in_a_split_folder_under_images(tmp_path: Path) -> None:
    """Ultralytics' COCO copy and ssdboard's export: images/{split}/, file_name without the folder."""
    root = tmp_path / "d"
    for split in ("train", "val"):
        image(root / "images" / split / f"{split}.png")
        one(root / "annotations" / f"instances_{split}.json", f"{split}.png")
    assert files(read(root)) == [("images/train/train.png", "train"), ("images/val/val.png", "val")]


def test_cvat_and_roboflow_layouts(tmp_path: Path) -> None:
    cvat = tmp_path / "cvat"
    image(cvat / "images" / "frame_000000.png")
    one(cvat / "annotations" / "instances_default.json", "frame_000000.png")
    assert files(read(cvat)) == [("images/frame_000000.png", None)]
    roboflow = tmp_path / "rf"
    for split in ("train", "valid", "test"):
        image(roboflow / split / f"{split}_jpg.rf.1.png")
        one(roboflow / split / "_annotations.coco.json", f"{split}_jpg.rf.1.png")
    assert files(read(roboflow)) == [
        ("test/test_jpg.rf.1.png", "val"),
        ("train/train_jpg.rf.1.png", "train"),
        ("valid/valid_jpg.rf.1.png", "val"),
    ]


def test_split_files_by_name_and_subfolders_in_file_name(tmp_path: Path) -> None:
    image(tmp_path / "images" / "sub" / "a.png")
    image(tmp_path / "images" / "b.png")
    one(tmp_path / "train.json", "sub/a.png")
    one(tmp_path / "val.json", "b.png")
    assert files(read(tmp_path)) == [("images/sub/a.png", "train"), ("images/b.png", "val")]


def test_file_names_never_leave_the_dataset(tmp_path: Path) -> None:
    """An absolute or climbing file_name is looked up by its own name, inside the root."""
    root = tmp_path / "d"
    image(tmp_path / "secret.png")
    image(root / "images" / "secret.png")
    names = ["../secret.png", "/home/someone/data/secret.png", "C:\\data\\secret.png", "images/../../secret.png"]
    write_json(root / "x.json", coco([(i, n, 40, 30) for i, n in enumerate(names)], [], CATS))
    assert {i.file for i in read(root / "x.json").images} == {"images/secret.png"}
    write_json(root / "y.json", coco([(1, "../nowhere.png", 40, 30)], [], CATS))
    missing = read(root / "y.json")
    assert missing.images[0].file == "nowhere.png"  # inside the root; validation reports it missing
    _, report = validate(missing)
    assert report.counts[Reason.missing_image] == 1


# -- content -------------------------------------------------------------------------------------


def test_boxes_pass_as_written_with_labels_from_sorted_categories(tmp_path: Path) -> None:
    image(tmp_path / "a.png")
    image(tmp_path / "empty.png")
    annotations: list[dict[str, Any]] = [
        {"image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], "segmentation": [[1, 2, 4, 2, 4, 6]]},
        {"image_id": 1, "category_id": 3, "bbox": ["1", "x", 3, 4]},
        {
            "image_id": 1,
            "category_id": 3,
            "bbox": [1, 2, 3],
            "iscrowd": 1,
            "segmentation": {"counts": "abc", "size": [30, 40]},
        },
        {"image_id": 1, "category_id": 99, "bbox": [1, 2, 3, 4]},
        {"image_id": 1, "bbox": [1, 2, 3, 4]},
        {"image_id": 1, "category_id": 3},
        {"image_id": 42, "category_id": 3, "bbox": [5, 5, 5, 5]},
    ]
    doc = coco([(1, "a.png", 40, 30), (2, "empty.png", 40, 30)], annotations, [(7, "zebra"), (3, "ant")])
    doc["annotations"].append({"id": 100, "image_id": 1, "category_id": 3, "bbox": [1, 2, float("nan"), 4]})
    (tmp_path / "x.json").write_text(json.dumps(doc))  # NaN as JSON's NaN literal
    raw = read_coco(tmp_path / "x.json")
    assert raw.classes == ["ant", "zebra"]
    a, empty = raw.images
    assert (a.width, a.height, a.box_format, a.source) == (40, 30, "xywh", "x.json") and empty.boxes == []
    got = [(b.values, b.label, b.crowd, b.label_text) for b in a.boxes]
    assert got[:6] == [
        ((1, 2, 3, 4), 1, False, ""),
        (("1", "x", 3, 4), 0, False, ""),
        ((1, 2, 3), 0, True, ""),
        ((1, 2, 3, 4), None, False, "category id 99 is not among the categories"),
        ((1, 2, 3, 4), None, False, "no category_id"),
        ((), 0, False, ""),
    ]
    assert math.isnan(a.boxes[6].values[2])
    assert [(p.reason, p.file, p.box) for p in raw.report.problems] == [(Reason.malformed, "x.json", [5, 5, 5, 5])]
    assert "image_id 42" in raw.report.problems[0].detail


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"images": [}', r"not valid JSON: line 1 column 13"),
        ('{"images": [],\n "annotations": [],\n "categories": [,]}', r"not valid JSON: line 3 column 17"),
        ("[1, 2]", "the top level is a JSON list"),
        ('{"images": [], "annotations": []}', "no 'categories' key"),
        ('{"images": {}, "annotations": [], "categories": []}', "'images' is a JSON object, not a list"),
        ('{"images": [{"id": 1}], "annotations": [], "categories": []}', r"images\[0\] has no 'file_name'"),
        ('{"images": [{"id": [1], "file_name": "a"}], "annotations": [], "categories": []}', r"images\[0\].id must be"),
        (
            '{"images": [], "annotations": [], "categories": [{"id": "1", "name": "a"}]}',
            r"categories\[0\].id must be an integer",
        ),
        ('{"images": [], "annotations": [], "categories": [{"id": 1}]}', r"categories\[0\] has no 'name'"),
        ('{"images": [], "annotations": [7], "categories": []}', r"annotations\[0\] is a JSON integer"),
    ],
)
def test_unreadable_files_raise_naming_the_place(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "bad.json", text)
    with pytest.raises(DatasetError, match=message) as caught:
        read(tmp_path / "bad.json")
    assert caught.value.file == "bad.json"


def test_duplicates_and_disagreeing_files_raise(tmp_path: Path) -> None:
    write_json(tmp_path / "a" / "x.json", coco([], [], [(1, "cat"), (2, "cat")]))
    with pytest.raises(DatasetError, match="the name 'cat' is used by the ids 1 and 2"):
        read(tmp_path / "a" / "x.json")
    write_json(tmp_path / "b" / "x.json", coco([], [], [(1, "cat"), (1, "dog")]))
    with pytest.raises(DatasetError, match="the id 1 appears twice"):
        read(tmp_path / "b" / "x.json")
    write_json(tmp_path / "c" / "x.json", coco([(1, "a.png", 1, 1), (1, "b.png", 1, 1)], [], CATS))
    with pytest.raises(DatasetError, match="images: the id 1 appears twice"):
        read(tmp_path / "c" / "x.json")
    write_json(tmp_path / "d" / "train.json", coco([], [], CATS))
    write_json(tmp_path / "d" / "val.json", coco([], [], [(1, "cat"), (2, "wolf")]))
    with pytest.raises(DatasetError, match="its categories differ from those of train.json") as caught:
        read(tmp_path / "d")
    assert caught.value.file == "val.json"
    (tmp_path / "e.json").write_bytes(b'{"images": [], "annotations": [], "categories": [{"id": 1, "name": "\xff"}]}')
    with pytest.raises(DatasetError, match="not UTF-8"):
        read(tmp_path / "e.json")


# -- against pycocotools ---------------------------------------------------------------------------


def test_same_images_boxes_and_categories_as_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    rng = np.random.default_rng(3)
    images, annotations = [], []
    for i in range(1, 7):
        width, height = int(rng.integers(30, 80)), int(rng.integers(30, 80))
        image(tmp_path / "images" / f"{i:03d}.png", (width, height))
        images.append((i * 10, f"{i:03d}.png", width, height))
        for _ in range(int(rng.integers(0, 4))):
            x, y = float(rng.uniform(0, width - 10)), float(rng.uniform(0, height - 10))
            w, h = float(rng.uniform(1, width - x)), float(rng.uniform(1, height - y))
            annotations.append(
                {"image_id": i * 10, "category_id": int(rng.choice([2, 5, 11])), "bbox": [x, y, w, h],
                 "iscrowd": int(rng.random() < 0.2), "area": w * h}
            )  # fmt: skip
    path = write_json(
        tmp_path / "annotations" / "instances_val.json", coco(images, annotations, [(11, "c"), (2, "a"), (5, "b")])
    )

    index, report = validate(read(path))
    with contextlib.redirect_stdout(io.StringIO()):
        reference = COCO(str(path))
    cat_ids = sorted(reference.getCatIds())
    assert index.classes == [reference.loadCats(c)[0]["name"] for c in cat_ids] == ["a", "b", "c"]
    ours = {Path(r.file).name: r for r in index.images}
    assert sorted(ours) == sorted(img["file_name"] for img in reference.loadImgs(reference.getImgIds()))
    assert (
        report.boxes == len(reference.getAnnIds(iscrowd=False))
        and report.ignored == len(reference.getAnnIds()) - report.boxes
    )

    def xyxy(anns: list[dict[str, Any]]) -> np.ndarray:
        return np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]).reshape(-1, 4)

    for image_id in reference.getImgIds():
        info = reference.loadImgs(image_id)[0]
        record = ours[info["file_name"]]
        assert (record.width, record.height, record.split) == (info["width"], info["height"], "val")
        anns = reference.loadAnns(reference.getAnnIds(imgIds=image_id, iscrowd=False))
        np.testing.assert_allclose(record.boxes, xyxy(anns), atol=1e-4)
        assert record.labels.tolist() == [cat_ids.index(a["category_id"]) for a in anns]
        crowd = reference.loadAnns(reference.getAnnIds(imgIds=image_id, iscrowd=True))
        np.testing.assert_allclose(record.ignore, xyxy(crowd), atol=1e-4)


# -- bounds (issue 21, items 2 and 10) -------------------------------------------------------------


def big_coco(path: Path, images: int, boxes: int, polygon: int = 0) -> Path:
    """A COCO file of ``images`` images (none on disk) and ``boxes`` annotations, each with a
    ``polygon``-point segmentation (real COCO files are mostly polygons)."""
    outline = [round(0.5 * k, 1) for k in range(2 * polygon)]
    annotations = [
        {"image_id": k % images, "category_id": 1, "bbox": [1, 2, 3, 4], "segmentation": [outline]}
        for k in range(boxes)
    ]
    return write_json(path, coco([(i, f"{i}.png", 40, 30) for i in range(images)], annotations, CATS))


def test_an_annotation_file_is_parsed_one_element_at_a_time(tmp_path: Path) -> None:
    """The annotations' polygons are never all in memory: the parse's peak stays below the file's
    size, where json.loads of the whole file took 5-10 times it."""
    import tracemalloc

    path = big_coco(tmp_path / "x.json", images=100, boxes=20_000, polygon=50)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        raw = read_coco(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(len(i.boxes) for i in raw.images) == 20_000 and size > 8_000_000
    assert peak < size, (peak, size)


def test_limits_refuse_a_large_file_before_parsing_and_name_the_setting(tmp_path: Path) -> None:
    from ssd.datasets.limits import ImportLimits

    path = big_coco(tmp_path / "x.json", images=3, boxes=5)
    size = path.stat().st_size
    path.write_text(path.read_text()[:-1])  # no longer JSON: a parse would fail differently
    limits = ImportLimits(annotation_bytes=size - 10, images=10, boxes=10, names={"annotation_bytes": "--max-x"})
    refused = rf"{size - 1} bytes.* over the limit of {size - 10} bytes.*\(--max-x\)"
    with pytest.raises(DatasetError, match=refused) as caught:
        read(path, limits=limits)
    assert caught.value.file == "x.json"
    big_coco(path, images=3, boxes=5)
    read(path, limits=ImportLimits(annotation_bytes=size, images=3, boxes=5))
    with pytest.raises(DatasetError, match=r"more than 2 images.*SSDBOARD_MAX_DATASET_IMAGES"):
        read(path, limits=ImportLimits(images=2, names={"images": "SSDBOARD_MAX_DATASET_IMAGES"}))
    with pytest.raises(DatasetError, match=r"more than 4 boxes"):
        read(path, limits=ImportLimits(boxes=4))


def test_limits_count_every_file_of_a_folder(tmp_path: Path) -> None:
    from ssd.datasets.limits import ImportLimits

    big_coco(tmp_path / "train.json", images=3, boxes=5)
    big_coco(tmp_path / "val.json", images=3, boxes=5)
    read(tmp_path, limits=ImportLimits(images=6, boxes=10))
    with pytest.raises(DatasetError, match=r"val.json: more than 5 images") as caught:
        read(tmp_path, limits=ImportLimits(images=5))
    assert caught.value.file == "val.json"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{'images': [], 'annotations': [], 'categories': []}", r"not valid JSON: line 1 column 2 \(Expecting prop"),
        ("", r"not valid JSON: line 1 column 1 \(Expecting value"),
    ],
)
def test_an_unparseable_json_in_a_folder_is_named_with_its_error(tmp_path: Path, text: str, message: str) -> None:
    """A COCO file that is not JSON (a Python dict's repr, an empty file) was 'no dataset found'."""
    image(tmp_path / "images" / "a.png")
    write(tmp_path / "annotations" / "instances_train.json", text)
    with pytest.raises(DatasetError, match=message) as caught:
        read(tmp_path)
    assert caught.value.file == "annotations/instances_train.json"
