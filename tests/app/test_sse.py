"""The lean event-stream response, the broadcaster's pings, and streams ending when the server stops."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from live_server import ServerProcess

from app.events import PING, Broadcaster, event_stream
from app.sse import EventStreamResponse
from app.store import Event, JobStore


def test_a_client_that_leaves_is_unsubscribed_and_the_response_ends() -> None:
    """After ``http.disconnect`` the iterator is cancelled (its ``finally`` runs) and nothing is sent."""

    async def main() -> tuple[list[dict[str, Any]], int]:
        broadcaster = Broadcaster()
        sent: list[dict[str, Any]] = []
        gone = asyncio.Event()

        async def frames() -> Any:
            sub = broadcaster.subscribe("j")
            try:
                while (chunk := await sub.queue.get()) is not None:
                    yield chunk.data
            finally:
                broadcaster.unsubscribe(sub)

        async def receive() -> dict[str, Any]:
            if not sent:
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        task = asyncio.create_task(EventStreamResponse(frames())({"type": "http"}, receive, send))
        await asyncio.sleep(0.01)
        broadcaster.publish([Event("j", 1, "step", {"step": 1})])
        await asyncio.sleep(0.01)
        gone.set()
        await asyncio.wait_for(task, 2)
        return sent, broadcaster.count()

    sent, subscribers = asyncio.run(main())
    assert subscribers == 0
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"].startswith(b"text/event-stream") and b"content-length" not in headers
    assert sent[1]["body"].startswith(b"id: 1\r\nevent: step\r\n") and sent[1]["more_body"]
    assert sent[2:] == [{"type": "http.response.body", "body": b"", "more_body": False}]


def test_idle_streams_get_pings_and_pings_stop_with_the_last_client(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    job, _ = store.create_job(name="a", config={}, total_steps=3)

    async def main() -> tuple[list[bytes], bool]:
        broadcaster = Broadcaster(ping_s=0.02)
        frames: list[bytes] = []

        async def client() -> None:
            async for frame in event_stream(store, broadcaster, job["id"]):
                frames.append(frame)
                if frames.count(PING.data) == 3:
                    return

        await asyncio.wait_for(client(), 2)
        await asyncio.sleep(0.05)
        return frames, broadcaster._ping_timer is None

    frames, stopped = asyncio.run(main())
    assert frames[0].startswith(b"id: 1\r\nevent: status\r\n") and frames[1:] == [b": ping\r\n\r\n"] * 3
    assert stopped


def test_stopping_the_server_ends_open_streams_at_once(tmp_path: Path) -> None:
    """SIGTERM with a page open: the stream ends cleanly and the server exits well within uvicorn's
    5 s graceful-shutdown timeout (it would wait that out for a stream that did not end)."""
    server = ServerProcess(tmp_path / "data", env={"SSDBOARD_MAX_CONCURRENT_JOBS": "0"}).start()
    try:
        job = httpx.post(f"{server.url}/api/jobs", json={"train": {"steps": 5}}).json()
        lines: list[str] = []

        def follow() -> None:
            with httpx.stream("GET", f"{server.url}/api/jobs/{job['id']}/events", timeout=30) as response:
                lines.extend(response.iter_lines())

        reader = threading.Thread(target=follow)
        reader.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has stopped
        took = time.monotonic() - started
        reader.join(5)
        assert not reader.is_alive()
        assert "event: status" in lines and 'data: {"status":"queued"}' in lines
        assert took < 3.0, f"the server took {took:.1f} s to stop with a stream open"
    finally:
        server.stop()
