"""Names read from annotation files follow the rule of names given to the API, in every format: a
class name with a control character, a bidirectional control or a lone surrogate fails the import
naming it; an image whose file name has one is dropped (``bad_file_name``). Nothing the dataset
wrote reaches the report or the terminal unescaped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dataset_writers import coco, image, voc_xml, write, write_json

from ssd.cli import main
from ssd.datasets.records import DatasetError
from ssd.datasets.report import Reason
from ssd.datasets.sources import read
from ssd.datasets.validate import validate

BOX = {"image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10]}


def coco_dataset(root: Path, files: list[str], classes: tuple[str, ...] = ("cat",)) -> Path:
    """A COCO file naming ``files`` (40x30 each; only those without a lone surrogate exist)."""
    for name in files:
        if all(0xD800 > ord(ch) or ord(ch) > 0xDFFF for ch in name):
            image(root / name)
    entries = [(k + 1, name, 40, 30) for k, name in enumerate(files)]
    categories = [(k + 1, name) for k, name in enumerate(classes)]
    return write_json(root / "ann.json", coco(entries, [BOX], categories))  # json.dumps escapes "\ud800"


def test_a_coco_file_name_with_a_lone_surrogate_or_an_rlo_drops_that_image(tmp_path: Path) -> None:
    """The probe's ``file_name`` imported ready; then every answer that showed it failed to encode."""
    coco_dataset(tmp_path, ["ok.png", "\ud800.png", "a\u202egnp.png"])
    index, report = validate(read(tmp_path))
    assert [r.file for r in index.images] == ["ok.png"]
    assert report.counts[Reason.bad_file_name] == 2
    dropped = [p for p in report.problems if p.reason == Reason.bad_file_name]
    assert [(p.file, p.image) for p in dropped] == [("ann.json", "\\ud800.png"), ("ann.json", "a\\u202egnp.png")]
    assert "lone surrogate" in dropped[0].detail and "bidirectional" in dropped[1].detail
    json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")


def test_file_names_on_disk_that_are_not_utf8_or_hold_controls_drop_the_image(tmp_path: Path) -> None:
    """YOLO finds its images by listing folders: a name of bytes that are not UTF-8 comes back with
    surrogates (``\\udcff``), one with a tab as it is."""
    folder = tmp_path / "images" / "train"
    for name in ("ok.png", os.fsdecode(b"\xff.png"), "tab\there.png"):
        image(folder / name)
    write(tmp_path / "data.yaml", "train: images/train\nval: images/train\nnames: [cat]\n")
    index, report = validate(read(tmp_path))
    assert [r.file for r in index.images] == ["images/train/ok.png"]
    images = sorted(p.image or "" for p in report.problems if p.reason == Reason.bad_file_name)
    assert images == ["images/train/\\udcff.png", "images/train/tab\\there.png"]


@pytest.mark.parametrize(
    "name",
    ["c\x00a\u202et", "\u202ecat", "cat\ud800", "tab\tcat", "", "x" * 201],
    ids=["nul-and-rlo", "rlo", "surrogate", "tab", "blank", "too-long"],
)
def test_a_bad_class_name_fails_a_coco_import_naming_it(tmp_path: Path, name: str) -> None:
    coco_dataset(tmp_path, ["ok.png"], ("dog", name))
    with pytest.raises(DatasetError, match=r"class 1 .*: a class name has 1 to 200 characters") as caught:
        read(tmp_path)
    assert caught.value.file == "ann.json" and len(str(caught.value)) < 500
    assert str(caught.value).isprintable()


def test_a_bad_class_name_fails_yolo_and_voc_imports_naming_the_file(tmp_path: Path) -> None:
    yolo = tmp_path / "yolo"
    image(yolo / "images" / "a.png")
    write(yolo / "data.yaml", 'train: images\nval: images\nnames: [cat, "d\\u202eog"]\n')
    with pytest.raises(DatasetError, match=r"class 1 'd\\u202eog' holds a bidirectional control") as caught:
        read(yolo)
    assert caught.value.file == "data.yaml"
    voc = tmp_path / "voc"
    image(voc / "JPEGImages" / "a.jpg")
    write(voc / "Annotations" / "a.xml", voc_xml("a.jpg", [("cat", (1, 1, 9, 9), 0), ("d\u202eog", (2, 2, 9, 9), 0)]))
    with pytest.raises(DatasetError, match=r"'d\\u202eog' holds a bidirectional control") as caught:
        read(voc)
    assert caught.value.file == "Annotations/a.xml"


def test_the_command_line_prints_a_bad_file_name_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``datasets import`` and ``show`` crashed with a UnicodeEncodeError traceback (pytest's
    capture encodes as UTF-8, as a terminal does)."""
    monkeypatch.setenv("SSDBOARD_DATA_DIR", str(tmp_path / "data"))
    coco_dataset(tmp_path / "src", ["ok.png", "\ud800.png"])
    assert main(["datasets", "import", str(tmp_path / "src"), "--name", "probe"]) == 0
    assert main(["datasets", "show", "probe"]) == 0
    assert main(["datasets", "import", str(tmp_path / "src"), "--name", "probe2", "--json"]) == 0
    out = capsys.readouterr().out
    assert "bad_file_name" in out and "\\ud800.png" in out
