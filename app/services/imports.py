"""The server's dataset imports: at most ``MAX_PENDING`` at once, one running at a time, each in a
process of its own (:mod:`app.worker.dataset_import`).

- **Slots.** An upload takes its slot (:meth:`ImportQueue.reserve`) before its first byte is
  stored, and gives it back if it fails; an import keeps it until it ends. Ten uploads streaming
  at once therefore get exactly 8 slots: counting only the imports already queued let all ten in.
- **Imports.** One thread starts the queued imports' processes one after the other, relays their
  progress to the :class:`Import` (``done``/``total``/``stage``) and turns their outcome into
  ``ready`` or ``failed``. A process that ran out of its memory limit, died by a signal or was
  stopped with the server is a ``failed`` import whose error says so in words; the half-built
  directory it may leave is removed. The server's own memory never holds what an import reads.
- **Stopping.** :meth:`ImportQueue.close` drops the queued imports and stops the running one
  (SIGTERM: it removes its files and exits; SIGKILL after ``STOP_WAIT_S``).

An :class:`Import` lives in this process only: a server that stops forgets its imports.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import site
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import app
from app.domain import Conflict
from app.services.uploads import Upload
from app.settings import Settings, byte_size
from app.worker.dataset_import import ImportRequest
from ssd.datasets.registry import Registry

log = logging.getLogger("ssdboard.datasets")

MAX_PENDING = 8  # imports uploading, queued or running at once; more is a 409
KEEP_DONE = 100  # finished imports remembered (their upload id -> dataset id, or their error)
STOP_WAIT_S = 5.0  # how long a stopping server lets the running import clean up before SIGKILL
GIB = 2**30
LIMIT_SETTINGS = {
    "annotation_bytes": "SSDBOARD_MAX_DATASET_ANNOTATION_BYTES",
    "images": "SSDBOARD_MAX_DATASET_IMAGES",
    "boxes": "SSDBOARD_MAX_DATASET_BOXES",
}
DOING = {
    "queued": "starting",
    "read": "reading the annotations",
    "check": "checking the images",
    "copy": "copying the images",
    "write": "writing the index",
    "done": "registering the dataset",
}
Status = Literal["importing", "ready", "failed"]


@dataclass
class Import:
    """An upload's import, known to this process only."""

    id: str
    name: str
    format: str
    source: str
    size: int
    val_fraction: float
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    status: Status = "importing"
    progress: dict[str, Any] = field(default_factory=lambda: {"done": 0, "total": 1, "stage": "queued"})
    error: str | None = None
    dataset_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """What the API answers while importing or after a failure."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "format": self.format,
            "created": self.created,
            "source": self.source,
            "bytes": self.size,
            "progress": dict(self.progress),
            "error": self.error,
            "builtin": False,
        }


def child_environment() -> dict[str, str]:
    """The import process's environment: this one's, one BLAS thread, two malloc arenas (see
    :mod:`app.worker.dataset_import`), and ``app`` importable from wherever this server imported it."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    root = str(Path(app.__file__).resolve().parents[1])
    if root not in site.getsitepackages():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def death_message(code: int, stage: str, memory_gib: float) -> str:
    """Why an import failed whose process ended without an outcome, for a user."""
    doing = DOING.get(stage, stage)
    if code < 0:
        try:
            name = f", {signal.Signals(-code).name}"
        except ValueError:
            name = ""
        return (
            f"the import process was killed (signal {-code}{name}) while {doing}: if the machine ran out of memory,"
            f" set SSDBOARD_IMPORT_MEMORY_GIB (now {memory_gib:g} GiB) below what it has free"
        )
    return f"the import process exited with status {code} while {doing} (the server's log has more)"


class ImportQueue:
    """This server's imports (see the module docstring); thread-safe."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self._imports: OrderedDict[str, Import] = OrderedDict()
        self._reserved = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Import, Upload] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._process: subprocess.Popen[str] | None = None
        self._closing = False

    # ------------------------------------------------------------------ what is known
    def find(self, dataset: str) -> Import | None:
        """The import with that id, else the one in progress with that name."""
        with self._lock:
            found = self._imports.get(dataset)
            if found is None:
                found = next((i for i in self._imports.values() if i.status == "importing" and i.name == dataset), None)
            return found

    def unfinished(self) -> list[dict[str, Any]]:
        """The imports in progress or failed, oldest first."""
        with self._lock:
            return [i.to_dict() for i in self._imports.values() if i.status != "ready"]

    def forget(self, import_id: str) -> None:
        """Drop a failed import from the list."""
        with self._lock:
            self._imports.pop(import_id, None)

    # ------------------------------------------------------------------ slots
    def reserve(self) -> Callable[[], None]:
        """Take a slot for an upload about to stream; Conflict when all ``MAX_PENDING`` are taken.
        Returns the function that gives it back (the first call only counts)."""
        with self._lock:
            taken = self._reserved + sum(i.status == "importing" for i in self._imports.values())
            if taken >= MAX_PENDING:
                raise Conflict(f"{MAX_PENDING} imports are waiting already: try again when one is done")
            self._reserved += 1
        given_back = threading.Event()

        def release() -> None:
            with self._lock:
                if not given_back.is_set():
                    given_back.set()
                    self._reserved -= 1

        return release

    def submit(self, item: Import, upload: Upload) -> None:
        """Queue the import of a received upload; its slot passes from the upload to the import."""
        with self._lock:
            if upload.release is not None:
                self._reserved -= 1
                upload.release = None
            self._imports[item.id] = item
            upload.taken = True
            self._queue.put((item, upload))
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="dataset-import", daemon=True)
                self._worker.start()

    # ------------------------------------------------------------------ running
    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            item, upload = job
            try:
                self._import(item, upload)
            except Exception as exc:  # the thread must go on: the import fails, saying what happened
                log.exception("import %s (%s) failed", item.id, item.source)
                item.error, item.status = f"{item.source}: {type(exc).__name__}: {exc}", "failed"
            finally:
                upload.discard()
                with self._lock:
                    done = [k for k, i in self._imports.items() if i.status != "importing"]
                    for key in done[: max(0, len(done) - KEEP_DONE)]:
                        del self._imports[key]

    def _request(self, item: Import, upload: Upload) -> ImportRequest:
        settings = self.settings
        return ImportRequest(
            data_dir=str(self.registry.data_dir),
            source=str(upload.path),
            format=item.format,
            name=item.name,
            val_fraction=item.val_fraction,
            dataset_id=item.id,  # the id the 202 answered is the dataset's for good
            max_unpacked_bytes=settings.max_dataset_unpacked_bytes,
            memory_bytes=int(settings.import_memory_gib * GIB),
            limits={
                "annotation_bytes": settings.max_dataset_annotation_bytes,
                "images": settings.max_dataset_images,
                "boxes": settings.max_dataset_boxes,
                "names": LIMIT_SETTINGS,
            },
        )

    def _import(self, item: Import, upload: Upload) -> None:
        """Run one import's process to its end; ``item`` ends ready or failed."""
        started = time.monotonic()
        outcome: dict[str, Any] = {}
        with self._lock:
            if self._closing:
                return
            try:
                process = subprocess.Popen(
                    [sys.executable, "-m", "app.worker.dataset_import"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=child_environment(),
                    text=True,
                )
            except OSError as exc:
                item.error, item.status = f"the import process could not start: {exc}", "failed"
                return
            self._process = process
        assert process.stdin is not None and process.stdout is not None
        try:
            with process.stdin:
                process.stdin.write(json.dumps(asdict(self._request(item, upload))))
        except OSError:  # it died before reading its request: its exit status says how
            pass
        for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "progress" in message:
                done, total, stage = message["progress"]
                item.progress = {"done": done, "total": total, "stage": stage}
            else:
                outcome = message
        code = process.wait()
        with self._lock:
            self._process = None
        self._finish(item, outcome, code)
        peak = outcome.get("peak_bytes")
        log.info(
            "import %s (%s): %s in %.1f s%s",
            item.id,
            item.source,
            item.status if item.error is None else f"{item.status}: {item.error}",
            time.monotonic() - started,
            f", peak memory {byte_size(peak)}" if peak else "",
        )

    def _finish(self, item: Import, outcome: dict[str, Any], code: int) -> None:
        """Set ``item``'s status and error from its process's outcome and exit status."""
        gib = self.settings.import_memory_gib
        if "ready" in outcome:
            item.dataset_id, item.status = outcome["ready"]["id"], "ready"
            return
        if "failed" in outcome:
            item.error = str(outcome["failed"])
        elif "out_of_memory" in outcome:
            doing = DOING.get(outcome["out_of_memory"], outcome["out_of_memory"])
            item.error = (
                f"{item.source}: the import ran out of its {gib:g} GiB memory limit (SSDBOARD_IMPORT_MEMORY_GIB)"
                f" while {doing}: raise the limit, or import the dataset in parts"
            )
        elif "cancelled" in outcome or self._closing:
            item.error = "cancelled: the server stopped"
        else:
            item.error = f"{item.source}: {death_message(code, item.progress['stage'], gib)}"
        item.status = "failed"
        self.registry.discard_unfinished(item.id)  # what a killed process left

    # ------------------------------------------------------------------ stopping
    def close(self) -> None:
        """Forget the queued imports (their uploads removed) and stop the running one."""
        with self._lock:
            self._closing = True
            process = self._process
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[1].discard()
        self._queue.put(None)
        if process is not None:
            process.terminate()  # SIGTERM: the import removes what it wrote and exits
            try:
                process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._worker is not None:
            self._worker.join(STOP_WAIT_S)
