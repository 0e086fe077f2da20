"""One interface over every dataset: the built-in generator and the imported datasets alike.

A :class:`DataSource` is a dataset resolved once (:func:`ssd.datasets.resolve.resolve`,
:meth:`ssd.datasets.registry.Registry.source`). The trainer, the evaluation, the pages and the
loader processes take it, so none of them asks which kind of dataset it is. The built-in
MNIST-detection generator (:mod:`ssd.data`) is registered as the dataset ``mnist`` in
:data:`BUILTIN`; every other dataset is an import of the registry (:class:`ImportedSource`).

A source is small and picklable: an imported one carries its meta and its directory, and reads
its index once, on first use, in each process. So a loader process is handed the source, not a
name to look up in the registry again.

For a config (input size, resize, augmentation, seed) and a split, a source gives:

- :meth:`~DataSource.split`: the samples (:class:`SplitData`: ``data[i]``, ``batch``,
  ``ignore_regions``), augmented for training unless asked not to be;
- :meth:`~DataSource.size`: the images of the split, None where they are made on demand;
- :meth:`~DataSource.boxes`: the ground truth of the first ``n`` images, from the index where
  there is one (no image decoded);
- :meth:`~DataSource.preview`: one unaugmented image for the pages, decoded no larger than needed;
- :meth:`~DataSource.record`: the image's record in the index (file, size), None for the generator;
- :attr:`~DataSource.class_names`, :meth:`~DataSource.max_boxes`, :meth:`~DataSource.report`,
  :meth:`~DataSource.export`, and :meth:`~DataSource.bind` / :meth:`~DataSource.check`, which tie
  a config's ``model.num_classes`` to the dataset.

Images uint8 ``[S, S, 3]``; boxes float32 ``[K, 4]`` pixel ``xyxy`` in the ``S``-pixel square
input; labels int32 ``[K]`` class indices. NumPy and Pillow; no TensorFlow.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from PIL import Image

from ssd.augment import Augmentation, resize, resize_boxes, resize_geometry
from ssd.config import Config, ConfigError
from ssd.coverage import DatasetBoxes, dataset_boxes
from ssd.data import Sample
from ssd.data import for_config as generator_for_config
from ssd.datasets.loader import DEFAULT_CACHE_BYTES, FileDataset, big_enough, decode_at, record_boxes
from ssd.datasets.records import DatasetIndex, Format, ImageRecord
from ssd.datasets.report import Report

if TYPE_CHECKING:
    from ssd.datasets.import_stages import Progress

Split = Literal["train", "val"]
Ignore = tuple[np.ndarray, np.ndarray]  # crowd / difficult regions: boxes float32 [M, 4], classes int32 [M]
MNIST = "mnist"
MNIST_CLASSES = [str(d) for d in range(10)]
GENERATOR_EXPORT_IMAGES = 1000  # what `ssdboard datasets export mnist` writes without --images


class SplitData(Protocol):
    """One split of a dataset at the network input: what the trainer and the evaluation read.

    ``data[i]`` is sample ``i``; ``batch(start, size)`` is samples ``start..start+size-1`` padded
    to ``max_digits`` rows (images uint8 [B, S, S, 3], boxes float32 [B, K, 4] pixel ``xyxy``,
    labels int32 [B, K] with -1 padding and -2 ignore regions, counts int32 [B]);
    ``ignore_regions(i)`` the crowd and difficult regions of sample ``i`` (empty for the generator).
    """

    split: Split
    image_size: int
    max_digits: int

    def __getitem__(self, index: int) -> Sample: ...

    def batch(self, start: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...

    def ignore_regions(self, index: int) -> Ignore: ...


def no_regions() -> Ignore:
    """No ignore regions: float32 [0, 4], int32 [0]."""
    return np.zeros((0, 4), np.float32), np.zeros(0, np.int32)


class DataSource(ABC):
    """A dataset, resolved: see the module docstring."""

    id: str
    name: str
    class_names: list[str]

    @property
    @abstractmethod
    def meta(self) -> dict[str, Any]:
        """The registry's entry: id, name, format, classes, counts, splits, source, ..."""

    @property
    def display_names(self) -> list[str] | None:
        """Class names the pages show beside the class index; None where the index is the name."""
        return self.class_names

    @abstractmethod
    def split(
        self, config: Config, split: Split, *, augment: bool = True, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> SplitData:
        """The samples of ``split`` at ``config``'s input: training images augmented by
        ``config.augment`` unless ``augment`` is False, seeded with ``config.seed``; decoded images
        kept in memory up to ``cache_bytes``."""

    @abstractmethod
    def size(self, split: Split) -> int | None:
        """Images in ``split``; None where any index is made on demand (the generator)."""

    def count(self, split: Split, wanted: int) -> int:
        """``wanted``, or fewer where the split ends before it."""
        size = self.size(split)
        return wanted if size is None else min(wanted, size)

    @abstractmethod
    def boxes(self, config: Config, split: Split, n: int) -> DatasetBoxes:
        """Ground truth of images ``0..n-1`` of ``split`` in the input's pixels, unaugmented
        (fewer where the split is shorter); ignore regions left out."""

    @abstractmethod
    def max_boxes(self, config: Config) -> int:
        """The padded box rows of a batch (objects and ignore regions of the fullest image)."""

    @abstractmethod
    def preview(self, config: Config, split: Split, index: int) -> tuple[Sample, Ignore]:
        """Image ``index`` of ``split`` unaugmented at the input size, with its ignore regions."""

    def record(self, split: Split, index: int) -> ImageRecord | None:
        """The index's record of image ``index`` (its file, size and raw boxes); None for the generator."""
        return None

    def report(self) -> Report:
        """The validation report of the import (an empty one where nothing was imported)."""
        return Report()

    def exists(self) -> bool:
        """Whether the dataset is still there (an import can be removed while a source is held)."""
        return True

    @abstractmethod
    def export(
        self,
        out: Path,
        fmt: Format,
        *,
        images: int | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> Path:
        """Write the dataset (its first ``images`` images) to ``out`` as ``fmt``; ``val_fraction``
        and ``seed`` split the images of a dataset that has no splits of its own."""

    def bind(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A config mapping tied to this dataset: ``data.dataset`` its id, ``model.num_classes`` its
        class count where the dataset fixes it (set when absent).

        Raises:
            ConfigError: ``model.num_classes`` disagrees with the dataset.
        """
        return dict(data)

    @abstractmethod
    def check(self, config: Config) -> None:
        """Raise :class:`ConfigError` where ``config`` cannot train on this dataset."""


class GeneratedSource(DataSource):
    """The built-in MNIST-detection generator (:mod:`ssd.data`) as the dataset ``mnist``.

    Its splits are endless, its images a function of (data config, seed, split, index); the
    validation split is seeded with :data:`ssd.data.VAL_SEED` whatever the run's seed.
    """

    id = MNIST
    name = MNIST
    class_names = MNIST_CLASSES

    @property
    def meta(self) -> dict[str, Any]:
        """The virtual entry of the generator (images are made on the fly: no counts)."""
        return {
            "id": MNIST,
            "name": MNIST,
            "format": "generator",
            "created": None,
            "status": "ready",
            "classes": list(MNIST_CLASSES),
            "counts": {"images": None, "boxes": None, "ignored": 0},
            "splits": {"train": None, "val": None},
            "source": "built-in MNIST-detection generator (ssd.data)",
            "builtin": True,
        }

    @property
    def display_names(self) -> list[str] | None:
        return None  # a digit's class index is its name

    def split(
        self, config: Config, split: Split, *, augment: bool = True, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> SplitData:
        return generator_for_config(config, split)  # generated images are neither augmented nor cached

    def size(self, split: Split) -> int | None:
        return None

    def boxes(self, config: Config, split: Split, n: int) -> DatasetBoxes:
        return dataset_boxes(config, split, n)

    def max_boxes(self, config: Config) -> int:
        return config.data.max_digits

    def preview(self, config: Config, split: Split, index: int) -> tuple[Sample, Ignore]:
        return self.split(config, split)[index], no_regions()

    def check(self, config: Config) -> None:
        return None  # any model.num_classes: the digits are classes 0-9 of it

    def export(
        self,
        out: Path,
        fmt: Format,
        *,
        images: int | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> Path:
        from ssd.datasets.export import export_generator  # the writers are needed only to export

        count = GENERATOR_EXPORT_IMAGES if images is None else images
        return export_generator(out, fmt, images=count, val_fraction=val_fraction, seed=seed, progress=progress)

    def __reduce__(self) -> tuple[Callable[[], GeneratedSource], tuple[()]]:
        return GeneratedSource, ()


class ImportedSource(DataSource):
    """A dataset imported into the registry: its ``meta.json`` and its directory ``root`` (which
    holds ``index.json``; the index's image paths are relative to it)."""

    def __init__(self, meta: Mapping[str, Any], root: Path) -> None:
        self._meta = dict(meta)
        self.id = str(meta["id"])
        self.name = str(meta["name"])
        self.root = Path(root)
        self._index: DatasetIndex | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # A loader process reads the index itself: a big index.json is not sent through a pipe.
        return {"meta": self._meta, "root": self.root}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["meta"], state["root"])  # type: ignore[misc]

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    @property
    def class_names(self) -> list[str]:  # type: ignore[override]
        """The index's class names (what training reads), in class-index order."""
        return list(self.index.classes)

    @property
    def index(self) -> DatasetIndex:
        """The validated index, read once (one read of a big ``index.json`` at a time)."""
        with self._lock:
            if self._index is None:
                self._index = DatasetIndex.load(self.root / "index.json")
            return self._index

    def records(self, split: Split) -> list[ImageRecord]:
        """The records of ``split`` in the dataset's order."""
        return self.index.split(split)

    def split(
        self, config: Config, split: Split, *, augment: bool = True, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> SplitData:
        a = config.augment
        return FileDataset(
            self.index,
            self.root,
            split,
            image_size=config.data.image_size,
            resize_mode=config.data.resize,
            augmentation=Augmentation(
                photometric=a.photometric, expand=a.expand, crop=a.crop, flip=a.flip, top_down=a.top_down
            )
            if augment
            else None,
            seed=config.seed,
            cache_bytes=cache_bytes,
        )

    def size(self, split: Split) -> int | None:
        return len(self.records(split))

    def boxes(self, config: Config, split: Split, n: int) -> DatasetBoxes:
        return record_boxes(self.records(split)[:n], config.data.image_size, config.data.resize)

    def max_boxes(self, config: Config) -> int:
        if "max_boxes" in self._meta:
            return int(self._meta["max_boxes"])
        # Imported before the meta recorded it.
        return max((len(r.labels) + len(r.ignore) for r in self.index.images), default=1)

    def preview(self, config: Config, split: Split, index: int) -> tuple[Sample, Ignore]:
        """The input-size image decoded no larger than that (the pages call this for anonymous
        GETs: a whole decode of a large photo cost hundreds of MB)."""
        data = config.data
        record = self.records(split)[index]
        # Pixels resized straight to the input's geometry, which the index's size decides, as
        # it decides the boxes': resize() then only places them (letterbox) or keeps them.
        _, _, _, _, new_w, new_h = resize_geometry(record.width, record.height, data.image_size, data.resize)
        with Image.open(self.root / record.file) as file:
            pixels = decode_at(file, new_w, new_h)
        image, _ = resize(pixels, np.zeros((0, 4), np.float32), data.image_size, data.resize)
        boxes = np.concatenate([record.boxes, record.ignore]).astype(np.float32)
        boxes = resize_boxes(boxes, record.width, record.height, data.image_size, data.resize)
        k = len(record.boxes)
        objects = big_enough(boxes[:k], record.labels)
        ignore = big_enough(boxes[k:], record.ignore_labels)
        return Sample(image=image, boxes=objects[0], labels=objects[1]), ignore

    def record(self, split: Split, index: int) -> ImageRecord | None:
        return self.records(split)[index]

    def exists(self) -> bool:
        return (self.root / "meta.json").is_file()

    def report(self) -> Report:
        import json

        return Report.from_dict(json.loads((self.root / "report.json").read_text()))

    def export(
        self,
        out: Path,
        fmt: Format,
        *,
        images: int | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> Path:
        from ssd.datasets.export import export_index  # the writers are needed only to export

        return export_index(self.index, self.root, out, fmt, images=images, progress=progress)

    def bind(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(data)
        classes = len(self._meta["classes"])  # the meta's: binding a config reads no index
        model = dict(out.get("model") or {})
        given = model.get("num_classes")
        if given is not None and given != classes:
            raise ConfigError(
                "model.num_classes",
                f"the dataset {self.name!r} has {classes} classes, not {given}: leave it out to follow the dataset",
            )
        out["model"] = {**model, "num_classes": classes}
        out["data"] = {**out["data"], "dataset": self.id}
        return out

    def check(self, config: Config) -> None:
        if len(self.class_names) != config.model.num_classes:
            raise ConfigError(
                "model.num_classes",
                f"the dataset {config.data.dataset!r} has {len(self.class_names)} classes, "
                f"not {config.model.num_classes}",
            )


# The datasets that are not imports, by id: listed first, never removed, their names reserved.
BUILTIN: dict[str, DataSource] = {MNIST: GeneratedSource()}
