"""``ssdboard datasets ...`` in-process: the ``--json`` contract, the readable report, errors that
exit 2 naming the file or the option, ``--data-dir`` and ``SSDBOARD_DATA_DIR``."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from dataset_faults import make_broken

from ssd.cli import main
from ssd.datasets.export import export_generator

CONTRACT_KEYS = {"id", "name", "format", "images", "boxes", "classes", "splits", "dropped", "problems"}


def ok(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "ssdboard: error: " in err
    return err.strip().splitlines()[-1]


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data directory, through SSDBOARD_DATA_DIR (commands without --data-dir use it)."""
    monkeypatch.setenv("SSDBOARD_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def readers() -> None:
    pytest.importorskip("ssd.datasets.sources")


def imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str = "coco", name: str = "digits"
) -> dict[str, Any]:
    src = export_generator(tmp_path / f"src-{name}", fmt, images=10, val_fraction=0.2)  # type: ignore[arg-type]
    result: dict[str, Any] = json.loads(ok(["datasets", "import", str(src), "--name", name, "--json"], capsys))
    return result


@pytest.mark.usefixtures("readers")
def test_import_json_contract(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = imported(tmp_path, capsys, "yolo")
    assert set(result) >= CONTRACT_KEYS
    assert (result["name"], result["format"], result["images"]) == ("digits", "yolo", 10)
    assert result["classes"] == [str(d) for d in range(10)] and result["splits"] == {"train": 8, "val": 2}
    assert set(result["dropped"]) == {"images", "boxes"} and result["problems"] == []
    assert all(n == 0 for group in result["dropped"].values() for n in group.values())
    assert (data / "datasets" / result["id"] / "index.json").is_file()


@pytest.mark.usefixtures("readers")
def test_import_prints_the_report_as_a_table(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = make_broken(tmp_path / "voc", "voc")
    out = ok(["datasets", "import", str(broken.root), "--name", "bad"], capsys)
    lines = out.splitlines()
    assert lines[0].startswith("imported 'bad' as ") and "(voc): 12 images" in lines[0]
    counts = lines[3 : lines.index("", 2)]  # the table after its header, up to the blank line
    table = {line.split()[-2]: int(line.split()[-1]) for line in counts}
    assert table == {reason.value: n for reason, n in broken.counts.items()}
    assert "size_mismatch" in out and "unknown_class" in out and "problems" in out
    assert "Annotations/train_05.xml" in out and "JPEGImages/train_01.png" in out
    assert f"full report: {data / 'datasets'}" in out and "outside_image" in out and " 0\n" not in out
    as_json = json.loads(ok(["datasets", "show", "bad", "--json"], capsys))
    assert len(as_json["problems"]) == sum(broken.counts.values())
    assert all(set(p) >= {"file", "reason"} for p in as_json["problems"])


@pytest.mark.usefixtures("readers")
def test_import_errors(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "upload.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    assert "SRC: " in (err := fails(["datasets", "import", str(bad)], capsys)) and "upload.zip" in err
    json_file = tmp_path / "instances.json"
    json_file.write_text('{"images": [}')
    err = fails(["datasets", "import", str(json_file), "--format", "coco"], capsys)
    assert err.startswith("ssdboard: error: SRC: ") and "instances.json" in err
    zipped = tmp_path / "nothing.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("readme.txt", "no dataset here")
    assert "SRC: " in fails(["datasets", "import", str(zipped)], capsys)
    assert fails(["datasets", "import", str(tmp_path / "nope")], capsys).endswith("nope: no such file or directory")
    imported(tmp_path, capsys)
    src = tmp_path / "src-digits"
    assert "option --name" in fails(["datasets", "import", str(src), "--name", "digits"], capsys)
    ok(["datasets", "import", str(src)], capsys)  # named 'src-digits' after its folder
    err = fails(["datasets", "import", str(src)], capsys)
    assert err.startswith("ssdboard: error: SRC: ") and "'src-digits' exists already" in err and "--name" in err
    assert "option --val-fraction" in fails(["datasets", "import", str(src), "--val-fraction", "1.5"], capsys)
    assert len([p for p in (data / "datasets").iterdir() if p.name != ".lock"]) == 2  # no temporary directory


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--max-boxes", "5"], "more than 5 boxes, the limit of one import (--max-boxes): refused"),
        (["--max-images", "9"], "more than 9 images, the limit of one import (--max-images): refused"),
        (["--max-annotation-bytes", "1000"], "over the limit of 1000 bytes for one annotation file (--max-"),
    ],
)
def test_import_limits_are_options_named_in_the_refusal(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    src = export_generator(tmp_path / "src", "coco", images=10, val_fraction=0.2)
    err = fails(["datasets", "import", str(src), *option], capsys)
    assert err.startswith("ssdboard: error: SRC: annotations/instances_") and message in err
    assert "must be at least 1" in fails(["datasets", "import", str(src), "--max-boxes", "0"], capsys)
    ok(["datasets", "import", str(src), "--max-images", "10", "--max-boxes", "100"], capsys)


def test_list_show_remove(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ssd.datasets.records import RawBox, RawDataset, RawImage
    from ssd.datasets.registry import Registry

    (tmp_path / "src").mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "src" / "a.png")
    raw = RawDataset(
        "voc", tmp_path / "src", ["cat"], [RawImage("a.png", "a.xml", "xyxy", [RawBox((1, 1, 40, 9), 0, "a.xml")])]
    )
    meta = Registry(data).import_dataset(tmp_path / "src", name="cats", reader=lambda s, f: raw)
    lines = ok(["datasets", "list"], capsys).splitlines()
    assert lines[0].split() == ["id", "name", "format", "images", "boxes", "classes", "train", "val", "created"]
    assert lines[1].split()[:3] == ["mnist", "mnist", "generator"]
    assert lines[2].split()[:8] == [meta["id"], "cats", "voc", "1", "1", "1", "1", "0"]
    assert [m["id"] for m in json.loads(ok(["datasets", "list", "--json"], capsys))] == ["mnist", meta["id"]]
    shown = ok(["datasets", "show", "cats"], capsys)
    assert f"id       {meta['id']}" in shown and "clipped" in shown and "a.xml" in shown
    as_json = json.loads(ok(["datasets", "show", meta["id"], "--json"], capsys))
    assert set(as_json) >= CONTRACT_KEYS and as_json["dropped"]["boxes"]["outside_image"] == 0
    assert json.loads(ok(["datasets", "show", "mnist", "--json"], capsys))["format"] == "generator"
    assert "mnist" in ok(["datasets", "show", "mnist"], capsys)
    assert fails(["datasets", "remove", "mnist"], capsys).endswith("it cannot be removed")
    assert "no dataset" in fails(["datasets", "show", "dogs"], capsys)
    assert ok(["datasets", "remove", "cats"], capsys).startswith(f"removed {meta['id']}")
    assert [m["id"] for m in json.loads(ok(["datasets", "list", "--json"], capsys))] == ["mnist"]
    other = tmp_path / "other"
    assert "mnist" in ok(["datasets", "list", "--data-dir", str(other)], capsys)


def test_export(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m"
    assert "wrote mnist as voc" in ok(
        ["datasets", "export", "mnist", "--format", "voc", "--out", str(out), "--images", "7"], capsys
    )
    assert len(list((out / "Annotations").iterdir())) == 7
    assert len((out / "ImageSets/Main/val.txt").read_text().split()) == 1
    assert "option --out" in fails(["datasets", "export", "mnist", "--format", "coco", "--out", str(out)], capsys)
    assert "option --images" in fails(
        ["datasets", "export", "mnist", "--format", "coco", "--out", str(tmp_path / "x"), "--images", "0"], capsys
    )
    assert "ID: " in fails(["datasets", "export", "nope", "--format", "coco", "--out", str(tmp_path / "y")], capsys)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.usefixtures("readers")
def test_export_a_registered_dataset(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = imported(tmp_path, capsys, "voc")
    ok(["datasets", "export", first["id"], "--format", "yolo", "--out", str(tmp_path / "y"), "--images", "5"], capsys)
    again = json.loads(ok(["datasets", "import", str(tmp_path / "y"), "--json"], capsys))
    assert again["images"] == 5 and again["classes"] == first["classes"] and again["name"] == "y"
    assert again["splits"]["val"] >= 1


def test_ctrl_c_during_an_import_exits_130(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssd.datasets.registry import Registry

    def interrupted(self: Registry, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Registry, "import_dataset", interrupted)
    (tmp_path / "src").mkdir()
    assert main(["datasets", "import", str(tmp_path / "src")]) == 130
    assert "interrupted: nothing was imported" in capsys.readouterr().err
