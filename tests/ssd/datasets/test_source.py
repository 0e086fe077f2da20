"""One data source interface: the generator registered as ``mnist`` and an imported dataset answer
the same calls (sizes, samples, batches, boxes, previews, class names, ignore regions), and the
boxes each reports agree with its own samples."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ssd.config import ConfigError, from_dict
from ssd.datasets.export import export_generator
from ssd.datasets.registry import BuiltInDataset, Registry
from ssd.datasets.resolve import apply_dataset, resolve
from ssd.datasets.source import BUILTIN, MNIST, GeneratedSource, ImportedSource


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding 12 generated images imported as the COCO dataset 'digits' (9 train, 3 val)."""
    root = tmp_path_factory.mktemp("source")
    out = export_generator(root / "export", "coco", images=12, val_fraction=0.25, seed=0)
    Registry(root / "data").import_dataset(out, name="digits")
    return root / "data"


def test_the_generator_is_registered_as_mnist(data_dir: Path) -> None:
    registry = Registry(data_dir)
    source = registry.source(MNIST)
    assert source is BUILTIN[MNIST] and isinstance(source, GeneratedSource)
    assert registry.get(MNIST) == source.meta and registry.list()[0] == source.meta
    config = from_dict({})
    assert source.size("val") is None and source.count("val", 7) == 7  # made on demand: no end
    assert source.class_names == [str(d) for d in range(10)] and source.display_names is None
    assert source.max_boxes(config) == config.data.max_digits
    assert source.record("val", 0) is None and source.report().to_dict() == registry.report(MNIST).to_dict()
    with pytest.raises(BuiltInDataset):
        registry.path(MNIST)
    with pytest.raises(BuiltInDataset):
        registry.remove(MNIST)


def test_an_import_is_an_imported_source(data_dir: Path) -> None:
    source = Registry(data_dir).source("digits")
    assert isinstance(source, ImportedSource) and source.name == "digits" and len(source.id) == 12
    assert (source.size("train"), source.size("val")) == (9, 3)
    assert source.count("val", 100) == 3 and source.count("val", 2) == 2  # a split that ends
    assert source.class_names == [str(d) for d in range(10)] == source.display_names
    record = source.record("val", 1)
    assert record is not None and record.file.startswith("images/") and (record.width, record.height) == (128, 128)
    assert source.max_boxes(from_dict({})) == max(len(r.labels) + len(r.ignore) for r in source.index.images)


@pytest.mark.parametrize("name", [MNIST, "digits"])
def test_both_kinds_answer_through_one_interface(data_dir: Path, name: str) -> None:
    """For either kind: batches stack the samples, ``boxes`` (from the index where there is one)
    are the unaugmented samples' boxes, a preview has the sample's boxes at the input size."""
    config = from_dict(
        apply_dataset({"data": {"dataset": name, "image_size": 64, "scale_range": [0.5, 1.0]}}, data_dir)
    )
    source = resolve(config, data_dir)
    val = source.split(config, "val", augment=False)
    n = source.count("val", 3)
    images, boxes, labels, counts = val.batch(0, n)
    truth = source.boxes(config, "val", n)
    assert images.shape == (n, 64, 64, 3) and boxes.shape[1] == labels.shape[1]
    for i in range(n):
        sample = val[i]
        np.testing.assert_array_equal(images[i], sample.image)
        np.testing.assert_allclose(boxes[i, : counts[i]], sample.boxes)
        np.testing.assert_allclose(truth.boxes[i, : truth.counts[i]], sample.boxes, atol=1e-4)
        np.testing.assert_array_equal(truth.labels[i, : truth.counts[i]], sample.labels)
        preview, regions = source.preview(config, "val", i)
        assert preview.image.shape == (64, 64, 3)
        np.testing.assert_allclose(preview.boxes, sample.boxes, atol=1e-4)
        assert regions[0].shape == (0, 4) and val.ignore_regions(i)[0].shape == (0, 4)
    assert (sample.boxes >= 0).all() and (sample.boxes <= 64).all()  # in the 64-pixel input


def test_an_imported_source_travels_without_its_index(data_dir: Path) -> None:
    """A loader process is sent the source (meta and directory), not the index it reads itself."""
    source = Registry(data_dir).source("digits")
    config = from_dict(
        apply_dataset({"data": {"dataset": "digits", "image_size": 64, "scale_range": [0.5, 1.0]}}, data_dir)
    )
    expected = source.split(config, "train").batch(0, 4)  # the index is loaded now
    copy = pickle.loads(pickle.dumps(source))
    assert isinstance(copy, ImportedSource) and copy._index is None
    for got, want in zip(copy.split(config, "train").batch(0, 4), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert pickle.loads(pickle.dumps(BUILTIN[MNIST])) is not None


def test_a_source_ties_the_class_count(data_dir: Path) -> None:
    source = Registry(data_dir).source("digits")
    bound = source.bind({"data": {"dataset": "digits"}})
    assert bound == {"data": {"dataset": source.id}, "model": {"num_classes": 10}}
    with pytest.raises(ConfigError) as refused:
        source.bind({"data": {"dataset": "digits"}, "model": {"num_classes": 3}})
    assert refused.value.field == "model.num_classes"
    with pytest.raises(ConfigError) as mismatch:
        resolve(from_dict({"data": {"dataset": source.id}, "model": {"num_classes": 3}}), data_dir)
    assert mismatch.value.field == "model.num_classes"
    with pytest.raises(ConfigError) as unknown:
        resolve(from_dict({"data": {"dataset": "nope"}}), data_dir)
    assert unknown.value.field == "data.dataset"
    generator = from_dict({"model": {"num_classes": 11}})
    assert resolve(generator, data_dir) is BUILTIN[MNIST]  # the digits are classes 0-9 of any count
    assert apply_dataset({"data": {"dataset": MNIST}}, data_dir) == {"data": {"dataset": MNIST}}


def test_a_removed_import_is_gone_for_its_holder(tmp_path: Path) -> None:
    out = export_generator(tmp_path / "export", "coco", images=4, val_fraction=0.25, seed=1)
    registry = Registry(tmp_path / "data")
    registry.import_dataset(out, name="short-lived")
    source = registry.source("short-lived")
    assert source.exists()
    registry.remove("short-lived")
    assert not source.exists() and BUILTIN[MNIST].exists()
