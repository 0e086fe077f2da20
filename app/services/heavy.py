"""A bound on the server's heavy reads, and a way to stop one whose client has left.

Reads are open to anyone who can reach the server (the token guards writes only), and some of
them cost seconds to minutes of CPU: a model run over validation images (detections, an
evaluation), loading a checkpoint, an upload's detections, an export's conversion. The server
holds two CPU cores' worth of such work at most, so :class:`HeavyWork` admits ``limit`` of them
at once (``SSDBOARD_MAX_HEAVY_READS``) and answers the next with :class:`~app.domain.Busy` — a
503 with ``Retry-After`` — at once, instead of queueing work nobody may still be waiting for.
Cached answers never take a slot: only work that computes something does.

A stop event (``threading.Event``) goes with work that runs in a thread: the route sets it when
its client disconnects (``app.api.until_disconnected``), and the work checks it between
batches and raises :class:`~app.domain.ClientGone`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.domain import Busy, ClientGone

RETRY_AFTER_S = 5  # a batch of validation images or a small export takes a few seconds here


class HeavyWork:
    """At most ``limit`` heavy reads at once, from threads or the event loop (never blocks)."""

    def __init__(self, limit: int, *, retry_after: int = RETRY_AFTER_S) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self.retry_after = retry_after
        self.refused = 0  # requests answered Busy (for tests and the benchmarks)
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    @contextmanager
    def slot(self, what: str) -> Iterator[None]:
        """Hold one of the ``limit`` slots while ``what`` runs; :class:`Busy` when none is free."""
        with self._lock:
            if self._active >= self.limit:
                self.refused += 1
                raise Busy(
                    f"the server is busy: {self._active} heavy reads (model runs, exports) are running, the most"
                    f" it runs at once (SSDBOARD_MAX_HEAVY_READS); {what} was not started: try again later",
                    self.retry_after,
                )
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1


def check_stop(stop: threading.Event | None, what: str) -> None:
    """Raise :class:`ClientGone` when ``stop`` is set (the client of ``what`` disconnected)."""
    if stop is not None and stop.is_set():
        raise ClientGone(f"the client disconnected: {what} stopped")
