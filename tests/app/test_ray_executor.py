"""The ``ray`` executor for real: a local Ray cluster (head only, 2 CPUs, loopback) that the tests
start with ``ray start --head`` and stop with ``ray stop``; jobs go through Ray's Jobs API and
their workers report to a real ``ssdboard serve`` over HTTP.

Skipped where Ray is not installed (``pip install 'ssdboard[ray]'``), except under CI (``CI`` set):
``make test`` installs the test extras, which include it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import TERMINAL, ServerProcess, sse, tiny, wait_for, wait_for_step
from ray_nodes import ray_job, ray_job_ended, start_head, stop_ray

pytestmark = pytest.mark.slow
if os.environ.get("CI"):  # CI installs the ray extra: a missing Ray is a failure there, not a skip
    import ray.job_submission as job_submission
else:
    job_submission = pytest.importorskip("ray.job_submission")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """The dashboard (Jobs API) address of a one-node Ray cluster on loopback, 2 CPUs."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    try:
        address, _ = start_head("127.0.0.1", 2, temp)
        yield address
    finally:
        stop_ray()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def ray_server(ray_cluster: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """``ssdboard serve`` with the ray executor, two jobs at a time."""
    env = {
        "SSDBOARD_EXECUTOR": "ray",
        "SSDBOARD_RAY_ADDRESS": ray_cluster,
        "SSDBOARD_RAY_PYTHON": sys.executable,
        "SSDBOARD_MAX_CONCURRENT_JOBS": "2",
        "SSDBOARD_RAY_CANCEL_GRACE_S": "30",
        "SSDBOARD_ARTIFACT_DIR": str(tmp_path / "shared"),
    }
    server = ServerProcess(tmp_path / "data", env=env).start(timeout=60)
    yield server
    if server.process is not None and server.process.poll() is None:
        server.stop()


def test_a_tiny_job_runs_to_the_end_on_ray(ray_server: ServerProcess, ray_cluster: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=ray_server.url, timeout=30) as http:
        job = http.post("/api/jobs", json=tiny(steps=3)).json()
        events = list(sse(http, f"/api/jobs/{job['id']}/events", timeout=240))
        statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
        assert statuses[0] == "queued" and statuses[-1] == "succeeded", events
        assert [e["data"]["step"] for e in events if e["event"] == "step"] == [1, 2, 3]
        assert [e["id"] for e in events] == sorted({e["id"] for e in events})
        done = http.get(f"/api/jobs/{job['id']}").json()
        assert done["step"] == 3 and done["checkpoint_step"] == 3 and done["last_eval"]["step"] == 3
    ended = ray_job_ended(ray_cluster, job["id"])
    assert ended.status == "SUCCEEDED" and ended.submission_id.startswith(f"ssdboard-{job['id']}-")
    assert "app.worker.main" in ended.entrypoint and "TOKEN" not in ended.entrypoint
    assert (tmp_path / "shared" / "jobs" / job["id"] / "train_state.npz").exists()  # the artifact root


def test_cancel_checkpoints_and_a_killed_worker_fails_its_job(ray_server: ServerProcess, ray_cluster: str) -> None:
    with httpx.Client(base_url=ray_server.url, timeout=30) as http:
        job = http.post("/api/jobs", json=tiny(steps=100_000, checkpoint_every=0)).json()
        doomed = http.post("/api/jobs", json=tiny(steps=100_000, checkpoint_every=0)).json()
        wait_for_step(http, job["id"], 3, timeout=240)
        http.post(f"/api/jobs/{job['id']}/cancel")
        cancelled = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=60)
        assert cancelled["status"] == "cancelled" and cancelled["checkpoint_step"] == cancelled["step"] > 0
        history = http.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
        assert [m["step"] for m in history] == list(range(1, cancelled["step"] + 1))

        wait_for_step(http, doomed["id"], 2, timeout=240)
        (pid,) = _worker_pids(doomed["id"])
        os.kill(pid, signal.SIGKILL)
        failed = wait_for(http, doomed["id"], lambda j: j["status"] in TERMINAL, timeout=60)
        assert failed["status"] == "failed" and failed["error"].startswith("the Ray job ssdboard-"), failed
        assert "failed" in failed["error"]
    assert ray_job_ended(ray_cluster, job["id"]).status == "SUCCEEDED"  # the worker stopped by itself
    assert ray_job_ended(ray_cluster, doomed["id"]).status == "FAILED"


def _worker_pids(job_id: str) -> list[int]:
    """Pids of the processes running ``python -m app.worker.main --job job_id`` (Ray starts them)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            continue
        if b"app.worker.main" in argv and job_id.encode() in argv:
            pids.append(int(proc.name))
    return pids


def test_a_restarted_server_reattaches_to_running_ray_jobs(ray_server: ServerProcess, ray_cluster: str) -> None:
    """kill -9 the server: the Ray job trains on, the restarted server takes its reports again
    (every step once), and a job whose Ray job ended while the server was away is interrupted."""
    with httpx.Client(base_url=ray_server.url, timeout=30) as http:
        kept = http.post("/api/jobs", json=tiny(steps=100_000, checkpoint_every=5)).json()["id"]
        lost = http.post("/api/jobs", json=tiny(steps=100_000, checkpoint_every=5)).json()["id"]
        wait_for_step(http, kept, 3, timeout=240)
        wait_for_step(http, lost, 1, timeout=240)
    ray_server.stop(signal.SIGKILL)
    client = job_submission.JobSubmissionClient(ray_cluster)
    client.stop_job(ray_job(ray_cluster, lost).submission_id)
    time.sleep(3)  # the kept job's worker keeps training, its reports waiting for the server
    ray_server.start(timeout=60)  # same data dir, same port
    with httpx.Client(base_url=ray_server.url, timeout=30) as http:
        assert http.get(f"/api/jobs/{kept}").json()["status"] == "running"
        lost_job = wait_for(http, lost, lambda j: j["status"] != "running", timeout=30)
        assert lost_job["status"] == "interrupted"
        before = http.get(f"/api/jobs/{kept}").json()["step"]
        wait_for_step(http, kept, before + 3, timeout=120)  # the stream resumes
        http.post(f"/api/jobs/{kept}/cancel")
        done = wait_for(http, kept, lambda j: j["status"] in TERMINAL, timeout=60)
        assert done["status"] == "cancelled"
        history = http.get(f"/api/jobs/{kept}/metrics").json()["metrics"]
        assert [m["step"] for m in history] == list(range(1, done["step"] + 1))
        events = list(sse(http, f"/api/jobs/{kept}/events"))
        assert [e["data"]["step"] for e in events if e["event"] == "step"] == list(range(1, done["step"] + 1))
        # The interrupted job resumes from its checkpoint as a new Ray job.
        http.post(f"/api/jobs/{lost}/resume")
        checkpoint = lost_job["checkpoint_step"] or 0
        wait_for_step(http, lost, checkpoint + 2, timeout=240)
        http.post(f"/api/jobs/{lost}/cancel")
        assert wait_for(http, lost, lambda j: j["status"] in TERMINAL, timeout=60)["status"] == "cancelled"


def test_a_two_worker_job_trains_with_its_peer_as_a_ray_actor(
    ray_server: ServerProcess, ray_cluster: str, tmp_path: Path
) -> None:
    """train.workers = 2: the chief is the Ray job, worker 1 a Ray actor of its placement group."""
    from ray.util.state import list_actors

    with httpx.Client(base_url=ray_server.url, timeout=30) as http:
        job = http.post("/api/jobs", json=tiny(steps=4, workers=2, batch_size=4, eval_every=2)).json()
        done = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=300)
        assert done["status"] == "succeeded" and done["step"] == 4, done
        history = http.get(f"/api/jobs/{job['id']}/metrics").json()
        assert [m["step"] for m in history["metrics"]] == [1, 2, 3, 4]  # the chief alone reports
        assert [e["step"] for e in history["evals"]] == [2, 4]
    assert ray_job_ended(ray_cluster, job["id"]).status == "SUCCEEDED"
    peers = list_actors(address=ray_cluster, filters=[("class_name", "=", "PeerActor")], detail=True)
    assert len(peers) >= 1 and all(a.state == "DEAD" for a in peers)  # it ran, then ended with the job
    assert (tmp_path / "shared" / "jobs" / job["id"] / "train_state.npz").exists()


def test_a_worker_that_raises_leaves_its_traceback_and_a_failed_ray_job(
    ray_server: ServerProcess, ray_cluster: str
) -> None:
    """The traceback is in the Ray job's logs and on the job, and Ray's status agrees: FAILED."""
    config = tiny(steps=50, learning_rate=10, schedule="constant", precision="float32", checkpoint_every=0)
    config["loss"] = {"alpha": 1000}
    config["matching"] = {"variances": [1e-38, 1e-38]}  # the loss overflows (test_jobs.py's recipe)
    with httpx.Client(base_url=ray_server.url, timeout=30) as http:
        job = http.post("/api/jobs", json=config).json()
        failed = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=240)
        assert failed["status"] == "failed" and "became" in failed["error"], failed
        assert "NonFiniteLossError" in failed["run"]["traceback"]
    ended = ray_job_ended(ray_cluster, job["id"])
    assert ended.status == "FAILED", ended
    logs = job_submission.JobSubmissionClient(ray_cluster).get_job_logs(ended.submission_id)
    assert "Traceback (most recent call last):" in logs and "NonFiniteLossError" in logs
