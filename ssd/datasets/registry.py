"""The dataset registry: imported datasets under ``DATA_DIR/datasets/``, plus the built-in ``mnist``.

On disk, one directory per dataset, named by its id (12 hex digits, like a job's)::

    DATA_DIR/datasets/
        .lock                 flock'ed while a dataset is committed or removed
        .tmp-<random>/        an import in progress (never listed; removed when it fails)
        <id>/
            meta.json         id, name, format, created, status, classes, counts, splits, source, ...
            index.json        :class:`~ssd.datasets.records.DatasetIndex`, image paths relative to <id>/
            report.json       :class:`~ssd.datasets.report.Report` (``to_dict``)
            images/...        the image files as imported, under their path in the source

An import builds everything in ``.tmp-<random>/`` and renames it to ``<id>/`` when complete, so
a reader (the CLI, the server, several processes) sees a dataset entirely or not at all; any
failure, Ctrl-C included, removes the temporary directory. A removal renames ``<id>/`` away
first, for the same reason. ``mnist`` is a virtual entry for the built-in generator (registered in
:data:`ssd.datasets.source.BUILTIN`): always listed, never removable, without index or images.
:meth:`Registry.source` gives any entry as the :class:`~ssd.datasets.source.DataSource` that
training and the pages read.

TensorFlow-free; the server calls :meth:`Registry.import_dataset` from a worker thread and feeds
its ``progress(done, total, stage)`` callback to a status.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import math
import os
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ssd.datasets.import_stages import Progress, checked_sizes, copy_images, inside
from ssd.datasets.limits import ImportLimits
from ssd.datasets.records import DatasetError, DatasetIndex, RawDataset
from ssd.datasets.report import Report
from ssd.datasets.source import BUILTIN, DataSource, ImportedSource
from ssd.datasets.splits import assign_splits
from ssd.datasets.text import shown
from ssd.datasets.validate import validate

DEFAULT_MAX_UNPACKED_BYTES = 16 * 2**30
MAX_NAME_LENGTH = 100
ID_PATTERN = re.compile(r"^[0-9a-f]{12}$")


class RegistryError(ValueError):
    """A registry operation that cannot be done (the message says why, for a user)."""


class DatasetNotFound(RegistryError, LookupError):
    """No dataset with that id or name."""


class NameTaken(RegistryError):
    """A dataset of that name is registered already."""


class BuiltInDataset(RegistryError):
    """The built-in ``mnist`` cannot be removed, nor does it have an index."""


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities (raw box values as read) turned into strings: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(json_safe(data), indent=1, allow_nan=False))


def check_name(name: str) -> str:
    """A dataset name as given, stripped; RegistryError when empty, too long, with control
    characters, or ``mnist``."""
    from ssd.config import printable_text

    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not printable_text(name):
        raise RegistryError(f"a dataset name has 1 to {MAX_NAME_LENGTH} printable characters, got {name!r}")
    if name.lower() in BUILTIN:
        raise NameTaken(f"{name.lower()!r} is the built-in dataset's name")
    return name


def default_name(src: Path) -> str:
    """The name of an import without ``--name``: the source's file or folder name, without suffix."""
    src = Path(src)
    name = src.name if src.is_dir() else src.stem
    if name.endswith(".tar"):
        name = name[:-4]
    return name or "dataset"


def _load_meta(path: Path) -> dict[str, Any]:
    """A dataset's ``meta.json``, its class names shown safely: an import made before names were
    checked may have written a lone surrogate, which no JSON answer or terminal can encode."""
    meta: dict[str, Any] = json.loads(path.read_text())
    if any(not isinstance(c, str) or not c.isprintable() for c in meta.get("classes") or []):
        meta["classes"] = [shown(str(c)) for c in meta["classes"]]
    return meta


class Registry:
    """Datasets under ``data_dir/datasets``; safe to use from several threads and processes."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "datasets"

    # -- reading -------------------------------------------------------------------------------

    def _metas(self) -> Iterator[dict[str, Any]]:
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if ID_PATTERN.match(entry.name) and (entry / "meta.json").is_file():
                with contextlib.suppress(OSError, ValueError):  # removed meanwhile
                    yield _load_meta(entry / "meta.json")

    def list(self) -> list[dict[str, Any]]:
        """Every dataset's meta: the built-in ones (``mnist``) first, then the imported ones, oldest first."""
        return [*(b.meta for b in BUILTIN.values()), *sorted(self._metas(), key=lambda m: (m["created"], m["id"]))]

    def get(self, id_or_name: str) -> dict[str, Any]:
        """The meta of the dataset with that id, else with that name; DatasetNotFound."""
        if id_or_name in BUILTIN:
            return BUILTIN[id_or_name].meta
        if ID_PATTERN.match(id_or_name):
            path = self.root / id_or_name / "meta.json"
            with contextlib.suppress(OSError):
                return _load_meta(path)
        for meta in self._metas():
            if meta["name"] == id_or_name:
                return meta
        raise DatasetNotFound(f"no dataset with the id or name {id_or_name!r}")

    def path(self, id_or_name: str) -> Path:
        """The directory of an imported dataset (the image paths of its index are relative to it)."""
        meta = self.get(id_or_name)
        if meta["id"] in BUILTIN:
            raise BuiltInDataset(f"{meta['id']} is generated on the fly: it has no directory")
        return self.root / meta["id"]

    def source(self, id_or_name: str) -> DataSource:
        """The dataset as the trainer, the evaluation and the pages read it (:mod:`ssd.datasets.source`)."""
        meta = self.get(id_or_name)
        if meta["id"] in BUILTIN:
            return BUILTIN[meta["id"]]
        return ImportedSource(meta, self.root / meta["id"])

    def index(self, id_or_name: str) -> DatasetIndex:
        """The validated index of an imported dataset."""
        return DatasetIndex.load(self.path(id_or_name) / "index.json")

    def report(self, id_or_name: str) -> Report:
        """The validation report of an import (an empty one for a built-in dataset)."""
        return self.source(id_or_name).report()

    # -- changing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock over commits and removals, across threads and processes (flock)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _check_free(self, name: str) -> None:
        for meta in self._metas():
            if meta["name"] == name:
                raise NameTaken(f"a dataset named {name!r} exists already (id {meta['id']})")

    def remove(self, id_or_name: str) -> dict[str, Any]:
        """Delete an imported dataset; returns its meta. ``mnist`` raises BuiltInDataset."""
        meta = self.get(id_or_name)
        if meta["id"] in BUILTIN:
            raise BuiltInDataset(f"{meta['id']} is the built-in dataset: it cannot be removed")
        trash = self.root / f".trash-{secrets.token_hex(6)}"
        with self._locked():
            try:
                os.rename(self.root / meta["id"], trash)
            except FileNotFoundError:
                raise DatasetNotFound(f"no dataset with the id or name {id_or_name!r}") from None
        shutil.rmtree(trash, ignore_errors=True)
        return meta

    def discard_unfinished(self, dataset_id: str) -> bool:
        """Remove ``.tmp-<dataset_id>``, what an import of that id left when its process died,
        unless an import still holds it; whether there was one to remove."""
        tmp = self.root / f".tmp-{dataset_id}"
        if not ID_PATTERN.match(dataset_id) or not tmp.is_dir() or not _abandoned(tmp):
            return False
        shutil.rmtree(tmp, ignore_errors=True)
        return True

    def sweep(self, *, min_age_s: float = 60.0) -> builtins.list[str]:
        """Remove what crashed imports and removals left: ``.trash-*`` directories, and ``.tmp-*``
        ones older than ``min_age_s`` that no live import holds (its ``.importing`` lock is free);
        returns their names."""
        swept: builtins.list[str] = []
        if not self.root.is_dir():
            return swept
        for entry in self.root.iterdir():
            if entry.name.startswith(".tmp-"):
                try:
                    if time.time() - entry.stat().st_mtime < min_age_s or not _abandoned(entry):
                        continue
                except OSError:
                    continue
            elif not entry.name.startswith(".trash-"):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            swept.append(entry.name)
        return swept

    def import_dataset(
        self,
        src: Path | str,
        *,
        format: str = "auto",
        name: str | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
        progress: Progress | None = None,
        reader: Callable[[Path, str], RawDataset] | None = None,
        dataset_id: str | None = None,
        limits: ImportLimits | None = None,
    ) -> dict[str, Any]:
        """Read, validate, split and register a dataset; returns its meta (``status: ready``).

        ``dataset_id`` (12 hex digits) is the id to register it under — the server hands out the
        id when an upload arrives, before the import runs — else a new one; the import builds in
        ``.tmp-<dataset_id>`` then (:meth:`discard_unfinished` finds it after a crash).
        ``limits``: the annotation file size, images and boxes read (default :class:`ImportLimits`).

        ``src`` is a COCO JSON file, a VOC or YOLO folder, or a ``.zip`` of one (see
        :func:`ssd.datasets.sources.open_source`). Images without a split of the dataset's own are
        split by :func:`ssd.datasets.splits.assign_splits` (``val_fraction``, ``seed``). ``reader``
        replaces :func:`ssd.datasets.sources.read` (tests). Raises DatasetError for a dataset
        that cannot be imported, RegistryError for a bad name or fraction; nothing is left behind.
        """
        src = Path(src)
        if dataset_id is not None and not ID_PATTERN.match(dataset_id):
            raise RegistryError(f"a dataset id is 12 hex digits, not {dataset_id!r}")
        name = check_name(name if name is not None else default_name(src))
        if not 0.0 <= val_fraction < 1.0:
            raise RegistryError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self._check_free(name)
        self.root.mkdir(parents=True, exist_ok=True)
        self.sweep()
        tmp = self.root / f".tmp-{dataset_id or secrets.token_hex(6)}"
        tmp.mkdir()
        tell: Progress = progress if progress is not None else (lambda done, total, stage: None)
        try:
            with open(tmp / ".importing", "a+b") as held:
                fcntl.flock(held, fcntl.LOCK_EX)  # sweep() leaves a held temporary directory alone
                meta = self._build(
                    src, tmp, format, name, val_fraction, seed, max_unpacked_bytes, tell, reader, dataset_id, limits
                )
                with self._locked():
                    self._check_free(name)
                    if (self.root / meta["id"]).exists():
                        raise RegistryError(f"a dataset with the id {meta['id']} exists already")
                    os.rename(tmp, self.root / meta["id"])
                    tmp = self.root / meta["id"]  # from here on a failure removes the new entry
                    (tmp / ".importing").unlink()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tell(1, 1, "done")
        return meta

    def _build(
        self,
        src: Path,
        tmp: Path,
        fmt: str,
        name: str,
        val_fraction: float,
        seed: int,
        max_unpacked_bytes: int,
        progress: Progress,
        reader: Callable[[Path, str], RawDataset] | None,
        dataset_id: str | None = None,
        limits: ImportLimits | None = None,
    ) -> dict[str, Any]:
        """Everything of one import, written into ``tmp``; returns the meta."""
        progress(0, 1, "read")
        if reader is None:
            from ssd.datasets.sources import open_source, read

            opened = open_source(src, tmp / "src", max_unpacked_bytes=max_unpacked_bytes)
            raw = read(
                opened,
                format=fmt,  # type: ignore[arg-type]
                limits=limits,
                progress=lambda done, total: progress(done, total, "read"),
            )
        else:
            raw = reader(src, fmt)
        progress(1, 1, "read")
        own_split = {image.split for image in raw.images} >= {"train", "val"}
        index, report = validate(raw, image_size=checked_sizes(raw, progress))
        if not own_split:
            assign_splits(index.images, val_fraction, seed=seed)
        if not index.images:
            dropped = ", ".join(f"{n} {reason.value}" for reason, n in report.counts.most_common(3))
            first = f"; first: {report.problems[0].file}: {report.problems[0].reason.value}" if report.problems else ""
            raise DatasetError(src.name, f"no image could be kept ({dropped or 'the dataset lists none'}){first}")
        index.name = name
        copy_images(raw.root, tmp, index, moving=inside(raw.root, tmp), progress=progress)
        progress(0, 1, "write")
        dataset_id = dataset_id or uuid.uuid4().hex[:12]
        counts = index.counts()
        meta = {
            "id": dataset_id,
            "name": name,
            "format": raw.format,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "status": "ready",
            "classes": list(index.classes),
            "counts": {"images": counts["images"], "boxes": counts["boxes"], "ignored": report.ignored},
            # The most boxes (ignore regions included) of one image: a batch's padded rows, which
            # the server's memory estimate needs without reading the index.
            "max_boxes": max(len(r.labels) + len(r.ignore) for r in index.images),
            "splits": counts["splits"],
            "split_from": "dataset" if own_split else f"random (val_fraction {val_fraction}, seed {seed})",
            "source": src.name,
            "builtin": False,
        }
        shutil.rmtree(tmp / "src", ignore_errors=True)
        index.save(tmp / "index.json")
        _write_json(tmp / "report.json", report.to_dict())
        _write_json(tmp / "meta.json", meta)
        progress(1, 1, "write")
        return meta


def _abandoned(tmp: Path) -> bool:
    """Whether no import holds ``tmp/.importing`` (or it has none)."""
    try:
        handle = open(tmp / ".importing", "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return True
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True
