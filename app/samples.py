"""Dataset images for the inspection pages: which config, which images, generated once.

The dataset browser and the prior explorer show the built-in generator's images of a config:
a job's (``?job=ID``) or the default one. Samples are pure functions of (data config, seed,
split, index), so they are cached by exactly that key.
"""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from fastapi import HTTPException, Query, status

from app.api.jobs import config_from_data
from app.settings import Settings
from app.store import JobStore
from ssd.config import Config, DataConfig, from_dict
from ssd.data import VAL_SEED, Sample, for_config

Split = Literal["train", "val"]
TRAIN_BROWSE = 10_000  # the train generator is endless; the browser pages through this many

JobQuery = Annotated[str | None, Query(description="Use this job's config (default: the default preset).")]


def config_of(job: str | None, store: JobStore, settings: Settings) -> Config:
    """The config of job ``job``, or the default config; 404 for an unknown job."""
    if job is None:
        return from_dict({})
    record = store.get_job(job)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job}")
    return config_from_data(dict(record["config"]), settings, loc=("query", "job"))


def split_length(config: Config, split: Split) -> int:
    """Images the pages offer: the validation set of the config, or :data:`TRAIN_BROWSE`."""
    return config.data.val_images if split == "val" else TRAIN_BROWSE


def check_index(config: Config, split: Split, index: int) -> None:
    """404 past the end of the split (negative indices are refused by the route's ``ge=0``)."""
    length = split_length(config, split)
    if index >= length:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{split} has {length} images (0..{length - 1}), not {index}")


@functools.lru_cache(maxsize=256)
def _sample(data: DataConfig, seed: int, split: Split, index: int) -> Sample:
    return for_config(Config(seed=seed, data=data), split)[index]


def sample(config: Config, split: Split, index: int) -> Sample:
    """Image ``index`` of a config's split (cached; about 1 ms to generate)."""
    seed = config.seed if split == "train" else VAL_SEED
    return _sample(config.data, seed, split, index)


def image_url(split: Split, index: int, job: str | None, root: str = "") -> str:
    """URL of the PNG of an image."""
    query = f"?job={job}" if job else ""
    return f"{root}/api/datasets/{split}/images/{index}.png{query}"
