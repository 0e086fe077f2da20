"""How many connections the server holds, and uvicorn's HTTP protocol with a timeout for request headers.

A connection costs the server a file descriptor, and so do the database (:data:`app.store.jobs.POOL_SIZE`
connections, two files each), the workers (pipes), the job files a request reads and TensorFlow's
libraries. ``ssdboard serve`` raises its soft ``RLIMIT_NOFILE`` to the hard limit, keeps
:data:`RESERVED_FDS` (and :data:`FDS_PER_JOB` per concurrent job) for everything but connections,
and splits the rest (:func:`connection_limits`): up to ``limit`` connections are served (uvicorn's
``limit_concurrency``: a request while that many are open is answered 503 and its connection
closed), up to ``cap`` are accepted (the 503 window), and one beyond ``cap`` is answered 503 and
closed at once, before it can take a descriptor the database or a worker needs.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` but has no timeout for a
client that sends its request headers slowly, or nothing at all (slowloris): such a connection
would stay open for good. :class:`GuardedHttpToolsProtocol` closes a connection whose request
headers are not complete ``header_timeout`` seconds after it opened (first request) or after the
request's first byte (later requests).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("ssdboard")

RESERVED_FDS = 128  # the process, the database pool, request threads reading files, TensorFlow
FDS_PER_JOB = 8  # a worker's pipes and sentinel
MIN_CONNECTIONS = 16
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 19\r\nconnection: close\r\n\r\nService Unavailable"
)


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit (as far as the kernel allows).

    Returns the soft and hard limits in force afterwards. Workers inherit them.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        targets = [1 << 20, 1 << 16]  # Linux refuses more than fs.nr_open (1 << 20 by default)
    else:
        targets = [hard]
    for target in targets:
        if soft != resource.RLIM_INFINITY and soft < target:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                break
            except (ValueError, OSError):
                continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


@dataclass(frozen=True)
class ConnectionLimits:
    """``limit``: connections served; ``cap``: connections accepted (a request between the two gets 503)."""

    limit: int
    cap: int
    clamped: bool  # the file-descriptor limit, not the setting, decided ``limit``


def connection_limits(max_connections: int, open_files: int, *, concurrent_jobs: int = 1) -> ConnectionLimits:
    """Connections to serve and to accept with ``open_files`` descriptors.

    ``cap`` is what the descriptors allow after :data:`RESERVED_FDS` and :data:`FDS_PER_JOB` per
    concurrent job (at least :data:`MIN_CONNECTIONS`); ``limit`` is ``max_connections``, lowered
    if need be to leave ``max(8, cap // 8)`` connections between the two, answered 503.
    """
    reserved = RESERVED_FDS + FDS_PER_JOB * max(concurrent_jobs, 1)
    cap = max(MIN_CONNECTIONS, open_files - reserved)
    most = max(1, cap - max(8, cap // 8))
    return ConnectionLimits(limit=min(max_connections, most), cap=cap, clamped=max_connections > most)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for request headers and a cap on connections.

    ``header_timeout``: seconds from a connection's opening (or a later request's first byte) to
    its complete request headers; the connection is closed when they are late. ``max_open``:
    connections beyond it are answered 503 and closed as soon as they open. Set both on a
    subclass (:func:`protocol_class`).
    """

    header_timeout: ClassVar[float] = 10.0
    max_open: ClassVar[int | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._dropped = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Serve the connection, with the header deadline running; or refuse it when at the cap."""
        if self.max_open is not None and len(self.connections) >= self.max_open:
            self._dropped = True
            transport.write(BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection (nothing to do for a refused one)."""
        if self._dropped:
            return
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A request's first byte: its headers are due within ``header_timeout``."""
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        """The headers are in: no deadline until the next request."""
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._header_timer is None and self.header_timeout > 0:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport is not None and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.logger.info("%sclosing a connection: no complete request headers in %g s", client, self.header_timeout)
            self.transport.close()


def protocol_class(*, header_timeout: float, max_open: int | None) -> type[asyncio.Protocol]:
    """A :class:`GuardedHttpToolsProtocol` with these settings, for ``uvicorn.Config(http=...)``."""
    attrs = {"header_timeout": header_timeout, "max_open": max_open}
    return type("HttpProtocol", (GuardedHttpToolsProtocol,), attrs)
