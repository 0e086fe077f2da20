"""A worker's resident memory against its limit (``SSDBOARD_WORKER_MEMORY_GIB``, per process).

:class:`MemoryWatch` reads ``/proc`` between steps and, on a thread, every 150 ms, because one
TensorFlow op can allocate gigabytes; over the limit the job fails with ``out of memory: ...``
(:func:`out_of_memory_message`, naming what to lower) before the kernel's out-of-memory killer
acts. :class:`app.worker.job.JobRun` decides what the trip does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

GIB = 2**30
WATCH_INTERVAL = 0.15  # seconds between two reads of the resident memory
OUT_OF_MEMORY = "out of memory: "


def resident_bytes(pid: int | None = None) -> int:
    """A process's resident memory (this one's by default): ``/proc/PID/statm``'s second field, in
    pages (0 if unknown, or the process is gone)."""
    try:
        with open(f"/proc/{'self' if pid is None else pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # no procfs (not Linux): the watch never trips
        return 0


def out_of_memory_message(resident: int, limit: int) -> str:
    """The error of a job its worker stopped for memory: the figures and the fields to lower."""
    return (
        f"{OUT_OF_MEMORY}the worker's resident memory {resident / GIB:.2f} GiB is over the limit "
        f"{limit / GIB:.2f} GiB (SSDBOARD_WORKER_MEMORY_GIB); lower train.batch_size, data.image_size, "
        "data.max_digits, model.num_units or the priors per cell (priors.scales, priors.ratios)"
    )


class OutOfMemory(RuntimeError):
    """The worker's resident memory went over its limit; the message is the job's error."""


class MemoryWatch:
    """This process's resident memory against a limit in bytes.

    :meth:`check` is the decision (called between steps); :meth:`start` runs it on a daemon
    thread every ``interval`` seconds and calls ``on_exceeded(message)`` once, the first time
    it trips. ``read`` returns the resident bytes (a fake in tests).
    """

    def __init__(
        self, limit: int, *, read: Callable[[], int] = resident_bytes, interval: float = WATCH_INTERVAL
    ) -> None:
        self.limit = limit
        self.read = read
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> str | None:
        """The out-of-memory message when the resident memory is over the limit, else None."""
        resident = self.read()
        return out_of_memory_message(resident, self.limit) if resident > self.limit else None

    def start(self, on_exceeded: Callable[[str], None]) -> MemoryWatch:
        """Watch on a daemon thread until :meth:`stop` or the first trip."""

        def watch() -> None:
            while not self._stop.wait(self.interval):
                message = self.check()
                if message is not None:
                    on_exceeded(message)
                    return

        self._thread = threading.Thread(target=watch, name="ssdboard-memory-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread (it trips no more once this returns, unless it already is tripping)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.interval + 1)
