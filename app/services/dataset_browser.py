"""Dataset images for the inspection pages: which config, which dataset, which images.

The dataset browser and the prior explorer show the images of a config's ``data.dataset``: the
built-in generator (``mnist``) or an imported dataset of the registry. The config is a job's
(``job=ID``), or the default one on the dataset ``dataset=ID_OR_NAME`` (default ``mnist``).

- Generator images are pure functions of (data config, seed, split, index): cached by that key.
- An imported dataset shows image ``index`` of the split in the dataset's order, at the network
  input size (``data.image_size``, resized as ``data.resize`` says), never augmented: what the
  detector is given, and the pixels the priors are defined in. Class names come from the dataset.
  Its statistics take the boxes from the index (no image decoded).

Boxes are pixel ``xyxy`` in the square input.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from app.domain import Invalid, NotFound
from app.figures.dataset import sample_figure, stats_figures
from app.services.images import data_url, decode_at, png_bytes
from app.services.jobs import JobService
from ssd.augment import resize, resize_boxes, resize_geometry
from ssd.config import Config, DataConfig, from_dict
from ssd.coverage import DatasetBoxes, dataset_boxes
from ssd.data import VAL_SEED, Sample, for_config
from ssd.datasets.loader import big_enough, record_boxes
from ssd.datasets.records import DatasetIndex, ImageRecord
from ssd.datasets.registry import MNIST, DatasetNotFound, Registry
from ssd.datasets.text import MAX_PATH, shown
from ssd.geometry import box_size

Split = Literal["train", "val"]
TRAIN_BROWSE = 10_000  # the train generator is endless; the browser pages through this many
Ignore = tuple[np.ndarray, np.ndarray]  # crowd / difficult regions: boxes [M, 4], classes [M]


def image_url(split: Split, index: int, job: str | None, root: str = "", *, dataset: str | None = None) -> str:
    """URL of the PNG of an image (``dataset`` only when no job names it)."""
    query = f"?job={job}" if job else (f"?dataset={dataset}" if dataset and dataset != MNIST else "")
    return f"{root}/api/datasets/{split}/images/{index}.png{query}"


def source_path(stored: str) -> str:
    """An imported image's path in the uploaded dataset (the registry keeps it under ``images/``),
    to show: escaped (an import from before the name rule may have kept a name no answer could
    encode, ``\udcff`` from a file name that is not UTF-8)."""
    return shown(stored.removeprefix("images/"), MAX_PATH)


def split_length(config: Config, split: Split) -> int:
    """Images the pages offer of the generator: its validation set, or :data:`TRAIN_BROWSE`."""
    return config.data.val_images if split == "val" else TRAIN_BROWSE


def _check(length: int, split: Split, index: int) -> None:
    """:class:`NotFound` past the end of a split (negative indices are refused by the routes)."""
    if index >= length:
        raise NotFound(f"{split} has {length} images (0..{length - 1}), not {index}")


def _boxes(boxes: np.ndarray, labels: np.ndarray, names: list[str] | None = None) -> list[dict[str, Any]]:
    out = []
    for box, label in zip(boxes.tolist(), labels.tolist(), strict=True):
        item = {"box": [round(v, 2) for v in box], "label": label, "width": box[2] - box[0], "height": box[3] - box[1]}
        if names is not None:
            item["name"] = names[label]
        out.append(item)
    return out


def _summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0}
    return {
        k: round(float(f(values)), 2)
        for k, f in (("min", np.min), ("median", np.median), ("mean", np.mean), ("max", np.max))
    }


def stats(data: DatasetBoxes, num_classes: int, class_names: list[str] | None = None) -> dict[str, Any]:
    """Numbers and figures of a set of ground truths."""
    valid = data.valid
    boxes, labels = data.boxes[valid], data.labels[valid]
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    figures = stats_figures(
        counts=data.counts,
        widths=widths,
        heights=heights,
        labels=labels,
        num_classes=num_classes,
        class_names=class_names,
    )
    return {
        "num_images": int(data.counts.size),
        "num_boxes": int(valid.sum()),
        "objects_per_image": {**_summary(data.counts.astype(np.float32)), "counts": np.bincount(data.counts).tolist()},
        "width": _summary(widths),
        "height": _summary(heights),
        "size": _summary(box_size(boxes)),
        "class_counts": np.bincount(labels, minlength=num_classes).tolist(),
        "figures": {name: fig.to_plotly_json() for name, fig in figures.items()},
    }


@dataclass(frozen=True)
class Imported:
    """An imported dataset as the browser reads it: its index and where its files are."""

    id: str
    name: str
    root: Path
    index: DatasetIndex
    splits: dict[str, list[ImageRecord]]

    @property
    def classes(self) -> list[str]:
        return list(self.index.classes)


class DatasetBrowser:
    """Images, ground truth and statistics of the generator or an imported dataset, under a job's
    or the default config."""

    def __init__(self, jobs: JobService, *, data_dir: Path | None = None, cache_size: int = 256) -> None:
        self.jobs = jobs
        self.registry = Registry(data_dir if data_dir is not None else jobs.settings.artifact_root)
        # About 1 ms to generate an image, but the pages ask for the same ones again and again.
        self._sample: Callable[[DataConfig, int, Split, int], Sample] = functools.lru_cache(maxsize=cache_size)(
            lambda data, seed, split, index: for_config(Config(seed=seed, data=data), split)[index]
        )
        # Decoding a photo takes longer; fewer are kept (a 512 px input is 0.8 MB an image).
        self._file_sample: Callable[[DataConfig, Split, int], tuple[Sample, Ignore]] = functools.lru_cache(
            maxsize=min(cache_size, 64)
        )(self._decode)
        self._imported: Callable[[str], Imported] = functools.lru_cache(maxsize=4)(self._load)
        self._load_lock = threading.Lock()

    # ------------------------------------------------------------------ which config, which dataset
    def config_of(self, job: str | None, dataset: str | None = None) -> Config:
        """The config of job ``job``, or the default config on ``dataset`` (an id or name; default
        ``mnist``). :class:`NotFound` for an unknown job or dataset; :class:`Invalid` when both are
        given and the job trains on another dataset."""
        if job is not None:
            config = self.jobs.config_of(job)
            if dataset is not None and self._id_of(dataset) != config.data.dataset:
                used = config.data.dataset
                raise Invalid(("query", "dataset"), f"job {job} uses the dataset {used!r}, not {dataset!r}")
            return config
        if dataset is None or dataset == MNIST:
            return from_dict({})
        return self.jobs.resolve({"data": {"dataset": self._id_of(dataset)}}, loc=("query", "dataset"))

    def _id_of(self, dataset: str) -> str:
        try:
            return str(self.registry.get(dataset)["id"])
        except DatasetNotFound as exc:
            raise NotFound(str(exc)) from None

    def _load(self, dataset_id: str) -> Imported:
        with self._load_lock:  # one read of a big index.json at a time
            meta = self.registry.get(dataset_id)
            index = self.registry.index(dataset_id)
            splits = {"train": index.split("train"), "val": index.split("val")}
            return Imported(meta["id"], meta["name"], self.registry.path(dataset_id), index, splits)

    def imported(self, config: Config) -> Imported | None:
        """The imported dataset of a config (None for the generator); :class:`NotFound` once removed."""
        if config.data.dataset == MNIST:
            return None
        dataset_id = self._id_of(config.data.dataset)  # ids are never reused: the cache stays right
        return self._imported(dataset_id)

    def length(self, config: Config, split: Split) -> int:
        """Images of a config's split that the pages offer."""
        data = self.imported(config)
        return split_length(config, split) if data is None else len(data.splits[split])

    def check_index(self, config: Config, split: Split, index: int) -> None:
        """:class:`NotFound` past the end of the split."""
        _check(self.length(config, split), split, index)

    # ------------------------------------------------------------------ images
    def _decode(self, data: DataConfig, split: Split, index: int) -> tuple[Sample, Ignore]:
        """The input-size sample of an imported image, decoded no larger than that (anonymous
        GETs call this: a whole decode of a large photo cost hundreds of MB)."""
        imported = self._imported(data.dataset)
        record = imported.splits[split][index]
        # Pixels resized straight to the input's geometry, which the index's size decides, as
        # it decides the boxes': resize() then only places them (letterbox) or keeps them.
        _, _, _, _, new_w, new_h = resize_geometry(record.width, record.height, data.image_size, data.resize)
        with Image.open(imported.root / record.file) as file:
            pixels = decode_at(file, new_w, new_h)
        image, _ = resize(pixels, np.zeros((0, 4), np.float32), data.image_size, data.resize)
        boxes = np.concatenate([record.boxes, record.ignore]).astype(np.float32)
        boxes = resize_boxes(boxes, record.width, record.height, data.image_size, data.resize)
        k = len(record.boxes)
        objects = big_enough(boxes[:k], record.labels)
        ignore = big_enough(boxes[k:], record.ignore_labels)
        return Sample(image=image, boxes=objects[0], labels=objects[1]), ignore

    def sample(self, config: Config, split: Split, index: int) -> Sample:
        """Image ``index`` of a config's split (an imported one unaugmented, at the input size)."""
        if self.imported(config) is not None:
            return self._file_sample(config.data, split, index)[0]
        seed = config.seed if split == "train" else VAL_SEED
        return self._sample(config.data, seed, split, index)

    def boxes(self, config: Config, split: Split, n: int) -> DatasetBoxes:
        """Ground truth of images ``0..n-1`` of a split in the input's pixels (the prior explorer's
        coverage and the statistics); for an imported dataset from its index, nothing decoded."""
        imported = self.imported(config)
        if imported is None:
            return dataset_boxes(config, split, n)
        return record_boxes(imported.splits[split][:n], config.data.image_size, config.data.resize)

    def _about(self, config: Config, job: str | None) -> dict[str, Any]:
        imported = self.imported(config)
        if imported is None:
            return {"job": job, "dataset": MNIST, "dataset_name": MNIST, "classes": None}
        return {"job": job, "dataset": imported.id, "dataset_name": imported.name, "classes": imported.classes}

    def list_images(
        self, split: Split, job: str | None, *, offset: int, limit: int, root: str, dataset: str | None = None
    ) -> dict[str, Any]:
        """A page of images: index, PNG URL, ground-truth boxes and labels (and class names and
        file names of an imported dataset)."""
        config = self.config_of(job, dataset)
        about = self._about(config, job)
        imported = self.imported(config)
        total = self.length(config, split)
        items = []
        for index in range(offset, min(offset + limit, total)):
            s = self.sample(config, split, index)
            item = {
                "index": index,
                "url": image_url(split, index, job, root, dataset=about["dataset"]),
                "boxes": _boxes(s.boxes, s.labels, about["classes"]),
            }
            if imported is not None:
                item["file"] = source_path(imported.splits[split][index].file)
            items.append(item)
        return {
            "split": split,
            **about,
            "total": total,
            "offset": offset,
            "limit": limit,
            "image_size": config.data.image_size,
            "items": items,
        }

    def image_png(self, split: Split, index: int, job: str | None, dataset: str | None = None) -> bytes:
        """One image as PNG bytes (no boxes drawn)."""
        config = self.config_of(job, dataset)
        self.check_index(config, split, index)
        return png_bytes(self.sample(config, split, index).image)

    def image_detail(
        self, split: Split, index: int, job: str | None, *, root: str, dataset: str | None = None
    ) -> dict[str, Any]:
        """One image: its boxes and a zoomable figure (image + boxes, hover: class, box, size)."""
        config = self.config_of(job, dataset)
        self.check_index(config, split, index)
        about = self._about(config, job)
        imported = self.imported(config)
        s = self.sample(config, split, index)
        ignore = None if imported is None else self._file_sample(config.data, split, index)[1]
        size = config.data.image_size
        figure = sample_figure(
            data_url(s.image), s.boxes, s.labels, width=size, height=size, class_names=about["classes"], ignore=ignore
        )
        out = {
            "split": split,
            "index": index,
            **about,
            "total": self.length(config, split),
            "image_size": size,
            "url": image_url(split, index, job, root, dataset=about["dataset"]),
            "boxes": _boxes(s.boxes, s.labels, about["classes"]),
            "figure": figure.to_plotly_json(),
        }
        if imported is not None and ignore is not None:
            record = imported.splits[split][index]
            out.update(file=source_path(record.file), width=record.width, height=record.height, ignore=_boxes(*ignore))
        return out

    def split_stats(self, split: Split, job: str | None, *, n: int, dataset: str | None = None) -> dict[str, Any]:
        """Statistics of the first ``n`` images of a split."""
        config = self.config_of(job, dataset)
        about = self._about(config, job)
        n = min(n, self.length(config, split))
        return {
            "split": split,
            **about,
            **stats(self.boxes(config, split, n), config.model.num_classes, about["classes"]),
        }
