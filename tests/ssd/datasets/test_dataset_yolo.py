"""ssd.datasets.yolo: data.yaml variants (Ultralytics, Roboflow, lists), Ultralytics' label rule,
rows as written, label files without images, and a cross-check against globox."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from dataset_writers import image, write

from ssd.datasets.records import DatasetError
from ssd.datasets.report import Reason
from ssd.datasets.sources import read
from ssd.datasets.validate import validate
from ssd.datasets.yolo import find_data_yaml, label_path, read_yolo

ROW = "0 0.5 0.5 0.25 0.5\n"


def files(root: Path) -> list[tuple[str, str, str | None, int]]:
    return [(i.file, i.source, i.split, len(i.boxes)) for i in read_yolo(root).images]


def test_the_ultralytics_layout(tmp_path: Path) -> None:
    for split in ("train", "val"):
        image(tmp_path / "images" / split / f"{split}1.jpg")
        write(tmp_path / "labels" / split / f"{split}1.txt", ROW)
    image(tmp_path / "images" / "train" / "nested" / "bg.png")  # no label file: a background image
    write(
        tmp_path / "data.yaml", "path: ../datasets/coco8\ntrain: images/train\nval: images/val\nnames:\n  0: person\n"
    )
    assert files(tmp_path) == [
        ("images/train/nested/bg.png", "images/train/nested/bg.png", "train", 0),
        ("images/train/train1.jpg", "labels/train/train1.txt", "train", 1),
        ("images/val/val1.jpg", "labels/val/val1.txt", "val", 1),
    ]
    raw = read(tmp_path)
    assert raw.classes == ["person"] and raw.images[1].box_format == "cxcywh_normalized"
    assert raw.images[1].boxes[0].values == (0.5, 0.5, 0.25, 0.5) and raw.images[1].boxes[0].label == 0


def test_the_roboflow_layout(tmp_path: Path) -> None:
    """data.yaml at the top says ../train/images: Ultralytics drops the ../ that leads nowhere."""
    for split in ("train", "valid", "test"):
        image(tmp_path / split / "images" / f"{split}.jpg")
        write(tmp_path / split / "labels" / f"{split}.txt", ROW)
    write(
        tmp_path / "data.yaml",
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\nnames: ['car', 'truck']\n\n"
        "roboflow:\n  workspace: w\n  version: 1\n",
    )
    assert files(tmp_path) == [
        ("train/images/train.jpg", "train/labels/train.txt", "train", 1),
        ("valid/images/valid.jpg", "valid/labels/valid.txt", "val", 1),
        ("test/images/test.jpg", "test/labels/test.txt", "val", 1),
    ]


def test_txt_lists_absolute_paths_and_lists_of_folders(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        image(tmp_path / "images" / f"{name}.jpg")
        write(tmp_path / "labels" / f"{name}.txt", ROW)
    write(tmp_path / "train.txt", "./images/a.jpg\nimages/b.jpg\n\n/elsewhere/c.jpg\n../outside.jpg\n")
    write(tmp_path / "data.yaml", "path: /home/me/data\ntrain: /home/me/data/train.txt\nval: [images]\nnames: [x]\n")
    raw = read_yolo(tmp_path)
    assert [(i.file, i.split) for i in raw.images] == [
        ("images/a.jpg", "train"),
        ("images/b.jpg", "train"),
        ("images/c.jpg", "val"),
    ]
    assert [(p.reason, p.file, p.image) for p in raw.report.problems] == [
        (Reason.missing_image, "train.txt", "/elsewhere/c.jpg"),
        (Reason.missing_image, "train.txt", "../outside.jpg"),
    ]


def test_labels_beside_images_and_the_label_rule() -> None:
    root = Path("/d")
    assert label_path(root / "images" / "train" / "a.b.jpg", root) == (root / "labels" / "train" / "a.b.txt", True)
    assert label_path(root / "x" / "images" / "images" / "a.png", root) == (
        root / "x" / "images" / "labels" / "a.txt",
        True,
    )
    assert label_path(root / "pics" / "a.png", root) == (root / "pics" / "a.txt", False)


def test_rows_pass_as_written(tmp_path: Path) -> None:
    image(tmp_path / "images" / "a.png")
    rows = [
        "1 0.5 0.5 0.2 0.2",
        "",
        "   ",
        "0 0.5 0.5 0.2",
        "0 0.5 0.5 0.2 0.2 0.9",
        "0 0.1 0.1 0.3 0.1 0.3 0.3",
        "2.0 0.5 0.5 0.2 0.2",
        "1.5 0.5 0.5 0.2 0.2",
        "cat 0.5 0.5 0.2 0.2",
        "7 0.5 0.5 0.2 0.2",
        "0 0.5 abc nan 0.2",
    ]
    write(tmp_path / "labels" / "a.txt", "\n".join(rows))
    write(tmp_path / "data.yaml", "train: images\nval: images\nnames: {0: a, 1: b, 2: c}\n")
    (img,) = read_yolo(tmp_path).images
    got = [(b.values, b.label, b.label_text) for b in img.boxes]
    assert got[:8] == [
        ((0.5, 0.5, 0.2, 0.2), 1, ""),
        ((0.5, 0.5, 0.2), 0, ""),
        ((0.5, 0.5, 0.2, 0.2, 0.9), 0, ""),
        ((0.1, 0.1, 0.3, 0.1, 0.3, 0.3), 0, ""),
        ((0.5, 0.5, 0.2, 0.2), 2, ""),
        ((0.5, 0.5, 0.2, 0.2), None, "class '1.5' is not an integer"),
        ((0.5, 0.5, 0.2, 0.2), None, "class 'cat' is not an integer"),
        ((0.5, 0.5, 0.2, 0.2), None, "class 7 is not among the 3 names of data.yaml"),
    ]
    assert got[8][0][:2] == (0.5, "abc") and np.isnan(got[8][0][2])
    assert all(b.source == "labels/a.txt" for b in img.boxes)


def test_a_label_file_without_an_image_is_reported(tmp_path: Path) -> None:
    image(tmp_path / "images" / "train" / "a.png")
    write(tmp_path / "labels" / "train" / "a.txt", ROW)
    write(tmp_path / "labels" / "train" / "gone.txt", ROW + ROW)
    write(tmp_path / "labels" / "train" / "classes.txt", "cat\n")
    write(tmp_path / "labels" / "test" / "other.txt", ROW)  # a split data.yaml does not name
    write(tmp_path / "data.yml", "train: images/train\nval: images/train\nnames: [cat]\n")
    raw = read(tmp_path)
    assert [(p.reason, p.file) for p in raw.report.problems] == [(Reason.missing_image, "labels/train/gone.txt")]
    _, report = validate(raw)
    assert report.counts[Reason.missing_image] == 1 and report.boxes == 1


def test_without_split_keys_images_folders_are_searched(tmp_path: Path) -> None:
    image(tmp_path / "images" / "train" / "a.png")
    image(tmp_path / "images" / "validation" / "b.png")
    image(tmp_path / "images" / "c.png")
    write(tmp_path / "dataset.yaml", "names: [cat]\n")
    assert [(i.file, i.split) for i in read(tmp_path).images] == [
        ("images/c.png", None),
        ("images/train/a.png", "train"),
        ("images/validation/b.png", "val"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("names: [a\ntrain: x", "not valid YAML"),
        ("- a\n- b\n", "not a YAML mapping"),
        ("train: images\nval: images\n", "names must be a list"),
        ("train: images\nval: images\nnames: {zero: a}\n", "the key 'zero' is not a class id"),
        ("train: images\nval: images\nnames: [a, a]\n", "names: a named more than once"),
        ("train: images\nval: images\nnames: [a, null]\n", "class 1 has no usable name"),
        ("train: images\nval: images\nnc: 3\nnames: [a, b]\n", "nc is 3 but names holds 2 classes"),
        ("train: images\nval: nowhere\nnames: [a]\n", "val: 'nowhere' is no folder of images nor .txt list"),
        ("train: ../../etc\nval: images\nnames: [a]\n", "train: '../../etc' is no folder"),
        ("train: images\nval: 3\nnames: [a]\n", "val: expected a path or a list of paths, got 3"),
    ],
)
def test_bad_data_yaml_raises_naming_it(tmp_path: Path, text: str, message: str) -> None:
    image(tmp_path / "images" / "a.png")
    write(tmp_path / "data.yaml", text)
    with pytest.raises(DatasetError, match=message) as caught:
        read(tmp_path, "yolo")
    assert caught.value.file == "data.yaml"


def test_yaml_choice(tmp_path: Path) -> None:
    image(tmp_path / "images" / "a.png")
    write(tmp_path / "a.yaml", "train: images\nval: images\nnames: [a]\n")
    write(tmp_path / "b.yaml", "train: images\nval: images\nnames: [b]\n")
    with pytest.raises(DatasetError, match=r"several YAML files with names \(a.yaml, b.yaml\)"):
        read(tmp_path, "yolo")
    write(tmp_path / "data.yaml", "train: images\nval: images\nnames: [c]\n")
    assert read(tmp_path).classes == ["c"]
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_bytes(b"0 0.5 0.5 \xff 0.1\n")
    with pytest.raises(DatasetError, match="not UTF-8") as caught:
        read(tmp_path)
    assert caught.value.file == "labels/a.txt"


def test_same_boxes_as_globox(tmp_path: Path) -> None:
    from globox import AnnotationSet

    rng = np.random.default_rng(9)
    for i in range(6):
        width, height = int(rng.integers(30, 90)), int(rng.integers(30, 90))
        image(tmp_path / "images" / "train" / f"{i}.png", (width, height))
        rows = []
        for _ in range(int(rng.integers(1, 5))):
            w, h = rng.uniform(0.05, 0.5, 2)
            cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
            rows.append(f"{int(rng.integers(0, 3))} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        write(tmp_path / "labels" / "train" / f"{i}.txt", "\n".join(rows) + "\n")
    write(tmp_path / "data.yaml", "train: images/train\nval: images/train\nnames: [a, b, c]\n")
    index, report = validate(read(tmp_path))
    assert report.counts.total() == 0
    reference = AnnotationSet.from_yolo_darknet(
        tmp_path / "labels" / "train", image_folder=tmp_path / "images" / "train", image_extension=".png"
    )
    ours = {Path(r.file).name: r for r in index.images}
    assert sorted(ours) == sorted(a.image_id for a in reference)
    for ann in reference:
        record = ours[ann.image_id]
        assert (record.width, record.height) == ann.image_size
        np.testing.assert_allclose(record.boxes, [b.ltrb for b in ann.boxes], atol=1e-3)
        assert record.labels.tolist() == [int(b.label) for b in ann.boxes]


def alias_bomb(levels: int = 9) -> str:
    """The probe's data.yaml: ``levels`` nested lists of nine aliases each (9**levels strings once
    expanded: 387 million at 9) and ``names`` pointing at the last."""
    lines = ["a: &a [" + ",".join(["lol"] * 9) + "]"]
    names = "abcdefghijklmnopqrstuvwxyz"
    for k in range(1, levels):
        lines.append(f"{names[k]}: &{names[k]} [{','.join([f'*{names[k - 1]}'] * 9)}]")
    return "\n".join([*lines, f"names: *{names[levels - 1]}", "train: images", "val: images", ""])


def test_a_yaml_alias_bomb_is_refused_at_once_with_a_short_message(tmp_path: Path) -> None:
    """The probe's 388 bytes cost 12.5 s and a 312 MB message (the repr of the expansion)."""
    image(tmp_path / "images" / "a.png")
    write(tmp_path / "data.yaml", alias_bomb())
    assert len(alias_bomb()) < 400
    started = time.process_time()
    with pytest.raises(DatasetError, match="alias") as caught:
        read(tmp_path, "yolo")
    assert time.process_time() - started < 1.0
    assert caught.value.file == "data.yaml" and len(str(caught.value)) < 500


def test_every_yaml_read_refuses_aliases(tmp_path: Path) -> None:
    """A YAML found by its ``names`` is parsed by the same loader: with aliases it is no candidate."""
    image(tmp_path / "images" / "a.png")
    write(tmp_path / "other.yaml", "base: &base [a]\nnames: *base\ntrain: images\nval: images\n")
    assert find_data_yaml(tmp_path) == []
    write(tmp_path / "data.yaml", "names: [a, b]\ntrain: &t images\nval: *t\n")
    with pytest.raises(DatasetError, match="alias"):
        read(tmp_path, "yolo")


@pytest.mark.parametrize(
    "text",
    [
        "names: [[" + ", ".join(["lol"] * 100_000) + "]]\n",  # no alias: as large as the text, still bounded
        "names:\n  ? " + "x" * 100_000 + "\n  : a\n",  # an explicit key: no 1024-character limit
        "names: [a]\nnc: " + "9" * 5000 + "\n",  # past Python's 4300 digits of int -> str
        "names: [a]\ntrain: [" + "[" * 5000 + "]" * 5000 + "]\n",  # deeper than the recursion limit
        "names: [a]\ntrain: " + "y" * 100_000 + "\n",
        "names: [" + ", ".join(f"d{k}, d{k}" for k in range(20_000)) + "]\n",
    ],
    ids=["huge-name", "huge-key", "huge-int", "deep", "huge-path", "many-duplicates"],
)
def test_messages_that_quote_the_yaml_are_bounded(tmp_path: Path, text: str) -> None:
    image(tmp_path / "images" / "a.png")
    write(tmp_path / "data.yaml", "train: images\nval: images\n" + text if "train" not in text else text)
    with pytest.raises(DatasetError) as caught:
        read(tmp_path, "yolo")
    assert caught.value.file == "data.yaml" and len(str(caught.value)) < 500
