"""Dataset images for the inspection pages: which config, which dataset, which images.

The dataset browser and the prior explorer show the images of a config's ``data.dataset``: the
built-in generator (``mnist``) or an imported dataset of the registry. The config is a job's
(``job=ID``), or the default one on the dataset ``dataset=ID_OR_NAME`` (default ``mnist``).

Either is read through its :class:`ssd.datasets.source.DataSource`, resolved once per dataset:

- Image ``index`` of a split is the source's preview: at the network input size
  (``data.image_size``, resized as ``data.resize`` says), never augmented: what the detector is
  given, and the pixels the priors are defined in. Previews are cached by (data config, seed,
  split, index), which determine them.
- Class names come from the dataset; statistics take the boxes from the source (an imported
  dataset's from its index, no image decoded).

Boxes are pixel ``xyxy`` in the square input.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from app.domain import Invalid, NotFound
from app.figures.dataset import sample_figure, stats_figures
from app.services.images import data_url, png_bytes
from app.services.jobs import JobService
from ssd.config import Config, DataConfig, from_dict
from ssd.coverage import DatasetBoxes
from ssd.data import Sample
from ssd.datasets.registry import DatasetNotFound, Registry
from ssd.datasets.source import DataSource
from ssd.datasets.text import MAX_PATH, shown
from ssd.geometry import box_size

Split = Literal["train", "val"]
TRAIN_BROWSE = 10_000  # the train generator is endless; the browser pages through this many
Ignore = tuple[np.ndarray, np.ndarray]  # crowd / difficult regions: boxes [M, 4], classes [M]
DEFAULT_DATASET = DataConfig().dataset  # the dataset an image URL leaves out


def image_url(split: Split, index: int, job: str | None, root: str = "", *, dataset: str | None = None) -> str:
    """URL of the PNG of an image (``dataset`` only when no job names it)."""
    query = f"?job={job}" if job else (f"?dataset={dataset}" if dataset and dataset != DEFAULT_DATASET else "")
    return f"{root}/api/datasets/{split}/images/{index}.png{query}"


def source_path(stored: str) -> str:
    """An imported image's path in the uploaded dataset (the registry keeps it under ``images/``),
    to show: escaped (an import from before the name rule may have kept a name no answer could
    encode, ``\udcff`` from a file name that is not UTF-8)."""
    return shown(stored.removeprefix("images/"), MAX_PATH)


def split_length(config: Config, source: DataSource, split: Split) -> int:
    """Images the pages offer of a split: all of one that ends; of a generated one, the validation
    images training evaluates (``data.val_images``), or :data:`TRAIN_BROWSE` training images."""
    size = source.size(split)
    if size is not None:
        return size
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


class DatasetBrowser:
    """Images, ground truth and statistics of the generator or an imported dataset, under a job's
    or the default config."""

    def __init__(self, jobs: JobService, *, data_dir: Path | None = None, cache_size: int = 256) -> None:
        self.jobs = jobs
        self.registry = Registry(data_dir if data_dir is not None else jobs.settings.artifact_root)
        # About 1 ms to generate an image, longer to decode a photo: the pages ask for the same
        # ones again and again (a 512 px input is 0.8 MB an image).
        self._preview: Callable[[DataConfig, int, Split, int], tuple[Sample, Ignore]] = functools.lru_cache(
            maxsize=cache_size
        )(lambda data, seed, split, i: self._source(data.dataset).preview(Config(seed=seed, data=data), split, i))
        # Ids are never reused, so a source cached by id stays right; its index is read once.
        self._source: Callable[[str], DataSource] = functools.lru_cache(maxsize=4)(self.registry.source)

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
        if dataset is None:
            return from_dict({})
        return self.jobs.resolve({"data": {"dataset": self._id_of(dataset)}}, loc=("query", "dataset"))

    def _id_of(self, dataset: str) -> str:
        try:
            return str(self.registry.get(dataset)["id"])
        except DatasetNotFound as exc:
            raise NotFound(str(exc)) from None

    def source(self, config: Config) -> DataSource:
        """The dataset of a config; :class:`NotFound` once removed."""
        return self._source(self._id_of(config.data.dataset))

    def length(self, config: Config, split: Split) -> int:
        """Images of a config's split that the pages offer."""
        return split_length(config, self.source(config), split)

    def check_index(self, config: Config, split: Split, index: int) -> None:
        """:class:`NotFound` past the end of the split."""
        _check(self.length(config, split), split, index)

    # ------------------------------------------------------------------ images
    def preview(self, config: Config, split: Split, index: int) -> tuple[Sample, Ignore]:
        """Image ``index`` of a config's split, unaugmented at the input size, and its ignore regions."""
        self.source(config)  # NotFound once the dataset is removed, whatever the cache holds
        return self._preview(config.data, config.seed, split, index)

    def sample(self, config: Config, split: Split, index: int) -> Sample:
        """Image ``index`` of a config's split (unaugmented, at the input size)."""
        return self.preview(config, split, index)[0]

    def boxes(self, config: Config, split: Split, n: int) -> DatasetBoxes:
        """Ground truth of images ``0..n-1`` of a split in the input's pixels (the prior explorer's
        coverage and the statistics); for an imported dataset from its index, nothing decoded."""
        return self.source(config).boxes(config, split, n)

    def _about(self, config: Config, job: str | None) -> dict[str, Any]:
        source = self.source(config)
        return {"job": job, "dataset": source.id, "dataset_name": source.name, "classes": source.display_names}

    def list_images(
        self, split: Split, job: str | None, *, offset: int, limit: int, root: str, dataset: str | None = None
    ) -> dict[str, Any]:
        """A page of images: index, PNG URL, ground-truth boxes and labels (and class names and
        file names of an imported dataset)."""
        config = self.config_of(job, dataset)
        about = self._about(config, job)
        source = self.source(config)
        total = self.length(config, split)
        items = []
        for index in range(offset, min(offset + limit, total)):
            s = self.sample(config, split, index)
            item = {
                "index": index,
                "url": image_url(split, index, job, root, dataset=about["dataset"]),
                "boxes": _boxes(s.boxes, s.labels, about["classes"]),
            }
            record = source.record(split, index)
            if record is not None:
                item["file"] = source_path(record.file)
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
        s, ignore = self.preview(config, split, index)
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
        record = self.source(config).record(split, index)
        if record is not None:
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
