"""The job store and the live-event fan-out, without a server. The ``store`` tests run on SQLite
and on PostgreSQL (``database_url``, tests/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.execution.events import Broadcaster, event_stream
from app.execution.runner import death_reason
from app.store.jobs import Event, JobStore, jobs, utcnow


def _step(step: int, total: float = 1.0) -> dict[str, Any]:
    return {"step": step, "pos_clf": 0.5, "neg_clf": 0.25, "loc": 0.25, "total": total, "time": 100.0 + step}


def _store(tmp_path: Path) -> JobStore:
    return JobStore(f"sqlite:///{tmp_path / 'db' / 'ssdboard.db'}")


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_records_upsert_by_step_and_event_ids_never_repeat(store: JobStore) -> None:
    job, first = store.create_job(name="a", config={"x": 1}, total_steps=4)
    assert first.seq == 1 and first.data == {"status": "queued"}
    events = store.record(job.id, [("step", _step(1)), ("step", _step(2)), ("step", _step(3))])
    assert [e.seq for e in events] == [2, 3, 4]
    assert store.get_job(job.id).step == 3  # type: ignore[union-attr]

    # A resume from the checkpoint at step 1 forgets steps 2-3, then redoes them with new values.
    store.reset_to_step(job.id, 1)
    assert [m["step"] for m in store.metrics(job.id)] == [1]
    assert store.get_job(job.id).last_metrics["step"] == 1  # type: ignore[union-attr]
    redone = store.record(job.id, [("step", _step(2, total=9.0)), ("eval", {"step": 2, "map": 0.5})])
    assert [e.seq for e in redone] == [5, 6]  # ids continue after the dropped ones
    assert [m["total"] for m in store.metrics(job.id)] == [1.0, 9.0]
    store.record(job.id, [("step", _step(2, total=7.0))])  # the same step again: replaced
    assert [m["total"] for m in store.metrics(job.id)] == [1.0, 7.0]
    replay, status = store.events_after(job.id, 0)
    assert status == "queued"
    assert [(e.kind, e.data.get("step")) for e in replay] == [
        ("status", None),
        ("step", 1),
        ("step", 2),
        ("eval", 2),
        ("step", 2),
    ]
    assert store.evals(job.id) == [{"step": 2, "map": 0.5}]


def test_reset_backfills_steps_the_store_never_saw(store: JobStore) -> None:
    job, _ = store.create_job(name="a", config={}, total_steps=10)
    store.record(job.id, [("step", _step(1)), ("step", _step(2))])
    store.reset_to_step(job.id, 4, backfill=[_step(s) for s in range(1, 6)])
    assert [m["step"] for m in store.metrics(job.id)] == [1, 2, 3, 4]
    assert store.get_job(job.id).step == 4  # type: ignore[union-attr]


def test_delete_removes_every_row(store: JobStore) -> None:
    job, _ = store.create_job(name="a", config={}, total_steps=2)
    store.record(job.id, [("step", _step(1)), ("eval", {"step": 1})])
    store.delete_job(job.id)
    assert store.get_job(job.id) is None
    assert store.metrics(job.id) == [] and store.evals(job.id) == []
    assert store.events_after(job.id, 0) == ([], None)
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(jobs)) == 0


def test_stream_has_no_gap_or_repeat_while_a_writer_races_the_replay(store: JobStore) -> None:
    """Events committed before, during and after a client connects reach it exactly once, in order."""
    job, _ = store.create_job(name="a", config={}, total_steps=300)

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        broadcaster = Broadcaster()

        def writer() -> None:
            for step in range(1, 301):
                events = store.record(job.id, [("step", _step(step))])
                if step == 300:
                    events.append(store.set_status(job.id, "succeeded"))
                loop.call_soon_threadsafe(broadcaster.publish, events)

        thread = threading.Thread(target=writer)
        thread.start()
        await asyncio.sleep(0.01)  # connect mid-way
        frames = [f async for f in event_stream(store, broadcaster, job.id, after_seq=0)]
        seen = _frames_seqs(frames)
        thread.join()
        assert broadcaster.count() == 0
        return seen

    seen = asyncio.run(main())
    assert seen == list(range(1, 302 + 1))  # queued, 300 steps, succeeded


def test_a_client_that_falls_behind_is_dropped() -> None:
    async def main() -> None:
        broadcaster = Broadcaster(max_queue=2, coalesce_s_per_client=0.0)  # one chunk per publish
        sub = broadcaster.subscribe("j")
        for i in (1, 2, 3):
            broadcaster.publish([Event("j", i, "step", {"step": i})])
        assert broadcaster.count("j") == 0
        chunks = [sub.queue.get_nowait() for _ in range(3)]
        assert [c.events[0].seq if c else None for c in chunks] == [1, 2, None]  # None: the end of the stream

    asyncio.run(main())


def _frames_seqs(frames: list[bytes]) -> list[int]:
    return [int(line[4:]) for f in frames for line in f.split(b"\r\n") if line.startswith(b"id: ")]


def test_many_clients_get_fast_events_coalesced_and_status_at_once() -> None:
    """Steps 5 ms apart to 4 clients at 10 ms/client: one write per 40 ms, every step once, in order."""

    async def main() -> None:
        broadcaster = Broadcaster(coalesce_s_per_client=0.010, max_coalesce_s=1.0)
        subs = [broadcaster.subscribe("j") for _ in range(4)]
        assert broadcaster.interval("j") == pytest.approx(0.040)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for step in range(1, 41):  # 200 ms of steps
            broadcaster.publish([Event("j", step, "step", {"step": step})])
            await asyncio.sleep(0.005)
        broadcaster.publish([Event("j", 41, "status", {"status": "succeeded"})])
        flushed_after = loop.time() - started
        chunks = [c for _ in range(subs[0].queue.qsize()) if (c := subs[0].queue.get_nowait()) is not None]
        # The first step goes out at once, the last ones with the status, and between them at
        # most one write per 40 ms (sleeps overshoot, so count an upper bound, and a lower one).
        assert chunks[0].events == (Event("j", 1, "step", {"step": 1}),)
        assert 3 <= len(chunks) <= flushed_after / 0.040 + 2
        assert [e.seq for c in chunks for e in c.events] == list(range(1, 42))
        assert b"".join(c.data for c in chunks).count(b"event: step") == 40
        assert all(sub.queue.qsize() == len(chunks) for sub in subs[1:])  # the same writes to every client

    asyncio.run(main())


def test_one_client_gets_every_event_in_its_own_write() -> None:
    """One client: interval 1 ms, events 5 ms apart each go out alone the moment they come."""

    async def main() -> None:
        broadcaster = Broadcaster()
        sub = broadcaster.subscribe("j")
        for step in range(1, 6):
            broadcaster.publish([Event("j", step, "step", {"step": step})])
            assert sub.queue.qsize() == step  # flushed at once, not on a timer
            await asyncio.sleep(0.005)
        assert [sub.queue.get_nowait().events[0].seq for _ in range(5)] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]

    asyncio.run(main())


def test_stream_splits_a_chunk_at_the_replay_and_at_the_end(store: JobStore) -> None:
    """A chunk that overlaps the replay loses the replayed events; one with a terminal status ends there."""
    job, _ = store.create_job(name="a", config={}, total_steps=3)  # seq 1: queued
    store.record(job.id, [("step", _step(1))])  # seq 2

    async def main() -> list[int]:
        broadcaster = Broadcaster(coalesce_s_per_client=10.0)
        frames: list[bytes] = []

        async def client() -> None:
            frames.extend([f async for f in event_stream(store, broadcaster, job.id, after_seq=0)])

        task = asyncio.create_task(client())
        await asyncio.sleep(0.05)  # subscribed and replayed seq 1-2
        events = store.record(job.id, [("step", _step(2)), ("step", _step(3))])  # seq 3, 4
        events.append(store.set_status(job.id, "succeeded"))  # seq 5: flushes at once
        again = Event(job.id, 2, "step", {"step": 1})  # as if raced with the replay
        broadcaster.publish([again, *events, Event(job.id, 6, "step", {"step": 4})])
        await asyncio.wait_for(task, 5)
        return _frames_seqs(frames)

    assert asyncio.run(main()) == [1, 2, 3, 4, 5]


def test_death_reason_names_the_signal_or_exit_code() -> None:
    assert death_reason(-9) == "worker process died: killed by signal 9 (SIGKILL)"
    assert death_reason(1) == "worker process died: exit code 1"
    assert death_reason(3).startswith("out of memory: ")  # the worker's memory watch exits with 3
    assert death_reason(0) == "worker process exited without reporting a result"


def test_worker_history_reads_the_steps_the_server_lacks(tmp_path: Path) -> None:
    from app.worker.job import describe, read_jsonl

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(f'{{"step": {s}, "total": 1.0}}\n' for s in range(1, 8)) + "not json\n")
    assert [r["step"] for r in read_jsonl(path, after_step=3, up_to_step=5)] == [4, 5]
    assert read_jsonl(tmp_path / "missing.jsonl", up_to_step=5) == []
    assert describe(ValueError("checkpoint x cannot be read")) == "checkpoint x cannot be read"
    assert describe(KeyError("k")) == "KeyError: 'k'"


def _db_files_open(path: Path) -> int:
    """File descriptors of this process open on the database ``path`` or its WAL."""
    fds = Path("/proc/self/fd")
    names = {str(path), f"{path}-wal"}
    count = 0
    for fd in fds.iterdir():
        try:
            count += str(fd.readlink()) in names
        except OSError:
            continue
    return count


def test_the_store_opens_its_database_files_once(tmp_path: Path) -> None:
    """A fixed pool, opened with the store: 32 threads reading at once open no file (a server short
    of descriptors once failed requests with "unable to open database file")."""
    store = _store(tmp_path)
    job, _ = store.create_job(name="a", config={}, total_steps=2)
    path = tmp_path / "db" / "ssdboard.db"
    opened = _db_files_open(path)
    assert opened >= 2 and opened % 2 == 0  # the file and its WAL, per connection
    barrier = threading.Barrier(32)
    seen: list[int] = []

    def read() -> None:
        barrier.wait()
        for _ in range(20):
            assert store.get_job(job.id) is not None
        seen.append(_db_files_open(path))

    threads = [threading.Thread(target=read) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(seen) == opened and _db_files_open(path) == opened
    store.close()
    assert _db_files_open(path) == 0


def test_the_replay_after_a_step_follows_a_resume(store: JobStore) -> None:
    """After a resume the log's steps are not in seq order (backfilled steps come last): the replay
    after a step still has exactly the steps and evals after it and the newest status, in seq order."""
    job, _ = store.create_job(name="a", config={}, total_steps=10)  # 1
    store.set_status(job.id, "running")  # 2
    store.record(job.id, [("step", _step(s)) for s in (1, 2, 3, 4)] + [("eval", {"step": 4})])  # 3-7
    store.set_status(job.id, "interrupted")  # 8
    store.reset_to_step(job.id, 6, backfill=[_step(s) for s in range(1, 7)])  # 9, 10: steps 5 and 6
    store.set_status(job.id, "running", event={"step": 6})  # 11
    store.record(job.id, [("step", _step(7))])  # 12
    head = store.replay_head(job.id)
    assert head == ("running", 12, 11)
    rows = store.replay_page(job.id, after_seq=0, up_to_seq=12, after_step=3, keep_seq=11)
    assert [(seq, kind) for seq, kind, _ in rows] == [
        (6, "step"),
        (7, "eval"),
        (9, "step"),
        (10, "step"),
        (11, "status"),
        (12, "step"),
    ]
    assert json.loads(rows[-2][2]) == {"status": "running", "step": 6}
    # Paged: two at a time, from where the last page ended; never past up_to_seq.
    page = store.replay_page(job.id, after_seq=7, up_to_seq=11, after_step=3, keep_seq=11, limit=2)
    assert [seq for seq, _, _ in page] == [9, 10]
    assert [seq for seq, _, _ in store.replay_page(job.id, after_seq=9, up_to_seq=11)] == [10, 11]
    assert store.replay_head("nope") is None


def test_times_come_back_in_utc_whatever_the_server_zone(store: JobStore) -> None:
    """The test PostgreSQL runs in America/New_York (pg_server.py); SQLite keeps naive UTC."""
    before = utcnow()
    job, _ = store.create_job(name="a", config={}, total_steps=2)
    store.set_status(job.id, "running", started_at=before)
    got = store.get_job(job.id)
    assert got is not None
    for key in ("created_at", "started_at"):
        assert getattr(got, key).utcoffset() == timedelta(0), key
    assert got.started_at == before and 0 <= (got.created_at - before).total_seconds() < 60
    sweep = store.create_sweep(name="s", base={}, spec={})
    assert 0 <= (sweep["created_at"] - before).total_seconds() < 60


def test_non_finite_numbers_are_stored_as_null(store: JobStore) -> None:
    """PostgreSQL's json type refuses NaN and SQLite's JSON functions fail on it: both store null."""
    job, _ = store.create_job(name="a", config={}, total_steps=2)
    events = store.record(job.id, [("step", _step(1, total=math.nan)), ("eval", {"step": 1, "ap": [0.5, math.inf]})])
    assert store.evals(job.id) == [{"step": 1, "ap": [0.5, None]}]
    assert store.get_job(job.id).last_metrics["total"] is None  # type: ignore[union-attr]
    assert store.metrics(job.id)[0]["total"] is None  # SQLite's REAL drops a NaN; PostgreSQL would keep it
    assert [j.id for j in store.list_jobs(sort="total")] == [job.id]
    rows = store.replay_page(job.id, after_seq=0, up_to_seq=events[-1].seq)
    assert [json.loads(text) for _, _, text in rows[1:]] == [
        {**_step(1), "total": None},
        {"step": 1, "ap": [0.5, None]},
    ]
