"""A config's dataset, resolved once: from ``data.dataset`` to a :class:`~ssd.datasets.source.DataSource`.

Every command and the dashboard's workers find datasets in the registry under one directory:
:func:`default_data_dir` (the artifact root every node of a cluster mounts, when there is one).
:func:`resolve` looks the name up there once; what reads data afterwards takes the source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ssd.config import Config, ConfigError
from ssd.coverage import DatasetBoxes
from ssd.datasets.loader import DEFAULT_CACHE_BYTES
from ssd.datasets.registry import DatasetNotFound, Registry
from ssd.datasets.source import MNIST, DataSource, Split, SplitData


def default_data_dir() -> Path:
    """``SSDBOARD_ARTIFACT_DIR``, else ``SSDBOARD_DATA_DIR``, else ``data``: where every command finds
    the dataset registry (the artifact root that every node of a cluster mounts, when there is one)."""
    return Path(os.environ.get("SSDBOARD_ARTIFACT_DIR") or os.environ.get("SSDBOARD_DATA_DIR") or "data")


def resolve(config: Config, data_dir: Path | None = None) -> DataSource:
    """The source of ``config.data.dataset`` in the registry in ``data_dir``, checked against the config.

    Raises:
        ConfigError: ``data.dataset`` names no dataset, or ``model.num_classes`` disagrees with it.
    """
    try:
        source = Registry(data_dir or default_data_dir()).source(config.data.dataset)
    except DatasetNotFound as exc:
        raise ConfigError("data.dataset", str(exc)) from None
    source.check(config)
    return source


def apply_dataset(data: Mapping[str, Any], data_dir: Path | None = None) -> dict[str, Any]:
    """A config mapping bound to its dataset (:meth:`~ssd.datasets.source.DataSource.bind`): an
    imported dataset's ``data.dataset`` becomes its id and ``model.num_classes`` its class count
    (set when absent; a different value is refused).

    Raises:
        ConfigError: ``data.dataset`` names no dataset; ``model.num_classes`` disagrees with it.
    """
    section = data.get("data")
    if not isinstance(section, Mapping):
        return dict(data)  # no data section: the generator (or a bad value, for from_dict to refuse)
    name = section.get("dataset", MNIST)
    if not isinstance(name, str):
        return dict(data)  # for from_dict to refuse, naming the field
    try:
        source = Registry(data_dir or default_data_dir()).source(name)
    except DatasetNotFound as exc:
        raise ConfigError("data.dataset", f"{exc} (ssdboard datasets list shows them)") from None
    return source.bind(data)


def for_config(
    config: Config,
    split: Split,
    data_dir: Path | None = None,
    *,
    augment: bool = True,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> SplitData:
    """One split of a config's dataset (:func:`resolve`, then :meth:`~ssd.datasets.source.DataSource.split`)."""
    return resolve(config, data_dir).split(config, split, augment=augment, cache_bytes=cache_bytes)


def split_boxes(config: Config, split: Split, n: int, data_dir: Path | None = None) -> DatasetBoxes:
    """The objects of the first ``n`` images of a config's split in the network input, unaugmented
    (:meth:`~ssd.datasets.source.DataSource.boxes`).

    Raises:
        ConfigError: ``data.dataset`` names no dataset.
    """
    return resolve(config, data_dir).boxes(config, split, n)
