"""The worker's out-of-memory stop: the watch's decision, and real workers over a tiny limit."""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from live_server import TERMINAL, ServerProcess, tiny, wait_for, wait_for_step

from app.worker import memory as worker
from app.worker.job import EXIT_OUT_OF_MEMORY, describe, run_job
from app.worker.memory import OUT_OF_MEMORY, MemoryWatch, OutOfMemory, resident_bytes
from app.worker.messages import CheckpointSaved, Done, Record, Started

GIB = 2**30


def test_the_watch_trips_only_over_the_limit_and_names_what_to_lower() -> None:
    resident = [GIB]
    watch = MemoryWatch(2 * GIB, read=lambda: resident[0])
    assert watch.check() is None
    resident[0] = 2 * GIB
    assert watch.check() is None  # at the limit is still fine
    resident[0] = 3 * GIB
    message = watch.check()
    assert message is not None and message.startswith(OUT_OF_MEMORY)
    assert "3.00 GiB" in message and "limit 2.00 GiB" in message and "SSDBOARD_WORKER_MEMORY_GIB" in message
    assert "train.batch_size" in message and "data.image_size" in message and "data.max_digits" in message
    assert describe(OutOfMemory(message)) == message  # the job's error is the message itself


def test_the_watch_thread_reports_once_when_memory_grows() -> None:
    reads = iter([GIB, GIB, 5 * GIB, 6 * GIB, 7 * GIB])
    trips: list[str] = []
    tripped = threading.Event()

    def on_exceeded(message: str) -> None:
        trips.append(message)
        tripped.set()

    watch = MemoryWatch(4 * GIB, read=lambda: next(reads, 8 * GIB), interval=0.01).start(on_exceeded)
    assert tripped.wait(5)
    time.sleep(0.1)
    watch.stop()
    assert len(trips) == 1 and trips[0].startswith(OUT_OF_MEMORY) and "5.00 GiB" in trips[0]


def test_a_stopped_watch_never_trips() -> None:
    trips: list[str] = []
    watch = MemoryWatch(GIB, read=lambda: 0, interval=0.01).start(trips.append)
    watch.stop()
    watch.read = lambda: 2 * GIB
    time.sleep(0.1)
    assert trips == []


def test_resident_bytes_is_this_process_rss() -> None:
    status = Path("/proc/self/status").read_text()
    rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024
    assert abs(resident_bytes() - rss) < 64 * 2**20


class _ListQueue:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def put(self, obj: Any) -> None:
        self.items.append(obj)

    def cancel_join_thread(self) -> None: ...

    def close(self) -> None: ...

    def join_thread(self) -> None: ...


class _Never:
    def is_set(self) -> bool:
        return False


@pytest.mark.slow
def test_over_the_limit_between_steps_fails_the_job_and_keeps_checkpoint_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process worker (TensorFlow), no watch thread: the check before step 11 trips."""
    checks = 0

    def check(self: MemoryWatch) -> str | None:
        nonlocal checks
        checks += 1  # once before the trainer is built, then once before every step
        return worker.out_of_memory_message(3 * GIB, 2 * GIB) if checks > 11 else None

    monkeypatch.setattr(MemoryWatch, "start", lambda self, on_exceeded: self)
    monkeypatch.setattr(MemoryWatch, "check", check)
    monkeypatch.setitem(os.environ, "TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    sink = _ListQueue()
    job_dir = tmp_path / "job"
    sigint = signal.getsignal(signal.SIGINT)
    try:
        run_job("j1", tiny(steps=50, checkpoint_every=5), str(job_dir), sink, _Never(), os.getppid(), 0, 0, 2.0)
    finally:
        signal.signal(signal.SIGINT, sigint)  # the worker ignores Ctrl-C; pytest must not

    done = sink.items[-1]
    assert isinstance(done, Done) and done.status == "failed" and done.step == 10
    assert done.error is not None and done.error.startswith(OUT_OF_MEMORY + "the worker's resident memory 3.00 GiB")
    assert isinstance(sink.items[0], Started)
    assert [m.data["step"] for m in sink.items if isinstance(m, Record)] == list(range(1, 11))
    assert [m.step for m in sink.items if isinstance(m, CheckpointSaved)] == [5, 10]
    metrics = [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 11))
    with np.load(job_dir / "train_state.npz") as state:
        assert int(state["step"]) == 10  # the last checkpoint, untouched
    assert (job_dir / "model.weights.h5").exists()


@pytest.mark.slow
def test_a_worker_over_the_limit_inside_an_op_reports_and_exits_leaving_its_files(tmp_path: Path) -> None:
    """A real spawned worker with a limit below what importing TensorFlow takes: the watch thread
    trips while the main thread is busy importing, sends ``done`` and ends the process."""
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    files = {"metrics.jsonl": '{"step": 1}\n', "train_state.npz": "old", "model.weights.h5": "old"}
    for name, text in files.items():
        (job_dir / name).write_text(text)
    ctx = multiprocessing.get_context("spawn")
    messages, cancel = ctx.Queue(), ctx.Event()  # both referenced until the child has them
    process = ctx.Process(
        target=run_job,
        args=("j2", tiny(steps=5), str(job_dir), messages, cancel, os.getpid(), 0, 1, 0.15),
        daemon=True,
    )
    process.start()
    try:
        done = messages.get(timeout=60)
    except queue.Empty:
        pytest.fail(f"no message from the worker (exit code {process.exitcode})")
    process.join(30)
    assert isinstance(done, Done) and done.status == "failed" and done.step is None
    assert done.error is not None and done.error.startswith(OUT_OF_MEMORY), done.error
    assert "limit 0.15 GiB" in done.error
    assert process.exitcode == EXIT_OUT_OF_MEMORY  # the thread's os._exit, not a normal return
    for name, text in files.items():
        assert (job_dir / name).read_text() == text
    messages.close()
    messages.join_thread()


@pytest.mark.slow
def test_a_job_over_the_worker_limit_fails_out_of_memory_keeping_metrics(tmp_path: Path) -> None:
    """Through a server: train and cancel, then resume under a tiny SSDBOARD_WORKER_MEMORY_GIB."""
    data_dir = tmp_path / "data"
    first = ServerProcess(data_dir).start()
    try:
        with httpx.Client(base_url=first.url, timeout=30) as http:
            job = http.post("/api/jobs", json=tiny(steps=100_000, checkpoint_every=5)).json()
            wait_for_step(http, job["id"], 12)
            http.post(f"/api/jobs/{job['id']}/cancel")
            cancelled = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=30)
            assert cancelled["status"] == "cancelled"
    finally:
        first.stop()
    step = cancelled["step"]

    second = ServerProcess(data_dir, env={"SSDBOARD_WORKER_MEMORY_GIB": "0.2"}).start()
    try:
        with httpx.Client(base_url=second.url, timeout=30) as http:
            assert http.post(f"/api/jobs/{job['id']}/resume").status_code == 200
            failed = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=60)
            assert failed["status"] == "failed"
            assert failed["error"].startswith(OUT_OF_MEMORY), failed["error"]
            assert "limit 0.20 GiB" in failed["error"]
            assert failed["step"] == step and failed["checkpoint_step"] == step
            metrics = http.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
            assert [m["step"] for m in metrics] == list(range(1, step + 1))
    finally:
        second.stop()
    job_dir = data_dir / "jobs" / job["id"]
    assert {"config.json", "model.weights.h5", "train_state.npz", "metrics.jsonl"} <= {
        p.name for p in job_dir.iterdir()
    }
