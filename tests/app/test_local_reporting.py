"""Local workers report over HTTP, like a Ray job's: to the executor's loopback listener.

The listener serves the worker route alone, on 127.0.0.1, with the same per-run token check as
the server's own route (tested in ``test_worker_reporting.py``).
"""

from __future__ import annotations

import socket
from pathlib import Path

from fastapi.testclient import TestClient
from live_server import tiny, wait_for

from app.execution.executors.local import LocalExecutor
from app.main import create_app
from app.settings import Settings

ADMIN = "admin-secret-token"


def test_a_local_job_reports_to_the_loopback_listener_which_takes_its_token_only(tmp_path: Path) -> None:
    import httpx

    settings = Settings(data_dir=tmp_path / "data", token=ADMIN)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        runner = client.app.state.runner  # type: ignore[attr-defined]
        executor = runner.executor
        assert isinstance(executor, LocalExecutor) and executor._listener is not None
        url = executor._listener.url
        assert url.startswith("http://127.0.0.1:")

        admin = {"Authorization": f"Bearer {ADMIN}"}
        job = client.post("/api/jobs", json=tiny(steps=6, eval_every=3), headers=admin).json()
        done = wait_for(client, job["id"], lambda j: j["status"] not in ("queued", "running"), timeout=120)
        assert done["status"] == "succeeded" and done["step"] == 6
        steps = client.get(f"/api/jobs/{job['id']}/metrics", headers=admin).json()
        assert [r["step"] for r in steps["metrics"]] == [1, 2, 3, 4, 5, 6]  # every step, once, in order
        assert [r["step"] for r in steps["evals"]] == [3, 6]

        events = f"{url}/api/jobs/{job['id']}/worker/events"
        assert httpx.post(events, json={"messages": []}).status_code == 401  # no token
        assert httpx.post(events, json={"messages": []}, headers=admin).status_code == 401  # not a worker's
        assert httpx.get(f"{url}/api/jobs", headers=admin).status_code in (404, 405)  # nothing else is served

    # The listener ends with the server and gives its port back.
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        assert probe.connect_ex((host, int(port))) != 0
