"""Dataset images for the inspection pages: which config, which images, generated once.

The dataset browser and the prior explorer show the built-in generator's images of a config:
a job's (``job=ID``) or the default one. Samples are pure functions of (data config, seed,
split, index), so the service caches them by exactly that key. Boxes are pixel ``xyxy``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from app.domain import NotFound
from app.figures.dataset import sample_figure, stats_figures
from app.images import data_url, png_bytes
from app.services.jobs import JobService
from ssd.config import Config, DataConfig, from_dict
from ssd.coverage import DatasetBoxes, dataset_boxes
from ssd.data import VAL_SEED, Sample, for_config
from ssd.geometry import box_size

Split = Literal["train", "val"]
TRAIN_BROWSE = 10_000  # the train generator is endless; the browser pages through this many


def image_url(split: Split, index: int, job: str | None, root: str = "") -> str:
    """URL of the PNG of an image."""
    query = f"?job={job}" if job else ""
    return f"{root}/api/datasets/{split}/images/{index}.png{query}"


def split_length(config: Config, split: Split) -> int:
    """Images the pages offer: the validation set of the config, or :data:`TRAIN_BROWSE`."""
    return config.data.val_images if split == "val" else TRAIN_BROWSE


def check_index(config: Config, split: Split, index: int) -> None:
    """:class:`NotFound` past the end of the split (negative indices are refused by the routes)."""
    length = split_length(config, split)
    if index >= length:
        raise NotFound(f"{split} has {length} images (0..{length - 1}), not {index}")


def _boxes(boxes: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    return [
        {"box": [round(v, 2) for v in box], "label": label, "width": box[2] - box[0], "height": box[3] - box[1]}
        for box, label in zip(boxes.tolist(), labels.tolist(), strict=True)
    ]


def _summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0}
    return {
        k: round(float(f(values)), 2)
        for k, f in (("min", np.min), ("median", np.median), ("mean", np.mean), ("max", np.max))
    }


def stats(data: DatasetBoxes, num_classes: int) -> dict[str, Any]:
    """Numbers and figures of a set of ground truths."""
    valid = data.valid
    boxes, labels = data.boxes[valid], data.labels[valid]
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    figures = stats_figures(counts=data.counts, widths=widths, heights=heights, labels=labels, num_classes=num_classes)
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


class DatasetService:
    """Images, ground truth and statistics of the built-in generator under a job's or the default config."""

    def __init__(self, jobs: JobService, *, cache_size: int = 256) -> None:
        self.jobs = jobs
        # About 1 ms to generate an image, but the pages ask for the same ones again and again.
        self._sample: Callable[[DataConfig, int, Split, int], Sample] = functools.lru_cache(maxsize=cache_size)(
            lambda data, seed, split, index: for_config(Config(seed=seed, data=data), split)[index]
        )

    def config_of(self, job: str | None) -> Config:
        """The config of job ``job``, or the default config; :class:`NotFound` for an unknown job."""
        return from_dict({}) if job is None else self.jobs.config_of(job)

    def sample(self, config: Config, split: Split, index: int) -> Sample:
        """Image ``index`` of a config's split."""
        seed = config.seed if split == "train" else VAL_SEED
        return self._sample(config.data, seed, split, index)

    def list_images(self, split: Split, job: str | None, *, offset: int, limit: int, root: str) -> dict[str, Any]:
        """A page of images: index, PNG URL, ground-truth boxes and labels."""
        config = self.config_of(job)
        total = split_length(config, split)
        items = []
        for index in range(offset, min(offset + limit, total)):
            s = self.sample(config, split, index)
            items.append(
                {"index": index, "url": image_url(split, index, job, root), "boxes": _boxes(s.boxes, s.labels)}
            )
        return {
            "split": split,
            "job": job,
            "total": total,
            "offset": offset,
            "limit": limit,
            "image_size": config.data.image_size,
            "items": items,
        }

    def image_png(self, split: Split, index: int, job: str | None) -> bytes:
        """One image as PNG bytes (no boxes drawn)."""
        config = self.config_of(job)
        check_index(config, split, index)
        return png_bytes(self.sample(config, split, index).image)

    def image_detail(self, split: Split, index: int, job: str | None, *, root: str) -> dict[str, Any]:
        """One image: its boxes and a zoomable figure (image + boxes, hover: class, box, size)."""
        config = self.config_of(job)
        check_index(config, split, index)
        s = self.sample(config, split, index)
        size = config.data.image_size
        figure = sample_figure(data_url(s.image), s.boxes, s.labels, width=size, height=size)
        return {
            "split": split,
            "index": index,
            "job": job,
            "total": split_length(config, split),
            "image_size": size,
            "url": image_url(split, index, job, root),
            "boxes": _boxes(s.boxes, s.labels),
            "figure": figure.to_plotly_json(),
        }

    def split_stats(self, split: Split, job: str | None, *, n: int) -> dict[str, Any]:
        """Statistics of the first ``n`` images of a split."""
        config = self.config_of(job)
        n = min(n, split_length(config, split))
        return {"split": split, "job": job, **stats(dataset_boxes(config, split, n), config.model.num_classes)}
