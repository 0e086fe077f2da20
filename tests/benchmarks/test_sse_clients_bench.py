"""benchmarks.sse_clients: its cheap stream client counts events and sees the end however TCP splits the bytes."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from app.execution.events import sse_bytes
from app.store.jobs import Event
from benchmarks.sse_clients import Client, CountingStream, mix_counts


class _Transport(asyncio.WriteTransport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _feed(raw: bytes, seed: int, expect: int) -> Client:
    async def main() -> Client:
        client = Client("plain", expect_events=expect)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        protocol = CountingStream(b"GET / HTTP/1.1\r\n\r\n", client, done)
        protocol.connection_made(_Transport())
        rng, at = random.Random(seed), 0
        while at < len(raw) and not done.done():
            size = rng.randint(1, 40)
            protocol.data_received(raw[at : at + size])
            at += size
        return client

    return asyncio.run(main())


def test_the_counting_client_counts_events_and_sees_the_end_across_splits() -> None:
    events = [Event("j", i, "step", {"step": i, "total": 0.5}) for i in range(1, 31)]
    bodies = [b"".join(sse_bytes(e) for e in events[i : i + 3]) for i in range(0, 30, 3)]
    bodies.insert(2, b": ping\r\n\r\n")
    bodies.append(sse_bytes(Event("j", 31, "status", {"status": "cancelled"})))
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    raw = head + b"".join(b"%x\r\n%s\r\n" % (len(body), body) for body in bodies) + b"0\r\n\r\n"
    for seed in range(20):
        client = _feed(raw, seed, expect=30)
        assert (client.status, client.events, client.ended, client.error) == (200, 31, True, None)
        assert client.caught_up_at is not None and client.received == len(raw)
    refused = _feed(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n", 0, expect=0)
    assert (refused.status, refused.ended) == (503, False)


def test_the_mix_adds_up() -> None:
    assert mix_counts(1000, [1, 1, 1]) == {"live": 334, "after_step": 333, "plain": 333}
    assert mix_counts(10, [0, 1, 0]) == {"live": 0, "after_step": 10, "plain": 0}
