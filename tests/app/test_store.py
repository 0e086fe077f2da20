"""The job store and the live-event fan-out, without a server."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.events import Broadcaster, event_stream
from app.runner import death_reason
from app.store import JobStore, jobs


def _step(step: int, total: float = 1.0) -> dict[str, Any]:
    return {"step": step, "pos_clf": 0.5, "neg_clf": 0.25, "loc": 0.25, "total": total, "time": 100.0 + step}


def _store(tmp_path: Path) -> JobStore:
    return JobStore(f"sqlite:///{tmp_path / 'db' / 'ssdboard.db'}")


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_records_upsert_by_step_and_event_ids_never_repeat(tmp_path: Path) -> None:
    store = _store(tmp_path)
    job, first = store.create_job(name="a", config={"x": 1}, total_steps=4)
    assert first.seq == 1 and first.data == {"status": "queued"}
    events = store.record(job["id"], [("step", _step(1)), ("step", _step(2)), ("step", _step(3))])
    assert [e.seq for e in events] == [2, 3, 4]
    assert store.get_job(job["id"])["step"] == 3  # type: ignore[index]

    # A resume from the checkpoint at step 1 forgets steps 2-3, then redoes them with new values.
    store.reset_to_step(job["id"], 1)
    assert [m["step"] for m in store.metrics(job["id"])] == [1]
    assert store.get_job(job["id"])["last_metrics"]["step"] == 1  # type: ignore[index]
    redone = store.record(job["id"], [("step", _step(2, total=9.0)), ("eval", {"step": 2, "map": 0.5})])
    assert [e.seq for e in redone] == [5, 6]  # ids continue after the dropped ones
    assert [m["total"] for m in store.metrics(job["id"])] == [1.0, 9.0]
    store.record(job["id"], [("step", _step(2, total=7.0))])  # the same step again: replaced
    assert [m["total"] for m in store.metrics(job["id"])] == [1.0, 7.0]
    replay, status = store.events_after(job["id"], 0)
    assert status == "queued"
    assert [(e.kind, e.data.get("step")) for e in replay] == [
        ("status", None),
        ("step", 1),
        ("step", 2),
        ("eval", 2),
        ("step", 2),
    ]
    assert store.evals(job["id"]) == [{"step": 2, "map": 0.5}]


def test_reset_backfills_steps_the_store_never_saw(tmp_path: Path) -> None:
    store = _store(tmp_path)
    job, _ = store.create_job(name="a", config={}, total_steps=10)
    store.record(job["id"], [("step", _step(1)), ("step", _step(2))])
    store.reset_to_step(job["id"], 4, backfill=[_step(s) for s in range(1, 6)])
    assert [m["step"] for m in store.metrics(job["id"])] == [1, 2, 3, 4]
    assert store.get_job(job["id"])["step"] == 4  # type: ignore[index]


def test_delete_removes_every_row(tmp_path: Path) -> None:
    store = _store(tmp_path)
    job, _ = store.create_job(name="a", config={}, total_steps=2)
    store.record(job["id"], [("step", _step(1)), ("eval", {"step": 1})])
    store.delete_job(job["id"])
    assert store.get_job(job["id"]) is None
    assert store.metrics(job["id"]) == [] and store.evals(job["id"]) == []
    assert store.events_after(job["id"], 0) == ([], None)
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(jobs)) == 0


def test_stream_has_no_gap_or_repeat_while_a_writer_races_the_replay(tmp_path: Path) -> None:
    """Events committed before, during and after a client connects reach it exactly once, in order."""
    store = _store(tmp_path)
    job, _ = store.create_job(name="a", config={}, total_steps=300)

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        broadcaster = Broadcaster()

        def writer() -> None:
            for step in range(1, 301):
                events = store.record(job["id"], [("step", _step(step))])
                if step == 300:
                    events.append(store.set_status(job["id"], "succeeded"))
                loop.call_soon_threadsafe(broadcaster.publish, events)

        thread = threading.Thread(target=writer)
        thread.start()
        await asyncio.sleep(0.01)  # connect mid-way
        frames = [f async for f in event_stream(store, broadcaster, job["id"], after_seq=0)]
        seen = [int(f.split(b"\r\n", 1)[0].removeprefix(b"id: ")) for f in frames]
        thread.join()
        assert broadcaster.count() == 0
        return seen

    seen = asyncio.run(main())
    assert seen == list(range(1, 302 + 1))  # queued, 300 steps, succeeded


def test_a_client_that_falls_behind_is_dropped() -> None:
    async def main() -> None:
        broadcaster = Broadcaster(max_queue=2)
        sub = broadcaster.subscribe("j")
        from app.store import Event

        broadcaster.publish([Event("j", i, "step", {"step": i}) for i in (1, 2, 3)])
        assert broadcaster.count("j") == 0
        assert [sub.queue.get_nowait()[0].seq for _ in range(3)] == [1, 2, -1]  # -1: the end-of-stream marker

    asyncio.run(main())


def test_death_reason_names_the_signal_or_exit_code() -> None:
    assert death_reason(-9) == "worker process died: killed by signal 9 (SIGKILL)"
    assert death_reason(3) == "worker process died: exit code 3"
    assert death_reason(0) == "worker process exited without reporting a result"


def test_worker_history_reads_the_steps_the_server_lacks(tmp_path: Path) -> None:
    from app.worker import describe, read_jsonl

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(f'{{"step": {s}, "total": 1.0}}\n' for s in range(1, 8)) + "not json\n")
    assert [r["step"] for r in read_jsonl(path, after_step=3, up_to_step=5)] == [4, 5]
    assert read_jsonl(tmp_path / "missing.jsonl", up_to_step=5) == []
    assert describe(ValueError("checkpoint x cannot be read")) == "checkpoint x cannot be read"
    assert describe(KeyError("k")) == "KeyError: 'k'"
