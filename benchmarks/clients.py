"""Cheap HTTP/1.1 clients for :mod:`benchmarks.load`: hundreds of them share the machine with the trainer.

- :class:`SSECounter`: one event-stream client as an asyncio protocol; it de-chunks the body
  and splits events by hand, and keeps only the step numbers (:func:`sse_client` connects one);
- :class:`KeepAliveGet`: GETs over one keep-alive connection, no client library per request;
- :func:`run_on_uvloop`: run the clients on uvloop, where each event costs them less.

Real clients (browsers) run on other machines; what these take from the trainer, they would not.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from app.domain import TERMINAL


@dataclass
class ClientResult:
    """What one SSE client saw."""

    steps: list[int] = field(default_factory=list)
    status: str | None = None
    error: str | None = None
    connected_s: float = 0.0


_FRAME = re.compile(rb"event: (\w+)\r?\ndata: ([^\r\n]*)")
_STEP = re.compile(rb'"step":(\d+)')


class SSECounter(asyncio.Protocol):
    """One event-stream client as an asyncio protocol: de-chunks the body, keeps step numbers.

    A protocol rather than streams, and regular expressions rather than JSON for step events:
    the clients share the machine with the trainer, and 200 of them must cost it little.
    """

    def __init__(self, request: bytes, result: ClientResult, done: asyncio.Future[None]) -> None:
        self.request, self.result, self.done = request, result, done
        self.raw = bytearray()  # received, not yet de-chunked
        self.body = bytearray()  # de-chunked, not yet split into events
        self.headers_done = False
        self.chunk_left = -1  # bytes of the current chunk still to come; -1: a size line is next
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's are not subclasses
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.raw += data
        if not self.headers_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.raw[:end]).lower()
            if b" 200 " not in head.split(b"\r\n", 1)[0] or b"transfer-encoding: chunked" not in head:
                self._finish(f"unexpected response {head[:200]!r}")
                return
            del self.raw[: end + 4]
            self.headers_done = True
        self._dechunk()
        *events, rest = bytes(self.body).split(b"\r\n\r\n")
        self.body = bytearray(rest)
        for event in events:
            match = _FRAME.search(event)
            if match is None:
                continue  # a ping comment
            kind, data = match.groups()
            if kind == b"step":
                step = _STEP.search(data)
                self.result.steps.append(int(step.group(1)) if step else -1)
            elif kind == b"status":
                status = json.loads(data)["status"]
                if status in TERMINAL:
                    self.result.status = status
                    self._finish(None)
                    return
        if self.ended:
            self._finish("stream ended without a terminal status")

    def _dechunk(self) -> None:
        while self.raw and not self.ended:
            if self.chunk_left < 0:
                line_end = self.raw.find(b"\r\n")
                if line_end < 0:
                    return
                self.chunk_left = int(bytes(self.raw[:line_end]).split(b";")[0], 16)
                del self.raw[: line_end + 2]
                if self.chunk_left == 0:
                    self.ended = True  # the last chunk: what came before it is still to be read
                    return
            take = min(self.chunk_left, len(self.raw))
            self.body += self.raw[:take]
            del self.raw[:take]
            self.chunk_left -= take
            if self.chunk_left == 0:
                if len(self.raw) < 2:
                    return  # the chunk's CRLF has not come yet (chunk_left stays 0)
                del self.raw[:2]
                self.chunk_left = -1

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection lost: {exc}" if exc else "connection closed before a terminal status")

    def _finish(self, error: str | None) -> None:
        if self.done.done():
            return
        self.result.error = error
        self.done.set_result(None)
        self.transport.close()


async def sse_client(host: str, port: int, path: str) -> ClientResult:
    """Follow one event stream to its terminal status; the step numbers received, in order."""
    result = ClientResult()
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    try:
        await loop.create_connection(lambda: SSECounter(request, result, done), host, port)
        await done
    except OSError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.connected_s = time.monotonic() - started
    return result


class KeepAliveGet:
    """GETs over one keep-alive HTTP/1.1 connection, the cheap way (no client library per request)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """Status code and body of ``GET path`` (a response with a ``Content-Length``)."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            body = await reader.readexactly(int(match.group(1))) if match else b""
            return int(head.split(b" ", 2)[1]), body
        except (OSError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            self.streams = None  # reconnect next time
            raise

    def close(self) -> None:
        """Close the connection."""
        if self.streams is not None:
            self.streams[1].close()


def run_on_uvloop(coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run on uvloop (uvicorn's loop, installed with it): the clients' cost per event is smaller there."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
