"""Real data made by other people: DeepForest's NEON aerial tree-crown tiles (MIT licence), read
from the installed package (``make venv`` installs it without its dependencies: only its data is
used), tiled into a Pascal VOC dataset by ``tools/deepforest_tiles.py``, imported, and checked
against globox reading the same files and against the source XMLs' own box count."""

from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path

import numpy as np
import pytest

from ssd.datasets.registry import Registry

pytestmark = pytest.mark.skipif(importlib.util.find_spec("deepforest") is None, reason="deepforest is not installed")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trees")
    tool = runpy.run_path(str(ROOT / "tools" / "deepforest_tiles.py"))
    assert tool["main"](["--out", str(out / "voc"), "--tile", "128"]) == 0
    return out / "voc"


def test_the_source_annotations_are_what_deepforest_ships() -> None:
    tool = runpy.run_path(str(ROOT / "tools" / "deepforest_tiles.py"))
    counts = {stem: len(tool["boxes_of"](tool["data_dir"]() / f"{stem}.xml")) for stem in tool["SOURCES"]}
    assert sum(counts.values()) == 574 + 279 + 61 + 37 and counts["OSBS_029"] == 61


def test_an_import_of_real_tiles_agrees_with_globox(tiles: Path, tmp_path: Path) -> None:
    from globox import AnnotationSet

    registry = Registry(tmp_path / "data")
    meta = registry.import_dataset(tiles, name="trees")
    assert meta["format"] == "voc" and meta["classes"] == ["Tree"]
    assert meta["splits"] == {"train": 322, "val": 91}  # the tool's spatial split, kept as given
    index, report = registry.index("trees"), registry.report("trees")
    assert report.dropped()["images"] == dict.fromkeys(report.dropped()["images"], 0)
    assert sum(report.dropped()["boxes"].values()) == 0  # every tree the tool wrote is kept
    reference = {a.image_id: a for a in AnnotationSet.from_pascal_voc(tiles / "Annotations")}
    assert len(reference) == len(index.images) == 413
    total = 0
    for record in index.images:
        ann = reference[Path(record.file).name]
        expected = np.array([b.ltrb for b in ann.boxes]).reshape(-1, 4) - [1, 1, 0, 0]  # VOC's 1-based corners
        np.testing.assert_allclose(record.boxes, expected, atol=0.051)  # the tool writes one decimal
        total += len(record.labels)
    assert total == meta["counts"]["boxes"] == 835


def test_holding_out_strips_shows_every_site_in_training(tmp_path: Path) -> None:
    """``--holdout strips``: the right-most tiles of every image are validation, the two small
    sites' included (400 px images: the tiles at x = 256 reach past 0.8 x 400 = 320 px)."""
    tool = runpy.run_path(str(ROOT / "tools" / "deepforest_tiles.py"))
    assert tool["main"](["--out", str(tmp_path), "--holdout", "strips"]) == 0
    splits = {s: (tmp_path / "ImageSets" / "Main" / f"{s}.txt").read_text().split() for s in ("train", "val")}
    assert (len(splits["train"]), len(splits["val"])) == (322 + 12, 91 - 12)
    for site in ("OSBS_029", "SOAP_061"):
        val = sorted(n for n in splits["val"] if n.startswith(site))
        assert val == sorted(f"{site}_{top}_256" for top in (0, 128, 256))
        assert sum(n.startswith(site) for n in splits["train"]) == 6


def test_tiles_are_grouped_by_the_image_they_were_cut_from() -> None:
    """tools/ap_by_source.py scores each source image's tiles apart: ``<source>_<top>_<left>``."""
    tool = runpy.run_path(str(ROOT / "tools" / "ap_by_source.py"))
    assert tool["source_of"]("JPEGImages/OSBS_029_256_128.png") == "OSBS_029"
    yellowstone = "2019_YELL_2_528000_4978000_image_crop2"
    assert tool["source_of"](f"{yellowstone}_0_1792.png") == yellowstone
    assert tool["source_of"]("photo_7.jpg") == "photo_7"  # not a tile: its own group


def test_the_raccoon_layout_keeps_its_authors_split(tmp_path: Path) -> None:
    """tools/raccoon_voc.py on a stand-in checkout: VOC with the CSVs' train/test split, imported as it."""
    from PIL import Image

    src = tmp_path / "raccoon_dataset"
    (src / "annotations").mkdir(parents=True)
    (src / "images").mkdir()
    (src / "data").mkdir()
    header = "filename,width,height,class,xmin,ymin,xmax,ymax\n"
    rows = {"train": "", "test": ""}
    for i, split in ((1, "train"), (2, "train"), (3, "test")):
        Image.new("RGB", (64, 48), (80, 90, 100)).save(src / "images" / f"raccoon-{i}.jpg")
        box = (4 * i, 5, 30 + i, 40)
        (src / "annotations" / f"raccoon-{i}.xml").write_text(
            f"<annotation><filename>raccoon-{i}.jpg</filename><size><width>64</width><height>48</height>"
            "<depth>3</depth></size><object><name>raccoon</name><difficult>0</difficult><bndbox>"
            f"<xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax>"
            "</bndbox></object></annotation>"
        )
        rows[split] += f"raccoon-{i}.jpg,64,48,raccoon,{box[0]},{box[1]},{box[2]},{box[3]}\n"
    for split, text in rows.items():
        (src / "data" / f"{split}_labels.csv").write_text(header + text)
    tool = runpy.run_path(str(ROOT / "tools" / "raccoon_voc.py"))
    assert tool["main"]([str(src), "--out", str(tmp_path / "voc")]) == 0
    assert (tmp_path / "voc" / "ImageSets" / "Main" / "val.txt").read_text() == "raccoon-3\n"
    meta = Registry(tmp_path / "data").import_dataset(tmp_path / "voc", name="raccoon")
    assert meta["splits"] == {"train": 2, "val": 1} and meta["classes"] == ["raccoon"]
