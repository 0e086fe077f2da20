"""Real-world layouts (dataset_layouts.py): each detected as its format and imported through the
CLI, detected or named, with the counts worked out by hand; where VOC images are looked up; what
keeps one format from being taken for another; the error that lists what a folder holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dataset_layouts import LAYOUTS, Layout, voc, voc_lowercase, voc_split_folders, yolo_labelimg
from dataset_writers import coco, image, write, write_json

from ssd.cli import main
from ssd.datasets.records import DatasetError
from ssd.datasets.report import Reason
from ssd.datasets.sources import detect_format, read
from ssd.datasets.validate import validate
from ssd.datasets.voc_layout import MAX_DEPTH


@pytest.mark.parametrize("layout", LAYOUTS, ids=[layout.id for layout in LAYOUTS])
def test_each_layout_imports_through_the_cli(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / layout.id
    layout.write(src)
    assert detect_format(src) == layout.format
    monkeypatch.setenv("SSDBOARD_DATA_DIR", str(tmp_path / "data"))
    for fmt in ("auto", layout.format):
        argv = ["datasets", "import", str(src), "--format", fmt, "--name", f"{layout.id}-{fmt}", "--json"]
        assert main(argv) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["format"] == layout.format
        assert (result["images"], result["boxes"], result["classes"]) == (layout.images, layout.boxes, layout.classes)
        assert {reason: n for reason, n in result["dropped"]["images"].items() if n} == layout.dropped
        assert not any(result["dropped"]["boxes"].values())
        if layout.splits is None:
            assert sum(result["splits"].values()) == layout.images  # split at import
        else:
            assert result["splits"] == layout.splits


def test_where_voc_images_are_found(tmp_path: Path) -> None:
    """<filename> in another case, or with another suffix (by the stem); <path>'s base name
    alone; the split folders of annotations/ mirrored under images/."""
    voc_lowercase(tmp_path / "raccoon")
    assert [i.file for i in read(tmp_path / "raccoon").images] == [
        "images/raccoon-1.jpg",
        "images/raccoon-2.jpg",  # <filename>Raccoon-2.JPG</filename>
        "images/raccoon-3.jpg",  # <filename>raccoon-3.png</filename>
    ]
    voc_split_folders(tmp_path / "split")
    assert [(i.file, i.source, i.split) for i in read(tmp_path / "split").images] == [
        ("images/train/1.jpg", "annotations/train/1.xml", "train"),
        ("images/train/2.jpg", "annotations/train/2.xml", "train"),
        ("images/val/1.jpg", "annotations/val/1.xml", "val"),
    ]
    labelimg = tmp_path / "labelimg"
    image(labelimg / "IMG_1.JPG")
    voc(labelimg, "renamed.xml", None, ("cat", (2, 3, 20, 25)), path="/home/ann/Pictures/img_1.jpg")
    assert [i.file for i in read(labelimg).images] == ["IMG_1.JPG"]


def test_a_name_that_matches_nothing_is_a_missing_image(tmp_path: Path) -> None:
    voc_lowercase(tmp_path)
    voc(tmp_path, "annotations/gone.xml", "gone.jpg", ("raccoon", (2, 3, 20, 25)))
    voc(tmp_path, "annotations/nameless.xml", None, ("raccoon", (2, 3, 20, 25)))
    raw = read(tmp_path)
    assert [i.file for i in raw.images if "gone" in i.file] == ["images/gone.jpg"]  # validation reports it
    (problem,) = raw.report.problems  # the reader reports the XML that names no image at all
    assert (problem.reason, problem.file) == (Reason.missing_image, "annotations/nameless.xml")
    assert "images/, annotations/, ./" in problem.detail
    index, report = validate(raw)
    assert report.counts[Reason.missing_image] == 2 and len(index.images) == 3


def test_voc_years_side_by_side_keep_their_own_splits(tmp_path: Path) -> None:
    """A VOCdevkit folder: each year's ImageSets/Main splits its own images."""
    for year, stem, split in (("VOC2007", "000001", "train"), ("VOC2012", "2008_000002", "val")):
        image(tmp_path / year / "JPEGImages" / f"{stem}.jpg")
        voc(tmp_path / year, f"Annotations/{stem}.xml", f"{stem}.jpg", ("cat", (2, 3, 20, 25)))
        write(tmp_path / year / "ImageSets" / "Main" / f"{split}.txt", f"{stem}\n")
    assert [(i.file, i.split) for i in read(tmp_path).images] == [
        ("VOC2007/JPEGImages/000001.jpg", "train"),
        ("VOC2012/JPEGImages/2008_000002.jpg", "val"),
    ]


def test_voc_is_searched_three_levels_down_and_no_further(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d"] * MAX_DEPTH)
    voc(deep, "a.xml", "a.jpg", ("cat", (2, 3, 20, 25)))
    assert detect_format(tmp_path) == "voc"
    (deep / "e").mkdir()
    (deep / "a.xml").rename(deep / "e" / "a.xml")
    with pytest.raises(DatasetError, match="no dataset found"):
        detect_format(tmp_path)


def test_other_tools_files_do_not_add_a_format(tmp_path: Path) -> None:
    """CVAT's annotations.xml (<annotations>) beside COCO; a VOC set shipping a classes.txt; a
    hidden folder of VOC XML in a YOLO dataset."""
    cvat = tmp_path / "cvat"
    image(cvat / "images" / "a.jpg")
    write_json(cvat / "annotations" / "instances_default.json", coco([(1, "a.jpg", 40, 30)], [], [(1, "cat")]))
    write(cvat / "annotations.xml", '<?xml version="1.0"?>\n<annotations><version>1.1</version></annotations>')
    assert detect_format(cvat) == "coco"
    kaggle = tmp_path / "kaggle"
    voc_lowercase(kaggle)
    write(kaggle / "classes.txt", "raccoon\n")
    write(kaggle / "ImageSets" / "Main" / "train.txt", "raccoon-1\n")
    assert detect_format(kaggle) == "voc"
    labelimg = tmp_path / "labelimg"
    yolo_labelimg(labelimg)
    voc(labelimg / ".backup", "dog1.xml", "dog1.jpg", ("dog", (2, 3, 20, 25)))
    assert detect_format(labelimg) == "yolo"
    voc(labelimg, "dog1.xml", "dog1.jpg", ("dog", (2, 3, 20, 25)))  # labelImg saved both: truly both
    with pytest.raises(DatasetError, match=r"more than one format found: VOC \(\*\.xml\); YOLO \(classes.txt\)"):
        detect_format(labelimg)
    assert read(labelimg, "yolo").classes == ["dog", "person"] and len(read(labelimg, "voc").images) == 1


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"classes.txt": "a\n\nb\n"}, "classes.txt: line 2 is blank: class 1 has no name"),
        ({"classes.txt": "\n\n"}, "classes.txt: names no class"),
        ({"classes.txt": "a\nb\n", "labels/classes.txt": "b\na\n"}, "labels/classes.txt: names other classes than"),
        ({"classes.txt": "a\na\n"}, "names: a named more than once"),
    ],
)
def test_bad_class_lists(tmp_path: Path, files: dict[str, str], message: str) -> None:
    image(tmp_path / "images" / "x.jpg")
    write(tmp_path / "labels" / "x.txt", "0 0.5 0.5 0.2 0.2\n")
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(DatasetError, match=message):
        read(tmp_path)


def test_darknet_class_lists_name_the_classes(tmp_path: Path) -> None:
    """Roboflow's YOLO Darknet export: _darknet.labels in each split folder, labels beside."""
    for split in ("train", "valid"):
        image(tmp_path / split / f"{split}.jpg")
        write(tmp_path / split / f"{split}.txt", "1 0.5 0.5 0.2 0.2\n")
        write(tmp_path / split / "_darknet.labels", "car\ntruck\n")
    raw = read(tmp_path)
    assert raw.format == "yolo" and raw.classes == ["car", "truck"]
    assert [(i.file, i.split, i.boxes[0].label) for i in raw.images] == [
        ("train/train.jpg", "train", 1),
        ("valid/valid.jpg", "val", 1),
    ]


def test_labelimg_saving_into_an_images_folder(tmp_path: Path) -> None:
    """labelImg saves its .txt files and classes.txt into the folder it opened: images/ here, where
    Ultralytics' rule (images/ -> labels/) finds nothing; the label beside the image counts."""
    image(tmp_path / "images" / "a.jpg")
    image(tmp_path / "images" / "b.jpg")
    write(tmp_path / "images" / "a.txt", "1 0.5 0.5 0.2 0.2\n")
    write(tmp_path / "images" / "classes.txt", "cat\ndog\n")
    raw = read(tmp_path)
    assert (raw.format, raw.classes) == ("yolo", ["cat", "dog"])
    assert [(i.file, i.source, len(i.boxes)) for i in raw.images] == [
        ("images/a.jpg", "images/a.txt", 1),
        ("images/b.jpg", "images/b.jpg", 0),
    ]


def test_nothing_found_lists_what_the_folder_holds(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    write(tmp_path / ("x" * 60 + ".txt"), "")
    write(tmp_path / "evil\nname.txt", "")
    for k in range(8):
        write(tmp_path / f"note{k}.md", "")
    write(tmp_path / ".DS_Store", "")
    with pytest.raises(DatasetError) as caught:
        detect_format(tmp_path)
    assert caught.value.message.split("; ")[-1] == (
        "the folder holds 'evil\\nname.txt', 'note0.md', 'note1.md', 'note2.md', 'note3.md', 'note4.md',"
        " 'note5.md', 'note6.md' and 3 more"  # note7.md, photos/, xxx...: by name after the first eight
    )
    for fmt, looked_for in (("voc", "no Pascal VOC annotations"), ("yolo", "no data.yaml"), ("coco", "no COCO")):
        with pytest.raises(DatasetError, match=looked_for) as caught:
            read(tmp_path / "photos", fmt)  # type: ignore[arg-type]
        assert caught.value.message.endswith("the folder is empty")
    for name in ("a", "b"):
        write(tmp_path / "few" / name, "")
    (tmp_path / "few" / "sub").mkdir()
    (tmp_path / "few" / ("y" * 50)).mkdir()
    with pytest.raises(DatasetError) as caught:
        detect_format(tmp_path / "few")
    assert caught.value.message.endswith(f"the folder holds 'a', 'b', 'sub/', '{'y' * 40}...'")
