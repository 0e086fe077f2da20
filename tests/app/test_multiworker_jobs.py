"""A dashboard job with ``train.workers = 2``: the worker is the chief and starts its peer itself.

Against a real server (local executor): the job succeeds with each step streamed once and a
checkpoint that loads. A SIGKILL of the peer fails the job with the peer's death and ends the
chief; a SIGKILL of the chief takes its peer with it; the job resumes from its checkpoint after
either, and a cancel stops the chief and the peer.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import TERMINAL, ServerProcess, sse, tiny, wait_for, wait_for_step

from app.worker.peer_failures import peer_death

pytestmark = pytest.mark.slow

START = 300.0  # seconds: two TensorFlow processes starting on two busy cores


def two_workers(**train: Any) -> dict[str, Any]:
    """The tiny config on 2 workers (global batch 4, 2 images each), in float32."""
    return tiny(workers=2, batch_size=4, precision="float32", **train)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the chief's peers)."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(p) for p in (task / "children").read_text().split()]
    except FileNotFoundError:
        return []
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def chief_and_peer(server: ServerProcess) -> tuple[int, int]:
    """The job's worker (the chief) and its one peer, a ``python -m ssd.distributed --index 1``."""
    (chief,) = server.worker_pids()
    (peer,) = children(chief)
    assert b"ssd.distributed" in Path(f"/proc/{peer}/cmdline").read_bytes()
    return chief, peer


def gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def test_a_two_worker_job_succeeds_and_its_checkpoint_loads(api: httpx.Client, server: ServerProcess) -> None:
    job = api.post("/api/jobs", json=two_workers(steps=3)).json()
    assert job["config"]["train"]["workers"] == 2

    events = list(sse(api, f"/api/jobs/{job['id']}/events", timeout=START))
    assert [e["data"]["step"] for e in events if e["event"] == "step"] == [1, 2, 3]
    assert len([e for e in events if e["event"] == "eval"]) == 1
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "succeeded"
    done = api.get(f"/api/jobs/{job['id']}").json()
    assert done["status"] == "succeeded" and done["step"] == 3 and done["checkpoint_step"] == 3
    assert [m["step"] for m in api.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]] == [1, 2, 3]

    from ssd.detect import Detector

    job_dir = server.data_dir / "jobs" / job["id"]
    detector = Detector.from_checkpoint(job_dir)
    assert detector.config.train.workers == 2
    assert [line.count('"step"') for line in (job_dir / "metrics.jsonl").read_text().splitlines()] == [1, 1, 1]
    assert api.delete(f"/api/jobs/{job['id']}").status_code == 204


def test_a_peers_death_is_the_jobs_error() -> None:
    assert peer_death([None, 0]) is None
    assert peer_death([None, -9, 1]) == "worker process 2 of 4 died: killed by signal 9 (SIGKILL)"
    assert peer_death([3]) == "worker process 1 of 2 died: exit code 3"


def test_a_two_worker_job_fails_with_either_worker_resumes_and_cancels(
    api: httpx.Client, server: ServerProcess
) -> None:
    job = api.post("/api/jobs", json=two_workers(steps=100_000, checkpoint_every=2, eval_every=0)).json()
    wait_for_step(api, job["id"], 3, timeout=START)
    chief, peer = chief_and_peer(server)
    os.kill(peer, signal.SIGKILL)
    failed = wait_for(api, job["id"], lambda j: j["status"] in TERMINAL, timeout=120)
    assert failed["status"] == "failed"
    assert failed["error"] == "worker process 1 of 2 died: killed by signal 9 (SIGKILL)"
    assert gone_within([chief], 30), "the chief outlived its failed job"
    history = api.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
    assert [m["step"] for m in history] == list(range(1, failed["step"] + 1))

    api.post(f"/api/jobs/{job['id']}/resume")
    wait_for_step(api, job["id"], failed["step"] + 2, timeout=START)
    chief, peer = chief_and_peer(server)
    os.kill(chief, signal.SIGKILL)
    failed = wait_for(api, job["id"], lambda j: j["status"] in TERMINAL, timeout=30)
    assert failed["status"] == "failed" and failed["error"] == "worker process died: killed by signal 9 (SIGKILL)"
    assert gone_within([peer], 10), "the peer outlived its chief"
    checkpoint = failed["checkpoint_step"]
    assert checkpoint and checkpoint % 2 == 0

    api.post(f"/api/jobs/{job['id']}/resume")
    wait_for_step(api, job["id"], checkpoint + 3, timeout=START)
    chief, peer = chief_and_peer(server)
    started = time.monotonic()
    api.post(f"/api/jobs/{job['id']}/cancel")
    cancelled = wait_for(api, job["id"], lambda j: j["status"] in TERMINAL, timeout=60)
    assert cancelled["status"] == "cancelled" and cancelled["checkpoint_step"] == cancelled["step"]
    assert gone_within([chief, peer], 30), "a worker process outlived the cancel"
    assert time.monotonic() - started < 60
    history = api.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
    assert [m["step"] for m in history] == list(range(1, cancelled["step"] + 1))
    assert api.delete(f"/api/jobs/{job['id']}").status_code == 204
