"""The lean event-stream response, the broadcaster's pings, and streams ending when the server stops."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from live_server import ServerProcess

from app.execution.events import PING, Broadcaster, event_stream
from app.http.sse import EventStreamResponse
from app.store.jobs import Event, JobStore


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
            async for frame in event_stream(store, broadcaster, job.id):
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


class CountingStore:
    """A :class:`JobStore` that counts the event rows its methods hand out (lists, or a list first in a tuple)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.rows = 0
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            self.calls.append(name)
            if isinstance(result, list):
                self.rows += len(result)
            elif isinstance(result, tuple) and result and isinstance(result[0], list):
                self.rows += len(result[0])
            return result

        return counted


def _long_job(tmp_path: Path, steps: int) -> tuple[JobStore, str]:
    """A store in ``tmp_path`` with :func:`_add_long_job`'s job."""
    store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    return store, _add_long_job(store, steps)


def _add_long_job(store: JobStore, steps: int) -> str:
    """A running job with ``steps`` step events (seq 1 queued, 2 running, 3.. steps) and an eval every 1000."""
    job, _ = store.create_job(name="long", config={}, total_steps=steps)
    store.set_status(job.id, "running")
    for start in range(1, steps + 1, 500):
        items: list[tuple[str, dict[str, Any]]] = []
        for step in range(start, min(start + 500, steps + 1)):
            items.append(("step", {"step": step, "total": 1.0, "time": 100.0 + step}))
            if step % 1000 == 0:
                items.append(("eval", {"step": step, "map": 0.5}))
        store.record(job.id, items)
    return job.id


def _connect(store: CountingStore, job_id: str, **kwargs: Any) -> list[tuple[int, str, dict[str, Any]]]:
    """Follow a stream of a running job until the job succeeds (published after 50 ms); its events.

    Only the stream reads through ``store``: the status change is written around it."""

    async def main() -> list[bytes]:
        broadcaster = Broadcaster()
        frames: list[bytes] = []

        async def client() -> None:
            async for frame in event_stream(store, broadcaster, job_id, **kwargs):  # type: ignore[arg-type]
                frames.append(frame)

        task = asyncio.create_task(client())
        await asyncio.sleep(0.05)
        broadcaster.publish([store.store.set_status(job_id, "succeeded")])
        await asyncio.wait_for(task, 10)
        return frames

    out = []
    for frame in b"".join(asyncio.run(main())).split(b"\r\n\r\n"):
        if frame.startswith(b"id: "):
            seq, kind, data = (line.split(b": ", 1)[1] for line in frame.split(b"\r\n"))
            out.append((int(seq), kind.decode(), json.loads(data)))
    return out


def test_a_stream_reads_from_the_log_only_what_its_client_asked_for(tmp_path: Path) -> None:
    """A job with 5,000 steps: ``from=live`` reads no event, ``after_step`` and ``Last-Event-ID`` the
    few after them (the server used to read, decode and drop the whole log for every client)."""
    last = 2 + 5000 + 5  # queued, running, 5000 steps, 5 evals

    live = CountingStore(_long_job(tmp_path / "live", 5000)[0])
    assert [(kind, data) for _, kind, data in _connect(live, _only_job(live), live_only=True)] == [
        ("status", {"status": "succeeded"})
    ]
    assert live.rows == 0, live.calls

    after = CountingStore(_long_job(tmp_path / "after", 5000)[0])
    events = _connect(after, _only_job(after), after_step=4995)
    assert [(kind, data.get("step"), data.get("status")) for _, kind, data in events] == [
        ("status", None, "running"),
        *(("step", s, None) for s in range(4996, 5001)),
        ("eval", 5000, None),
        ("status", None, "succeeded"),
    ]
    assert after.rows <= 7, (after.rows, after.calls)  # the running status, 5 steps, 1 eval

    resumed = CountingStore(_long_job(tmp_path / "resumed", 5000)[0])
    events = _connect(resumed, _only_job(resumed), after_seq=last - 3)
    assert [seq for seq, _, _ in events] == [last - 2, last - 1, last, last + 1]  # + succeeded, live
    assert resumed.rows <= 3, (resumed.rows, resumed.calls)


def _only_job(store: CountingStore) -> str:
    return str(store.store.list_jobs()[0].id)


def test_a_long_replay_comes_in_pages_without_a_gap_while_the_job_runs(store: JobStore) -> None:
    """The whole history of a job longer than a replay page, while a writer appends: every event
    once, in order, and each page in one write (on SQLite and PostgreSQL)."""
    job_id = _add_long_job(store, 2500)
    first_new = 2 + 2500 + 2 + 1  # after queued, running, 2500 steps, 2 evals

    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        broadcaster = Broadcaster()

        def writer() -> None:
            for step in range(2501, 2701):
                events = store.record(job_id, [("step", {"step": step, "total": 1.0})])
                if step == 2700:
                    events.append(store.set_status(job_id, "succeeded"))
                loop.call_soon_threadsafe(broadcaster.publish, events)

        thread = threading.Thread(target=writer)
        thread.start()
        frames = [f async for f in event_stream(store, broadcaster, job_id)]
        thread.join()
        return frames

    frames = asyncio.run(main())
    seqs = [int(line[4:]) for f in frames for line in f.split(b"\r\n") if line.startswith(b"id: ")]
    assert seqs == list(range(1, first_new + 200 + 1))
    assert frames[0].count(b"id: ") >= 100 and len(frames) <= 2500 // 100 + 200  # a page of events a write
    assert b'data: {"step":1,"total":1.0,"time":101.0}' in frames[0]  # the stored JSON, as live frames carry it
