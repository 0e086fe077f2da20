"""The load benchmark's SSE client (benchmarks.clients): it must count every step, however TCP splits the bytes."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from app.execution.events import sse_bytes
from app.store.jobs import Event
from benchmarks.clients import ClientResult, SSECounter


class _Transport(asyncio.WriteTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent = b""
        self.closed = False

    def write(self, data: Any) -> None:
        self.sent += bytes(data)

    def close(self) -> None:
        self.closed = True


def _chunked(*bodies: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return head + b"".join(b"%x\r\n%s\r\n" % (len(body), body) for body in bodies)


def _feed(raw: bytes, seed: int) -> tuple[ClientResult, _Transport]:
    async def main() -> tuple[ClientResult, _Transport]:
        result = ClientResult()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        protocol, transport = SSECounter(b"GET / HTTP/1.1\r\n\r\n", result, done), _Transport()
        protocol.connection_made(transport)
        rng, at = random.Random(seed), 0
        while at < len(raw) and not done.done():
            size = rng.randint(1, 40)
            protocol.data_received(raw[at : at + size])
            at += size
        assert done.done()
        return result, transport

    return asyncio.run(main())


def test_sse_counter_reads_every_step_across_arbitrary_splits() -> None:
    steps = [Event("j", i + 1, "step", {"step": i, "total": 0.5}) for i in range(1, 31)]
    bodies = [b"".join(sse_bytes(e) for e in steps[i : i + 3]) for i in range(0, 30, 3)]  # coalesced writes
    bodies.insert(2, b": ping - 2026-11-28 00:00:00\r\n\r\n")
    bodies.append(sse_bytes(Event("j", 99, "status", {"status": "succeeded"})))
    for seed in range(20):
        result, transport = _feed(_chunked(*bodies) + b"0\r\n\r\n", seed)
        assert result.steps == list(range(1, 31)) and result.status == "succeeded" and result.error is None
        assert transport.closed and transport.sent == b"GET / HTTP/1.1\r\n\r\n"


def test_sse_counter_reports_a_stream_that_ends_early_or_a_refusal() -> None:
    result, _ = _feed(_chunked(sse_bytes(Event("j", 1, "step", {"step": 1}))) + b"0\r\n\r\n", 0)
    assert result.steps == [1] and result.error == "stream ended without a terminal status"
    result, _ = _feed(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", 0)
    assert result.error is not None and "unexpected response" in result.error
