"""HTTP routes: parse the request, call one service, answer. Domain errors become HTTP errors in
:mod:`app.api.errors`; pages live in :mod:`app.api.pages`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from app.domain import ClientGone
from app.http.security import HEAD_SCOPE_KEY

T = TypeVar("T")
DISCONNECT_POLL_S = 0.25  # how soon work for a client that left stops (plus the batch in flight)


def root_of(request: Request) -> str:
    """The app's mount point (``root_path``) without a trailing slash, for URLs in answers."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def is_head(request: Request) -> bool:
    """Whether the client asked HEAD (answered by the GET route: :class:`app.http.security.HeadMiddleware`),
    so a route can send the GET's headers without doing the GET's work."""
    return bool(request.scope.get(HEAD_SCOPE_KEY))


async def _watch(request: Request, on_disconnect: Callable[[], object]) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(DISCONNECT_POLL_S)
    on_disconnect()


async def until_disconnected(request: Request, work: Callable[[threading.Event], T]) -> T:
    """``work(stop)`` in a worker thread; ``stop`` is set once the client disconnects.

    uvicorn does not cancel a request's work when its client leaves, and a thread cannot be
    cancelled anyway: the work checks ``stop`` between its batches (``app.services.heavy.check_stop``)."""
    stop = threading.Event()
    watcher = asyncio.create_task(_watch(request, stop.set))
    try:
        return await run_in_threadpool(work, stop)
    finally:
        watcher.cancel()


async def cancelled_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelled once the client disconnects (an export's converter process is
    killed then); :class:`~app.domain.ClientGone` in that case."""
    task = asyncio.ensure_future(work)
    gone = threading.Event()

    def cancel() -> None:
        gone.set()
        task.cancel()

    watcher = asyncio.create_task(_watch(request, cancel))
    try:
        return await task
    except asyncio.CancelledError:
        if gone.is_set():
            raise ClientGone("the client disconnected: its work was stopped") from None
        raise
    finally:
        watcher.cancel()
