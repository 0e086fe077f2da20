"""Live events to Server-Sent Events clients: one asyncio queue per client, per job.

The runner's pump thread persists a batch of events, then hands it to :meth:`Broadcaster.publish`
on the event loop. :func:`event_stream` subscribes a client first and replays the log from the
store second, dropping live events it already replayed (by ``seq``): an event committed before
the replay is read is in the replay, one committed after it reaches the queue, so a client
never misses or repeats one. A client too slow to keep its queue under ``max_queue`` is
dropped; its browser reconnects with ``Last-Event-ID`` and catches up from the store.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import anyio
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.schemas import TERMINAL
from app.store import Event, JobStore

_CLOSED = Event("", -1, "closed", {})
Wire = tuple[Event, bytes]  # an event and its encoded SSE frame, encoded once for every client


class Subscription:
    """One client's queue of live events of one job."""

    def __init__(self, job_id: str, max_queue: int) -> None:
        self.job_id = job_id
        self.queue: asyncio.Queue[Wire] = asyncio.Queue()
        self.max_queue = max_queue

    def put(self, item: Wire) -> bool:
        """Queue an encoded event; False when the client has fallen too far behind."""
        if self.queue.qsize() >= self.max_queue:
            return False
        self.queue.put_nowait(item)
        return True

    def close(self) -> None:
        """End the stream after what is queued."""
        self.queue.put_nowait((_CLOSED, b""))


class Broadcaster:
    """Fan-out of published events to the subscriptions of their job (event-loop thread only)."""

    def __init__(self, max_queue: int = 10_000) -> None:
        self.max_queue = max_queue
        self._subs: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, job_id: str) -> Subscription:
        """A new subscription to ``job_id``'s live events."""
        sub = Subscription(job_id, self.max_queue)
        self._subs[job_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription (client gone)."""
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    def publish(self, batch: Sequence[Event]) -> None:
        """Deliver events to every subscription of their job; close the ones that overflow."""
        for event in batch:
            subs = list(self._subs.get(event.job_id, ()))
            if not subs:
                continue
            # Encoded once, not once per client: with 200 clients this is most of the server's work.
            item = (event, sse_bytes(event))
            for sub in subs:
                if not sub.put(item):
                    self.unsubscribe(sub)
                    sub.close()

    def close_all(self) -> None:
        """End every stream (server shutting down)."""
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()
        self._subs.clear()

    def count(self, job_id: str | None = None) -> int:
        """Live subscriptions, of one job or all."""
        if job_id is not None:
            return len(self._subs.get(job_id, ()))
        return sum(len(s) for s in self._subs.values())


def sse_bytes(event: Event) -> bytes:
    """An event as one SSE frame (``id``, ``event``, ``data`` lines) ready for the socket."""
    data = json.dumps(event.data, separators=(",", ":"))
    return ServerSentEvent(id=str(event.seq), event=event.kind, data=data).encode()


def _is_terminal_status(event: Event) -> bool:
    return event.kind == "status" and event.data.get("status") in TERMINAL


def _select(replay: list[Event], after_step: int) -> list[Event]:
    """Step and eval events after ``after_step``, and only the newest status event."""
    last_status = max((e.seq for e in replay if e.kind == "status"), default=None)
    return [e for e in replay if e.seq == last_status or (e.kind != "status" and e.data.get("step", 0) > after_step)]


async def event_stream(
    store: JobStore,
    broadcaster: Broadcaster,
    job_id: str,
    *,
    after_seq: int = 0,
    after_step: int | None = None,
    live_only: bool = False,
    shutdown: anyio.Event | None = None,
) -> AsyncIterator[bytes]:
    """A job's events after ``after_seq`` as encoded SSE frames: replayed from the store, then live.

    ``after_step`` (for a client that already drew the history from ``/metrics``) replays only
    step and eval events after that step plus the latest status; ``live_only`` replays nothing.
    Ends after a terminal status (succeeded, failed, cancelled, interrupted) once nothing newer
    is logged, when the client falls too far behind, or when ``shutdown`` is set (the server
    is stopping: ending the stream cleanly beats having it cut).
    """
    sub = broadcaster.subscribe(job_id)
    watcher = asyncio.create_task(_close_on(shutdown, sub)) if shutdown is not None else None
    try:
        replay, status = await run_in_threadpool(store.events_after, job_id, after_seq)
        last = replay[-1].seq if replay else after_seq
        if live_only:
            replay = []
        elif after_step is not None:
            replay = _select(replay, after_step)
        for event in replay:
            yield sse_bytes(event)
        if status in TERMINAL:
            return
        while True:
            event, frame = await sub.queue.get()
            if event is _CLOSED:
                return
            if event.seq <= last:
                continue
            yield frame
            last = event.seq
            if _is_terminal_status(event):
                return
    finally:
        if watcher is not None:
            watcher.cancel()
        broadcaster.unsubscribe(sub)


async def _close_on(shutdown: anyio.Event, sub: Subscription) -> None:
    await shutdown.wait()
    sub.close()
