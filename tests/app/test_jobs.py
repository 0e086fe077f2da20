"""The job life cycle against a real server process: submit, stream, cancel, fail, resume, delete."""

from __future__ import annotations

import io
import os
import re
import signal
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from live_server import TERMINAL, ServerProcess, sse, tiny, wait_for, wait_for_step

pytestmark = pytest.mark.slow


def test_submit_stream_history_checkpoint_delete(api: httpx.Client, server: ServerProcess) -> None:
    response = api.post("/api/jobs", json=tiny(steps=5))
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] in ("queued", "running") and job["total_steps"] == 5
    assert job["config"]["model"]["num_units"] == 2 and job["config"]["detect"]["nms_iou"] == 0.45

    events = list(sse(api, f"/api/jobs/{job['id']}/events"))
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids))
    steps = [e["data"] for e in events if e["event"] == "step"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5]
    assert all({"pos_clf", "neg_clf", "loc", "total", "lr"} <= s.keys() for s in steps)
    assert all(abs(time.time() - s["time"]) < 300 for s in steps)
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "succeeded"
    evals = [e["data"] for e in events if e["event"] == "eval"]
    assert len(evals) == 1 and {"map", "map50", "val_total"} <= evals[0].keys()

    # Resuming after the second step event replays exactly the rest: no gap, no repeat.
    second = next(e for e in events if e["event"] == "step" and e["data"]["step"] == 2)
    rest = list(sse(api, f"/api/jobs/{job['id']}/events", headers={"Last-Event-ID": str(second["id"])}))
    assert rest == events[events.index(second) + 1 :]

    done = api.get(f"/api/jobs/{job['id']}").json()
    assert done["status"] == "succeeded" and done["step"] == 5 and done["checkpoint_step"] == 5
    assert done["last_metrics"]["step"] == 5 and done["last_eval"]["step"] == 5 and done["finished_at"]
    history = api.get(f"/api/jobs/{job['id']}/metrics").json()
    assert [m["step"] for m in history["metrics"]] == [1, 2, 3, 4, 5]
    assert history["metrics"][-1]["total"] == pytest.approx(steps[-1]["total"])

    archive = zipfile.ZipFile(io.BytesIO(api.get(f"/api/jobs/{job['id']}/checkpoint").content))
    assert sorted(archive.namelist()) == ["config.json", "model.weights.h5", "train_state.npz"]

    job_dir = server.data_dir / "jobs" / job["id"]
    assert (job_dir / "metrics.jsonl").exists()
    assert api.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert not job_dir.exists()
    assert api.get(f"/api/jobs/{job['id']}").status_code == 404
    assert api.get(f"/api/jobs/{job['id']}/metrics").status_code == 404


def test_cancel_queue_and_resume_to_the_end(api: httpx.Client, server: ServerProcess) -> None:
    steps = 600
    job = api.post("/api/jobs", json=tiny(steps=steps, checkpoint_every=0)).json()
    wait_for_step(api, job["id"], 1)

    # One job at a time: a second one waits in the queue and is cancelled at once.
    queued = api.post("/api/jobs", json=tiny(steps=5)).json()
    assert api.get(f"/api/jobs/{queued['id']}").json()["status"] == "queued"
    assert [j["id"] for j in api.get("/api/jobs", params={"status": "running"}).json()] == [job["id"]]
    assert api.delete(f"/api/jobs/{job['id']}").status_code == 409
    assert api.delete(f"/api/jobs/{queued['id']}").status_code == 409
    assert api.post(f"/api/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"
    assert api.delete(f"/api/jobs/{queued['id']}").status_code == 204

    started = time.monotonic()
    answer = api.post(f"/api/jobs/{job['id']}/cancel").json()
    assert answer["status"] in ("running", "cancelled")
    cancelled = wait_for(api, job["id"], lambda j: j["status"] in TERMINAL, timeout=30)
    assert time.monotonic() - started < 10
    assert cancelled["status"] == "cancelled" and 0 < cancelled["step"] < steps
    assert cancelled["checkpoint_step"] == cancelled["step"]  # cancel writes a checkpoint
    assert (server.data_dir / "jobs" / job["id"] / "train_state.npz").exists()
    assert api.post(f"/api/jobs/{job['id']}/cancel").status_code == 409

    resumed = api.post(f"/api/jobs/{job['id']}/resume").json()
    assert resumed["status"] in ("queued", "running") and resumed["error"] is None
    events = list(sse(api, f"/api/jobs/{job['id']}/events", params={"after_step": cancelled["step"]}))
    assert events[0]["event"] == "status" and events[0]["data"]["step"] == cancelled["step"]
    redone = [e["data"]["step"] for e in events if e["event"] == "step"]
    assert redone == list(range(cancelled["step"] + 1, steps + 1))
    assert events[-1]["data"]["status"] == "succeeded"
    history = api.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
    assert [m["step"] for m in history] == list(range(1, steps + 1))
    assert api.post(f"/api/jobs/{job['id']}/resume").status_code == 409
    assert api.delete(f"/api/jobs/{job['id']}").status_code == 204


def test_killed_worker_fails_with_reason_then_resumes(api: httpx.Client, server: ServerProcess) -> None:
    job = api.post("/api/jobs", json=tiny(steps=100_000, checkpoint_every=20)).json()
    wait_for_step(api, job["id"], 30)
    (pid,) = _only_worker(server)
    os.kill(pid, signal.SIGKILL)
    failed = wait_for(api, job["id"], lambda j: j["status"] in TERMINAL, timeout=30)
    assert failed["status"] == "failed"
    assert failed["error"] == "worker process died: killed by signal 9 (SIGKILL)"
    kept = api.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
    assert len(kept) >= 30 and [m["step"] for m in kept] == list(range(1, len(kept) + 1))
    checkpoint = failed["checkpoint_step"]
    assert checkpoint and checkpoint % 20 == 0

    # Resume continues after the last checkpoint; the steps done after it are redone.
    api.post(f"/api/jobs/{job['id']}/resume")
    wait_for_step(api, job["id"], checkpoint + 5)
    api.post(f"/api/jobs/{job['id']}/cancel")
    stopped = wait_for(api, job["id"], lambda j: j["status"] in TERMINAL, timeout=30)
    assert stopped["status"] == "cancelled"
    history = api.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
    assert [m["step"] for m in history] == list(range(1, stopped["step"] + 1))

    # A checkpoint that cannot be read fails the job inside the worker, with the library's message.
    (server.data_dir / "jobs" / job["id"] / "model.weights.h5").write_bytes(b"not hdf5")
    api.post(f"/api/jobs/{job['id']}/resume")
    broken = wait_for(api, job["id"], lambda j: j["status"] in TERMINAL, timeout=60)
    assert broken["status"] == "failed" and "cannot be read" in broken["error"]
    assert broken["step"] == stopped["step"]
    assert api.delete(f"/api/jobs/{job['id']}").status_code == 204


def test_restart_marks_running_jobs_interrupted_and_resume_finishes(make_server: object, tmp_path: Path) -> None:
    """Kill -9 the server mid-job, restart, resume; SIGTERM mid-job, restart, resume: every step kept once."""
    steps = 400
    first: ServerProcess = make_server()  # type: ignore[operator]
    with httpx.Client(base_url=first.url, timeout=30) as http:
        job = http.post("/api/jobs", json=tiny(steps=steps, checkpoint_every=50)).json()
        seen = wait_for_step(http, job["id"], 60)["data"]["step"]
        (worker,) = _only_worker(first)
    first.stop(signal.SIGKILL)
    _wait_gone(worker, timeout=30)  # the orphan notices its parent is gone and stops

    second: ServerProcess = make_server(first.data_dir)  # type: ignore[operator]
    with httpx.Client(base_url=second.url, timeout=30) as http:
        interrupted = http.get(f"/api/jobs/{job['id']}").json()
        assert interrupted["status"] == "interrupted"
        kept = http.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
        assert len(kept) >= seen and [m["step"] for m in kept] == list(range(1, len(kept) + 1))
        http.post(f"/api/jobs/{job['id']}/resume")
        wait_for_step(http, job["id"], len(kept) + 5)
    # uvicorn shuts down gracefully, then re-raises the signal, so the exit status is -SIGTERM.
    assert second.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "interrupted at step" in second.log.read_text()

    third: ServerProcess = make_server(first.data_dir)  # type: ignore[operator]
    with httpx.Client(base_url=third.url, timeout=30) as http:
        again = http.get(f"/api/jobs/{job['id']}").json()
        assert again["status"] == "interrupted" and again["checkpoint_step"] == again["step"]
        http.post(f"/api/jobs/{job['id']}/resume")
        done = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=120)
        assert done["status"] == "succeeded" and done["step"] == steps
        history = http.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
        assert [m["step"] for m in history] == list(range(1, steps + 1))
        events = list(sse(http, f"/api/jobs/{job['id']}/events"))
        assert [e["id"] for e in events] == sorted({e["id"] for e in events})
        step_events = [e["data"]["step"] for e in events if e["event"] == "step"]
        assert sorted(step_events) == list(range(1, steps + 1))


def _only_worker(server: ServerProcess) -> list[int]:
    """The one live worker (a finished job's worker may take a moment to exit)."""
    deadline = time.monotonic() + 10
    while len(pids := server.worker_pids()) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":  # exited; waits for whoever adopted it to reap it
            return
        time.sleep(0.1)
    raise AssertionError(f"worker {pid} still alive {timeout} s after its server died")


def test_jobs_beyond_the_concurrency_limit_wait_and_run_in_order(api: httpx.Client) -> None:
    """Three jobs with one worker slot: one runs at a time, in the order they were submitted."""
    ids = [api.post("/api/jobs", json=tiny(steps=20, checkpoint_every=0)).json()["id"] for _ in range(3)]
    most_running = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        jobs = {j["id"]: j for j in api.get("/api/jobs").json() if j["id"] in ids}
        most_running = max(most_running, sum(j["status"] == "running" for j in jobs.values()))
        if all(j["status"] in TERMINAL for j in jobs.values()):
            break
        time.sleep(0.05)
    done = [api.get(f"/api/jobs/{job_id}").json() for job_id in ids]
    assert [j["status"] for j in done] == ["succeeded"] * 3
    assert most_running == 1
    assert [j["started_at"] for j in done] == sorted(j["started_at"] for j in done)
    for earlier, later in zip(done, done[1:], strict=False):
        assert earlier["finished_at"] <= later["started_at"]  # never two at once
    for job_id in ids:
        api.delete(f"/api/jobs/{job_id}")


def test_a_diverging_loss_fails_the_job_with_the_step_and_part(api: httpx.Client) -> None:
    """A config whose loss overflows: tiny offset variances blow the encoded targets up to ~1e38,
    times alpha 1000, at learning rate 10 in float32. The job fails, it does not hang."""
    config = tiny(steps=200, learning_rate=10, schedule="constant", precision="float32", checkpoint_every=0)
    config["loss"] = {"alpha": 1000}
    config["matching"] = {"variances": [1e-38, 1e-38]}
    job = api.post("/api/jobs", json=config).json()
    failed = wait_for(api, job["id"], lambda j: j["status"] in TERMINAL, timeout=120)
    assert failed["status"] == "failed"
    assert re.fullmatch(r"loss component '\w+' became (nan|inf|-inf) at step \d+; training stopped", failed["error"])
    # the whole traceback, for the page's details under the one-line error
    trace = failed["run"]["traceback"]
    assert trace.startswith("Traceback (most recent call last):") and "NonFiniteLossError" in trace
    assert trace.rstrip().endswith(failed["error"])
    bad_step = int(failed["error"].split("at step ")[1].split(";")[0])
    kept = api.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"]
    assert [m["step"] for m in kept] == list(range(1, bad_step))  # the finite steps before it stay
    events = list(sse(api, f"/api/jobs/{job['id']}/events"))
    assert events[-1]["data"] == {"status": "failed", "error": failed["error"]}
    assert api.delete(f"/api/jobs/{job['id']}").status_code == 204
