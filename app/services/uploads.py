"""Dataset uploads on disk: a ``.zip`` streamed into ``DATA_DIR/uploads/upload-*/NAME.zip``.

Each upload's folder is flock'ed while a server holds it (receiving, queued, importing), so
:func:`sweep_uploads` at start-up removes exactly what a stopped server left, never a live
server's upload. The file is checked as it arrives: a zip by its first bytes
(:class:`~app.domain.UnsupportedMedia`, 415) and ``max_bytes`` (:class:`~app.domain.TooLarge`, 413).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from app.domain import TooLarge, UnsupportedMedia
from app.settings import byte_size

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header, or an empty zip's end record


def safe_filename(filename: str) -> str:
    """The last component of a client's file name, printable, at most 100 characters, ``.zip``."""
    base = re.split(r"[/\\]", filename)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".")[:100]
    if not base:
        base = "dataset.zip"
    return base if base.lower().endswith(".zip") else base + ".zip"


class Upload:
    """A ``.zip`` being received: ``DATA_DIR/uploads/upload-*/NAME.zip``, its folder flock'ed until
    :meth:`discard`, checked as it arrives. Not thread-safe: one writer."""

    def __init__(self, folder: Path, filename: str, *, max_bytes: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="upload-", dir=folder))
        self._lock = os.open(self.dir, os.O_RDONLY)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.path = self.dir / safe_filename(filename)
        self.filename = filename
        self.max_bytes = max_bytes
        self.size = 0
        self.taken = False  # set when an import owns it (and discards it when done)
        # Gives back the import slot the upload holds while it streams (ImportQueue.reserve);
        # discard() calls it, or the import takes the slot over and clears it.
        self.release: Callable[[], None] | None = None
        self._head = b""
        self._file = open(self.path, "xb")  # noqa: SIM115 - closed by finish() or discard()

    def write(self, data: bytes) -> None:
        """Append ``data``. Raises TooLarge past ``max_bytes``, UnsupportedMedia when the first
        bytes are not a zip's."""
        self.size += len(data)
        if self.size > self.max_bytes:
            raise TooLarge(f"the file is larger than {byte_size(self.max_bytes)} (SSDBOARD_MAX_DATASET_BYTES)")
        if len(self._head) < 4:
            self._head += data[: 4 - len(self._head)]
            if len(self._head) == 4:
                self._check_zip()
        self._file.write(data)

    def _check_zip(self) -> None:
        if self._head not in ZIP_MAGIC:
            raise UnsupportedMedia("the file is not a .zip (checked by its first bytes): zip the dataset's folder")

    def finish(self) -> None:
        """Close the file; UnsupportedMedia for a file too short to be a zip."""
        self._file.close()
        self._check_zip()

    def discard(self) -> None:
        """Remove the file and its folder, release the lock and the import slot it holds."""
        if self.release is not None:
            release, self.release = self.release, None
            release()
        self._file.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._lock)


def sweep_uploads(folder: Path) -> list[str]:
    """Remove the upload folders no live server holds (their flock is free); their names."""
    swept: list[str] = []
    if not folder.is_dir():
        return swept
    for entry in folder.iterdir():
        try:
            fd = os.open(entry, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        else:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            swept.append(entry.name)
        finally:
            os.close(fd)
    return swept
