"""The dataset registry: the on-disk layout, atomic imports, names and ids, the ``mnist`` entry, and
the stratified split (worked by hand). The readers are replaced by hand-made raw records here;
``test_dataset_export.py`` runs the real readers on exported datasets."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssd.datasets.records import DatasetError, RawBox, RawDataset, RawImage, Split
from ssd.datasets.registry import (
    BuiltInDataset,
    DatasetNotFound,
    NameTaken,
    Registry,
    RegistryError,
)
from ssd.datasets.splits import assign_splits, choose_val, val_target

CLASSES = ["cat", "dog", "bird"]


def make_raw(
    root: Path, specs: list[tuple[str, list[int], Split | None]], size: tuple[int, int] = (40, 30)
) -> RawDataset:
    """A VOC-like raw dataset under ``root``: one PNG per spec ``(file, labels, split)``, one
    pixel ``xyxy`` box per label."""
    images = []
    for file, labels, split in specs:
        path = root / file
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (10, 20, 30)).save(path)
        boxes = [
            RawBox((1 + k, 2, 10.25 + k, 12.5), label, f"ann/{Path(file).stem}.xml") for k, label in enumerate(labels)
        ]
        images.append(RawImage(file, f"ann/{Path(file).stem}.xml", "xyxy", boxes, size[0], size[1], split))
    return RawDataset("voc", root, list(CLASSES), images)


def reader_of(raw: RawDataset):  # type: ignore[no-untyped-def]
    return lambda src, fmt: raw


def entries(registry: Registry) -> list[str]:
    return sorted(p.name for p in registry.root.iterdir() if p.name != ".lock")


@pytest.fixture
def raw(tmp_path: Path) -> RawDataset:
    specs: list[tuple[str, list[int], Split | None]] = [(f"img/{i}.png", [i % 3], None) for i in range(10)]
    specs.append(("img/broken.png", [0], None))
    data = make_raw(tmp_path / "src", specs)
    (tmp_path / "src" / "img" / "broken.png").write_bytes(b"not a png")
    return data


def test_import_writes_the_layout_and_reads_back(tmp_path: Path, raw: RawDataset) -> None:
    registry = Registry(tmp_path / "data")
    seen: list[tuple[int, int, str]] = []
    meta = registry.import_dataset(
        tmp_path / "src", name="pets", reader=reader_of(raw), progress=lambda *a: seen.append(a)
    )
    assert set(meta) >= {"id", "name", "format", "created", "status", "classes", "counts", "splits"}
    assert (meta["name"], meta["format"], meta["status"], meta["classes"]) == ("pets", "voc", "ready", CLASSES)
    assert meta["counts"] == {"images": 10, "boxes": 10, "ignored": 0}
    assert meta["splits"] == {"train": 7, "val": 3}  # 10%, but each of the 3 classes is validated
    folder = registry.root / meta["id"]
    assert {p.name for p in folder.iterdir()} == {"meta.json", "index.json", "report.json", "images"}
    assert json.loads((folder / "meta.json").read_text()) == meta
    index = registry.index(meta["id"])
    assert [r.file for r in index.images] == [f"images/img/{i}.png" for i in range(10)]
    assert all((folder / r.file).is_file() for r in index.images)
    assert not (folder / "images" / "img" / "broken.png").exists()  # dropped images are not copied
    np.testing.assert_allclose(index.images[0].boxes, [[1, 2, 10.25, 12.5]])
    report = registry.report("pets")
    assert report.dropped()["images"]["unreadable_image"] == 1 and report.problems[0].file == "img/broken.png"
    assert registry.get(meta["id"]) == registry.get("pets") == meta
    assert [m["id"] for m in registry.list()] == ["mnist", meta["id"]]
    assert {stage for _, _, stage in seen} == {"read", "check", "copy", "write", "done"}
    assert seen[-1] == (1, 1, "done") and (raw.root / "img" / "0.png").exists()  # a folder is copied, not moved


def test_ids_are_short_hex_and_names_unique(tmp_path: Path, raw: RawDataset) -> None:
    registry = Registry(tmp_path / "data")
    first = registry.import_dataset(tmp_path / "src", reader=reader_of(raw))
    assert first["name"] == "src"  # the source's name by default
    with pytest.raises(NameTaken, match="exists already"):
        registry.import_dataset(tmp_path / "src", reader=reader_of(raw))
    second = registry.import_dataset(tmp_path / "src", name="src-2", reader=reader_of(raw))
    for meta in (first, second):
        assert len(meta["id"]) == 12 and int(meta["id"], 16) >= 0
    assert first["id"] != second["id"]
    assert entries(registry) == sorted([first["id"], second["id"]])
    for bad in ("mnist", "MNIST", "", "  ", "a\nb", "x" * 101):
        with pytest.raises(RegistryError):
            registry.import_dataset(tmp_path / "src", name=bad, reader=reader_of(raw))
    with pytest.raises(RegistryError, match="val_fraction"):
        registry.import_dataset(tmp_path / "src", name="f", val_fraction=1.0, reader=reader_of(raw))
    assert entries(registry) == sorted([first["id"], second["id"]])


def test_two_threads_importing_one_name_register_it_once(tmp_path: Path, raw: RawDataset) -> None:
    registry = Registry(tmp_path / "data")
    results: list[str] = []

    def slow_reader(src: Path, fmt: str) -> RawDataset:
        time.sleep(0.2)  # both pass the early name check before either commits
        return raw

    def run() -> None:
        try:
            registry.import_dataset(tmp_path / "src", name="same", reader=slow_reader)
            results.append("ok")
        except NameTaken:
            results.append("taken")

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "taken"]
    assert len(entries(registry)) == 1  # and no temporary directory


@pytest.mark.parametrize("fault", [DatasetError("ann.json", "bad JSON"), RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("stage", ["read", "check", "copy", "write"])
def test_a_failure_at_any_stage_leaves_nothing(
    tmp_path: Path, raw: RawDataset, fault: BaseException, stage: str
) -> None:
    registry = Registry(tmp_path / "data")

    def progress(done: int, total: int, at: str) -> None:
        if at == stage and done > 0:
            raise fault

    with pytest.raises(type(fault)):
        registry.import_dataset(tmp_path / "src", reader=reader_of(raw), progress=progress)
    assert entries(registry) == []
    assert [m["id"] for m in registry.list()] == ["mnist"]


def test_a_reader_that_raises_leaves_nothing(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "data")

    def reader(src: Path, fmt: str) -> RawDataset:
        (registry.root / next(p.name for p in registry.root.iterdir() if p.name.startswith(".tmp-")) / "x").write_text(
            ""
        )
        raise DatasetError("annotations/instances_train.json", "line 3: Expecting value")

    with pytest.raises(DatasetError, match="instances_train.json"):
        registry.import_dataset(tmp_path, reader=reader)
    assert entries(registry) == []


def test_sweep_removes_abandoned_temporary_directories_only(tmp_path: Path, raw: RawDataset) -> None:
    registry = Registry(tmp_path / "data")
    registry.root.mkdir(parents=True)
    old, fresh = registry.root / ".tmp-old", registry.root / ".tmp-fresh"
    for folder in (old, fresh):
        folder.mkdir()
        (folder / ".importing").write_text("")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    (registry.root / ".trash-x").mkdir()
    assert sorted(registry.sweep()) == [".tmp-old", ".trash-x"]
    assert entries(registry) == [".tmp-fresh"]


def test_mnist_is_virtual_and_permanent(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "data")
    (mnist,) = registry.list()
    assert mnist == registry.get("mnist")
    assert (mnist["id"], mnist["format"], mnist["classes"]) == ("mnist", "generator", [str(d) for d in range(10)])
    with pytest.raises(BuiltInDataset):
        registry.remove("mnist")
    with pytest.raises(BuiltInDataset):
        registry.index("mnist")
    assert registry.report("mnist").problems == []
    assert not (tmp_path / "data").exists()  # reading creates nothing


def test_remove(tmp_path: Path, raw: RawDataset) -> None:
    registry = Registry(tmp_path / "data")
    meta = registry.import_dataset(tmp_path / "src", name="gone", reader=reader_of(raw))
    assert registry.remove("gone")["id"] == meta["id"]
    assert entries(registry) == []
    for ident in (meta["id"], "gone", "0123456789ab"):
        with pytest.raises(DatasetNotFound):
            registry.get(ident)
        with pytest.raises(DatasetNotFound):
            registry.remove(ident)


def test_the_datasets_own_split_is_kept_else_a_seeded_one(tmp_path: Path) -> None:
    own = make_raw(tmp_path / "own", [("a.png", [0], "train"), ("b.png", [1], "val"), ("c.png", [2], None)])
    registry = Registry(tmp_path / "data")
    meta = registry.import_dataset(tmp_path / "own", reader=reader_of(own))
    assert [r.split for r in registry.index(meta["id"]).images] == ["train", "val", "train"]
    assert meta["split_from"] == "dataset"
    only_train = make_raw(tmp_path / "t", [(f"{i}.png", [i % 2], "train") for i in range(6)])
    splits = []
    for seed in (0, 0, 1, 2, 3):
        meta = registry.import_dataset(
            tmp_path / "t", name=f"t{len(splits)}", seed=seed, val_fraction=0.3, reader=reader_of(only_train)
        )
        splits.append([r.split for r in registry.index(meta["id"]).images])
        assert meta["splits"] == {"train": 4, "val": 2}
    assert splits[0] == splits[1] and len({tuple(s) for s in splits}) > 1  # seeded, and the seed matters


def test_stratified_split_by_hand() -> None:
    """Ten images. Class 1 ("B") is in images 8 and 9 only; class 2 ("C") in image 9 only, and
    class 0 ("A") in images 0-8. C's single image must train, so B's validation image is 8, which
    also covers A: with 10% (one image) the split is exactly {8}, whatever the seed. With 30%
    (three), two more come from 0-7, never 9."""
    classes_of = [{0}] * 8 + [{0, 1}, {1, 2}]
    for seed in range(20):
        assert choose_val(classes_of, 0.1, seed=seed) == {8}
        val = choose_val(classes_of, 0.3, seed=seed)
        assert len(val) == 3 and 8 in val and 9 not in val
    # Five classes in ten one-class images (two each) and a 10% split: one image would leave four
    # classes unvalidated, so each class sends one image (five), one per class.
    pairs = [{k // 2} for k in range(10)]
    val = choose_val(pairs, 0.1, seed=3)
    assert sorted(next(iter(pairs[i])) for i in val) == [0, 1, 2, 3, 4]
    # A class whose two images both hold a single-image class: it is validated anyway (the rule
    # guarantees every class of 2+ images a validation image), taking one of those.
    assert len(choose_val([{0, 1}, {0, 2}, set(), set()], 0.25, seed=0) & {0, 1}) == 1


def test_val_target_and_assign_splits(tmp_path: Path) -> None:
    assert [val_target(n, 0.1) for n in (0, 1, 2, 10, 14, 15, 100)] == [0, 0, 1, 1, 1, 2, 10]
    assert val_target(10, 0.0) == 0 and val_target(3, 0.9) == 2
    raw = make_raw(tmp_path, [(f"{i}.png", [0], None) for i in range(4)])
    from ssd.datasets.validate import validate

    index, _ = validate(raw)
    assign_splits(index.images, 0.5, seed=0)
    assert sorted(r.split for r in index.images) == ["train", "train", "val", "val"]


def test_report_json_is_strict_json_with_nan_boxes(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "src", [("a.png", [0], None), ("b.png", [1], None)])
    raw.images[0].boxes.append(RawBox((float("nan"), 1, 2, 3), 0, "ann/a.xml"))
    registry = Registry(tmp_path / "data")
    meta = registry.import_dataset(tmp_path / "src", reader=reader_of(raw))
    text = (registry.root / meta["id"] / "report.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data["dropped"]["boxes"]["not_numeric"] == 1
    assert registry.report(meta["id"]).problems[0].box == ["nan", 1, 2, 3]


def test_an_image_path_that_leaves_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside.png").parent.mkdir(parents=True, exist_ok=True)
    raw = make_raw(tmp_path / "src", [("a.png", [0], None)])
    Image.new("RGB", (40, 30)).save(tmp_path / "outside.png")
    raw.images.append(RawImage("../outside.png", "ann/x.xml", "xyxy", [RawBox((1, 1, 5, 5), 0, "ann/x.xml")], 40, 30))
    registry = Registry(tmp_path / "data")
    with pytest.raises(DatasetError, match="leaves"):
        registry.import_dataset(tmp_path / "src", reader=reader_of(raw))
    assert entries(registry) == []


def test_the_registry_export_and_cli_load_no_tensorflow() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, ssd.datasets.registry, ssd.datasets.export, ssd.datasets.splits, ssd.cli.datasets, ssd.cli; "
        "ssd.cli.build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_a_dataset_without_one_usable_image_is_refused(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "src", [("a.png", [0], None), ("b.png", [1], None)])
    for image in raw.images:
        (raw.root / image.file).unlink()
    registry = Registry(tmp_path / "data")
    with pytest.raises(DatasetError, match=r"no image could be kept \(2 missing_image\); first: ann/a.xml"):
        registry.import_dataset(tmp_path / "src", reader=reader_of(raw))
    assert entries(registry) == []


def test_class_names_an_older_import_wrote_are_shown_encodable(tmp_path: Path, raw: RawDataset) -> None:
    """An import made before names were checked may hold a lone surrogate in meta.json: every
    reader gets it escaped, so no JSON answer or terminal fails to encode it."""
    registry = Registry(tmp_path / "data")
    meta = registry.import_dataset(tmp_path / "src", name="pets", reader=reader_of(raw))
    path = registry.root / meta["id"] / "meta.json"
    path.write_text(json.dumps({**meta, "classes": ["cat", "d\ud800g", "x\u202ey"]}))  # json escapes them
    for read in (registry.get(meta["id"]), registry.get("pets"), registry.list()[1]):
        assert read["classes"] == ["cat", "d\\ud800g", "x\\u202ey"]
        json.dumps(read, ensure_ascii=False).encode("utf-8")  # raised UnicodeEncodeError before
