"""Helpers of the API tests: a tiny training config, a real server process, an SSE reader.

Training configs stay tiny (2 units, 32 px, one source layer) so a step takes milliseconds on
two busy cores. Streaming, cancelling and killing need real processes: ``ServerProcess`` runs
``ssdboard serve`` on a free port (started and stopped by :mod:`benchmarks.server`), and its
workers are found through ``/proc``.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from app.api.schemas import CONFIG_EXAMPLE
from app.domain import TERMINAL
from benchmarks.server import free_port, start_server, stop_server

# The API's own example (a tiny job, seconds on a CPU), five steps long.
TINY: dict[str, Any] = {**copy.deepcopy(CONFIG_EXAMPLE), "train": {**CONFIG_EXAMPLE["train"], "steps": 5}}


def tiny(**train: Any) -> dict[str, Any]:
    """The tiny config with ``train`` keys overridden."""
    config = copy.deepcopy(TINY)
    config["train"].update(train)
    return config


def route_table(app: Any) -> list[tuple[str, frozenset[str]]]:
    """Every ``(path, methods)`` the app serves, included routers flattened; a mount is
    ``("/static/{path}", {"GET"})``. FastAPI >= 0.130 includes routers lazily, so ``app.routes``
    alone lists the routers, not their routes."""
    try:
        from fastapi.routing import iter_route_contexts

        routes: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:  # older FastAPI: routes are copied into the app
        routes = list(app.routes)
    out = []
    for route in routes:
        methods = getattr(route, "methods", None)
        if methods is None:  # a Mount
            out.append((f"{route.path}/{{path}}", frozenset({"GET"})))
        else:
            out.append((route.path, frozenset(methods) - {"HEAD"}))
    return out


class ServerProcess:
    """``ssdboard serve`` in a subprocess on a free port, logging to ``data_dir/../server-N.log``."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}  # extra SSDBOARD_* settings, e.g. a token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 30) -> ServerProcess:
        """Start and wait until ``/healthz`` answers (a failure quotes the log)."""
        self.starts += 1
        self.log = self.data_dir.parent / f"server-{self.port}-{self.starts}.log"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **self.env}
        self.process = start_server(self.data_dir, self.port, self.log, env=env, timeout=timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the exit; returns the exit status (killed and raised after ``timeout``)."""
        if self.process is None:
            return 0
        return stop_server(self.process, sig, timeout, strict=True)

    def worker_pids(self) -> list[int]:
        """Pids of this server's spawned training workers (children running ``spawn_main``)."""
        children: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            children += [int(p) for p in (task / "children").read_text().split()]
        out = []
        for pid in children:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in cmdline:
                out.append(pid)
        return out


def sse(
    http: httpx.Client,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    timeout: float = 90,
) -> Iterator[dict[str, Any]]:
    """Parse a Server-Sent Events stream into ``{"id", "event", "data"}`` dicts (data decoded)."""
    with http.stream("GET", path, headers=headers, params=params, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if not line:
                if "data" in fields:
                    yield {"id": int(fields["id"]), "event": fields.get("event"), "data": json.loads(fields["data"])}
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value[1:] if value.startswith(" ") else value


def wait_for(http: httpx.Client, job_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 90) -> Any:
    """Poll ``GET /api/jobs/{id}`` until ``predicate(job)``; returns the job."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = http.get(f"/api/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there; last seen {job}")


def wait_for_step(http: httpx.Client, job_id: str, step: int, timeout: float = 90) -> Any:
    """Read the job's event stream until a ``step`` event at or past ``step``; returns that event."""
    for event in sse(http, f"/api/jobs/{job_id}/events", params={"from": "live"}, timeout=timeout):
        if event["event"] == "step" and event["data"]["step"] >= step:
            return event
        if event["event"] == "status" and event["data"]["status"] in TERMINAL:
            raise AssertionError(f"job {job_id} ended before step {step}: {event}")
    raise AssertionError(f"stream of job {job_id} ended before step {step}")
