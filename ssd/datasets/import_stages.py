"""The check and copy stages of an import, each in a thread pool: every image decoded once
(Pillow releases the GIL while it decodes), then the kept images copied or moved into the
dataset's directory (file I/O releases it too). TensorFlow-free.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ssd.datasets.records import DatasetError, DatasetIndex, RawDataset
from ssd.datasets.report import Reason
from ssd.datasets.validate import read_image_size

Progress = Callable[[int, int, str], None]
"""``progress(done, total, stage)``; stages: ``read``, ``check``, ``copy``, ``write``, ``done``."""

THREADS = min(8, os.cpu_count() or 1)


def inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


@contextlib.contextmanager
def _pool() -> Iterator[ThreadPoolExecutor]:
    """A thread pool whose queued work is dropped when the import fails or is interrupted (a
    plain ``with ThreadPoolExecutor`` would first check or copy every image left)."""
    pool = ThreadPoolExecutor(THREADS)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def checked_sizes(raw: RawDataset, progress: Progress) -> Callable[[Path], tuple[int, int] | Reason]:
    """Every image of ``raw`` decoded once, in a thread pool (Pillow releases the GIL while it
    decodes); returns the lookup :func:`validate` takes as ``image_size``."""
    paths = list(dict.fromkeys(raw.root / image.file for image in raw.images))
    sizes: dict[Path, tuple[int, int] | Reason] = {}
    last = time.monotonic()
    with _pool() as pool:
        for done, (path, size) in enumerate(zip(paths, pool.map(read_image_size, paths), strict=True), 1):
            sizes[path] = size
            if time.monotonic() - last > 0.1 or done == len(paths):
                progress(done, len(paths), "check")
                last = time.monotonic()
    return lambda path: sizes[path] if path in sizes else read_image_size(path)


def copy_images(source_root: Path, dest: Path, index: DatasetIndex, *, moving: bool, progress: Progress) -> None:
    """Put each kept image under ``dest/images/`` at its path in the source and point the index
    there (``images/<path>``); ``moving`` renames (an unpacked zip in the same temporary
    directory) instead of copying. Copies run in a thread pool (file I/O releases the GIL)."""
    plan: dict[str, str] = {}  # target (relative to dest) -> source (relative to source_root)
    for record in index.images:
        target = posixpath.normpath(posixpath.join("images", record.file))
        if posixpath.isabs(record.file) or not target.startswith("images/"):
            raise DatasetError(record.file, "the image path leaves the dataset's folder")
        plan.setdefault(target, record.file)
        record.file = target
    for folder in sorted({posixpath.dirname(target) for target in plan}):
        (dest / folder).mkdir(parents=True, exist_ok=True)

    def put(item: tuple[str, str]) -> None:
        target, source = item
        (os.replace if moving else shutil.copyfile)(source_root / source, dest / target)

    last = time.monotonic()
    with _pool() as pool:
        for done, _ in enumerate(pool.map(put, plan.items()), 1):
            if time.monotonic() - last > 0.1 or done == len(plan):
                progress(done, len(plan), "copy")
                last = time.monotonic()
