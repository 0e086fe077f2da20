"""Live events to Server-Sent Events clients: one asyncio queue per client, per job.

The runner's pump thread persists a batch of events, then hands it to :meth:`Broadcaster.publish`
on the event loop. :func:`event_stream` subscribes a client first, then reads the job's last
event id ``N`` (:meth:`app.store.jobs.JobStore.replay_head`), then replays from the store what the
client asked for among the events up to ``N`` and takes everything after ``N`` from its queue,
dropping the live events it already replayed (by ``seq``): an event up to ``N`` was committed
before the read, so it is in the log; one after ``N`` was committed, hence published, after the
client subscribed, so it reaches the queue. A client never misses or repeats one. The replay
reads only what was asked for, in pages, a few streams at a time: nothing for ``from=live``, the
few events after ``after_step``, the events after ``Last-Event-ID``. A client too slow to keep
its queue under ``max_queue`` is dropped; its browser reconnects with ``Last-Event-ID`` and
catches up from the store.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from anyio.to_thread import run_sync

from app.domain import TERMINAL
from app.store.jobs import REPLAY_PAGE, Event, JobStore


@dataclass(frozen=True)
class Chunk:
    """Events of one job flushed together, each with its SSE frame encoded once for every client."""

    events: tuple[Event, ...]
    frames: tuple[bytes, ...]
    data: bytes  # the frames joined: what a client that needs all of them is sent
    ends: bool = False  # holds a terminal status: the streams end there

    @classmethod
    def of(cls, items: Sequence[tuple[Event, bytes]]) -> Chunk:
        """A chunk of ``(event, frame)`` pairs in order."""
        events = tuple(e for e, _ in items)
        ends = any(map(_is_terminal_status, events))
        return cls(events, tuple(f for _, f in items), b"".join(f for _, f in items), ends)


PING = Chunk((), (), b": ping\r\n\r\n")


class Subscription:
    """One client's queue of live chunks of one job; ``None`` ends the stream."""

    def __init__(self, job_id: str, max_queue: int) -> None:
        self.job_id = job_id
        self.queue: asyncio.Queue[Chunk | None] = asyncio.Queue()
        self.max_queue = max_queue

    def put(self, chunk: Chunk) -> bool:
        """Queue a chunk; False when the client has fallen too far behind."""
        if self.queue.qsize() >= self.max_queue:
            return False
        self.queue.put_nowait(chunk)
        return True

    def close(self) -> None:
        """End the stream after what is queued."""
        self.queue.put_nowait(None)


@dataclass
class _Pending:
    """A job's events waiting for the next flush."""

    items: list[tuple[Event, bytes]] = field(default_factory=list)
    last_flush: float = float("-inf")
    timer: asyncio.TimerHandle | None = None


class Broadcaster:
    """Fan-out of published events to the subscriptions of their job (event-loop thread only).

    Every write to a client costs the server about the same, whatever it carries, so with many
    clients the events of a fast job are coalesced: a job's events go out at once when its last
    flush is at least ``coalesce_s_per_client * subscribers`` seconds old (at most
    ``max_coalesce_s``), else together at the end of that interval. A status event goes out at
    once. With 200 clients a 10-steps/s job is written 5 times a second instead of 10; with a
    few clients, or a job slower than the interval, every event goes out the moment it arrives.
    """

    def __init__(
        self,
        max_queue: int = 10_000,
        *,
        coalesce_s_per_client: float = 0.001,
        max_coalesce_s: float = 0.25,
        ping_s: float = 15.0,
        max_reads: int = 1,
    ) -> None:
        self.max_queue = max_queue
        # Streams reading the store at the same time (a job's existence, the head of its log, a
        # page of it): the rest wait their turn, so that a thousand clients connecting at once
        # leave the thread pool to the other requests. One at a time measured best: more only
        # fight over the GIL.
        self.reads = asyncio.Semaphore(max_reads)
        self.coalesce_s_per_client = coalesce_s_per_client
        self.max_coalesce_s = max_coalesce_s
        self.ping_s = ping_s
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._pending: dict[str, _Pending] = defaultdict(_Pending)
        self._ping_timer: asyncio.TimerHandle | None = None

    def subscribe(self, job_id: str) -> Subscription:
        """A new subscription to ``job_id``'s live events."""
        sub = Subscription(job_id, self.max_queue)
        self._subs[job_id].add(sub)
        if self._ping_timer is None and self.ping_s > 0:
            self._ping_timer = asyncio.get_running_loop().call_later(self.ping_s, self._ping)
        return sub

    def _ping(self) -> None:
        """A comment line to every client, so proxies keep idle streams open and dead clients show."""
        self._ping_timer = None
        for subs in list(self._subs.values()):
            self._deliver(list(subs), PING)
        if self._subs:
            self._ping_timer = asyncio.get_running_loop().call_later(self.ping_s, self._ping)

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription (client gone)."""
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]
                pending = self._pending.get(sub.job_id)
                if pending is not None and pending.timer is None:
                    del self._pending[sub.job_id]  # nothing waits to go out: forget the job

    def interval(self, job_id: str) -> float:
        """Seconds between two flushes of ``job_id``'s events with its current subscribers."""
        return min(self.max_coalesce_s, self.coalesce_s_per_client * self.count(job_id))

    def publish(self, batch: Sequence[Event]) -> None:
        """Queue events for the subscriptions of their job; flush each job now or schedule it."""
        touched: dict[str, bool] = {}
        for event in batch:
            if event.job_id not in self._subs:
                continue  # nobody listens; a later client replays it from the store
            # Encoded once for every client, not once per client.
            self._pending[event.job_id].items.append((event, sse_bytes(event)))
            touched[event.job_id] = touched.get(event.job_id, False) or event.kind == "status"
        loop = asyncio.get_running_loop()
        for job_id, urgent in touched.items():
            pending = self._pending[job_id]
            due = pending.last_flush + self.interval(job_id)
            if urgent or loop.time() >= due:
                self._flush(job_id)
            elif pending.timer is None:
                pending.timer = loop.call_at(due, self._flush, job_id)

    def _flush(self, job_id: str) -> None:
        pending = self._pending.pop(job_id, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        subs = list(self._subs.get(job_id, ()))
        if subs:  # remember when, so the next event of this job waits out the interval
            self._pending[job_id] = _Pending(last_flush=asyncio.get_running_loop().time())
        if not pending.items:
            return
        self._deliver(subs, Chunk.of(pending.items))

    def _deliver(self, subs: Sequence[Subscription], chunk: Chunk) -> None:
        """Queue ``chunk`` for each subscription; end those that have fallen too far behind."""
        for sub in subs:
            if not sub.put(chunk):
                self.unsubscribe(sub)
                sub.close()

    def close_all(self) -> None:
        """End every stream (server shutting down)."""
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        for pending in self._pending.values():
            if pending.timer is not None:
                pending.timer.cancel()
        self._pending.clear()
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
    data = json.dumps(event.data, separators=(",", ":"))  # one line: JSON without indent has no newline
    return f"id: {event.seq}\r\nevent: {event.kind}\r\ndata: {data}\r\n\r\n".encode()


def _is_terminal_status(event: Event) -> bool:
    return event.kind == "status" and event.data.get("status") in TERMINAL


def _frame(seq: int, kind: str, data: str) -> bytes:
    """A stored event (its JSON text as stored) as one SSE frame, like :func:`sse_bytes`."""
    if "\n" in data or "\r" in data:  # not from this store's serializer: make it one line
        data = json.dumps(json.loads(data), separators=(",", ":"))
    return f"id: {seq}\r\nevent: {kind}\r\ndata: {data}\r\n\r\n".encode()


async def event_stream(
    store: JobStore,
    broadcaster: Broadcaster,
    job_id: str,
    *,
    after_seq: int = 0,
    after_step: int | None = None,
    live_only: bool = False,
) -> AsyncIterator[bytes]:
    """A job's events after ``after_seq`` as encoded SSE frames: replayed from the store, then live.

    ``after_step`` (for a client that already drew the history from ``/metrics``) replays only
    step and eval events after that step plus the latest status; ``live_only`` replays nothing.
    Ends after a terminal status (succeeded, failed, cancelled, interrupted) once nothing newer
    is logged, when the client falls too far behind, or when the broadcaster closes every stream
    (the server is stopping: ending the stream cleanly beats having it cut).
    """
    sub = broadcaster.subscribe(job_id)
    try:
        async with broadcaster.reads:
            head = await run_sync(store.replay_head, job_id)
        if head is None:
            return  # deleted
        status, last_seq, status_seq = head
        if after_seq > last_seq:  # an id this log never gave (stale, or made up): the client has
            after_seq = last_seq  # everything, but still learns where the job stands
            if status_seq is not None and not live_only:
                async with broadcaster.reads:
                    rows = await run_sync(
                        functools.partial(store.replay_page, job_id, after_seq=status_seq - 1, up_to_seq=status_seq)
                    )
                yield b"".join(_frame(*row) for row in rows)
        read = functools.partial(
            store.replay_page, job_id, up_to_seq=last_seq, after_step=after_step, keep_seq=status_seq
        )
        cursor = last_seq if live_only else after_seq
        while cursor < last_seq:  # the replay, a page at a time
            async with broadcaster.reads:
                rows = await run_sync(functools.partial(read, after_seq=cursor, limit=REPLAY_PAGE))
            if rows:
                yield b"".join(_frame(*row) for row in rows)
            if len(rows) < REPLAY_PAGE:
                break
            cursor = rows[-1][0]
        if status in TERMINAL:
            return
        last = max(after_seq, last_seq)  # every later event comes from the queue
        while True:
            chunk = await sub.queue.get()
            if chunk is None:
                return
            if not chunk.events:
                yield chunk.data  # a ping
                continue
            if chunk.events[-1].seq <= last:
                continue
            if chunk.events[0].seq > last and not chunk.ends:
                yield chunk.data  # the usual case: all of it, as encoded once for every client
                last = chunk.events[-1].seq
                continue
            frames = []
            for event, frame in zip(chunk.events, chunk.frames, strict=True):
                if event.seq <= last:
                    continue  # already replayed from the store
                frames.append(frame)
                last = event.seq
                if _is_terminal_status(event):
                    yield b"".join(frames)
                    return
            yield b"".join(frames)
    finally:
        broadcaster.unsubscribe(sub)
