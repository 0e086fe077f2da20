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
