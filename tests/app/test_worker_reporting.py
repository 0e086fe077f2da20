"""Workers that report over HTTP: the per-job token, idempotent batches, cancel, restart.

The runner gets a stand-in executor that "places" workers nowhere and hands out their tokens;
the tests then speak for the workers with ``POST /api/jobs/{id}/worker/events``, exactly as
:class:`app.worker.reporter.HttpReporter` would. The Ray executor itself is tested in
``test_ray_executor.py``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from live_server import tiny, wait_for

from app.domain import Job, JobStatus
from app.execution.executors.base import Executor
from app.main import create_app
from app.settings import Settings
from app.store.jobs import utcnow
from app.worker.reporter import HttpReporter

ADMIN = "admin-secret-token"


class RemoteStandIn(Executor):
    """Runs nothing; remembers each run's token, as a Ray job's environment would hold it."""

    name = "stand-in"
    done_grace = 3.0
    outlives_server = True

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.alive: set[str] = set()
        self.killed: list[str] = []

    def submit(self, job: Job, *, token: str) -> str:
        self.tokens[job.id] = token
        self.alive.add(job.id)
        return job.id

    def ref(self, handle: str) -> str:
        return f"stand-in-{handle}"

    def request_stop(self, handle: str) -> None:
        pass

    def kill(self, handle: str) -> None:
        self.killed.append(handle)
        self.alive.discard(handle)

    def poll(self, handle: str) -> str | None:
        return None if handle in self.alive else "the stand-in run ended"

    def reattach(self, job: Job, ref: str | None) -> str | None:
        return job.id if job.id in self.alive and ref == f"stand-in-{job.id}" else None


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch) -> RemoteStandIn:
    standin = RemoteStandIn()
    monkeypatch.setattr("app.execution.runner.make_executor", lambda settings: standin)
    return standin


def _app(tmp_path: Path, **kwargs: Any) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", max_concurrent_jobs=2, token=ADMIN, **kwargs)  # type: ignore[arg-type]
    return TestClient(create_app(settings))


def _admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def _post(client: TestClient, job_id: str, token: str, messages: list[dict[str, Any]]) -> httpx.Response:
    return client.post(
        f"/api/jobs/{job_id}/worker/events", json={"messages": messages}, headers={"Authorization": f"Bearer {token}"}
    )


def _steps(first: int, last: int) -> list[dict[str, Any]]:
    return [
        {"type": "step", "data": {"step": s, "pos_clf": 1.0, "neg_clf": 0.5, "loc": 0.25, "total": 1.75, "time": 1e9}}
        for s in range(first, last + 1)
    ]


def _events(client: TestClient, job_id: str) -> list[tuple[str, int | None]]:
    """The job's whole event log as ``(kind, step)`` pairs (the stream ends at the terminal status)."""
    text = client.get(f"/api/jobs/{job_id}/events").text
    out = []
    for frame in text.strip().split("\r\n\r\n"):
        lines = dict(line.split(": ", 1) for line in frame.split("\r\n") if ": " in line)
        if "event" in lines:
            data = httpx.Response(200, content=lines["data"]).json()
            out.append((lines["event"], data.get("step") if lines["event"] != "status" else None))
    return out


def test_a_worker_token_writes_its_own_job_only(tmp_path: Path, executor: RemoteStandIn) -> None:
    with _app(tmp_path) as client:
        a = client.post("/api/jobs", json=tiny(steps=3), headers=_admin()).json()["id"]
        b = client.post("/api/jobs", json=tiny(steps=3), headers=_admin()).json()["id"]
        token_a, token_b = executor.tokens[a], executor.tokens[b]
        assert token_a != token_b and ADMIN not in (token_a, token_b)
        assert token_a not in client.get(f"/api/jobs/{a}").text  # never shown, not even hashed

        started = [{"type": "started", "step": 0, "pid": 1, "history": []}]
        assert _post(client, a, token_a, started + _steps(1, 2)).json() == {"cancel": False}
        assert _post(client, b, token_a, _steps(1, 2)).status_code == 401  # another job's token
        assert _post(client, a, ADMIN, _steps(3, 3)).status_code == 401  # the admin token is not a worker's
        assert _post(client, a, "", _steps(3, 3)).status_code == 401
        assert _post(client, "nosuchjob", token_a, _steps(1, 1)).status_code == 401
        # The worker token opens no admin route.
        worker = {"Authorization": f"Bearer {token_a}"}
        assert client.post(f"/api/jobs/{a}/cancel", headers=worker).status_code == 401
        assert client.delete(f"/api/jobs/{b}", headers=worker).status_code == 401
        assert client.post("/api/jobs", json=tiny(steps=3), headers=worker).status_code == 401
        assert client.patch(f"/api/jobs/{a}", json={"name": "x"}, headers=worker).status_code == 401
        # A malformed message is refused whole.
        assert _post(client, a, token_a, [{"type": "step", "data": {"no": "step"}}]).status_code == 422
        assert [m["step"] for m in client.get(f"/api/jobs/{a}/metrics").json()["metrics"]] == [1, 2]
        assert client.get(f"/api/jobs/{b}").json()["step"] == 0


def test_a_batch_sent_again_is_applied_once(tmp_path: Path, executor: RemoteStandIn) -> None:
    with _app(tmp_path) as client:
        job = client.post("/api/jobs", json=tiny(steps=5), headers=_admin()).json()["id"]
        token = executor.tokens[job]
        first = [{"type": "started", "step": 0, "pid": 1, "history": []}, *_steps(1, 3)]
        assert _post(client, job, token, first).status_code == 200
        assert _post(client, job, token, first).status_code == 200  # the answer was lost: sent again
        evaluation = {"type": "eval", "data": {"step": 3, "map": 0.5, "map50": 0.7, "val_total": 1.0}}
        overlap = [*_steps(2, 5), evaluation, {"type": "checkpoint", "step": 5}]
        assert _post(client, job, token, overlap).status_code == 200
        assert _post(client, job, token, overlap).status_code == 200
        done = [{"type": "done", "status": "succeeded", "step": 5, "error": None}]
        assert _post(client, job, token, done).json() == {"cancel": False}
        assert _post(client, job, token, done).json() == {"cancel": True}  # the job is over: stop
        state = client.get(f"/api/jobs/{job}").json()
        assert state["status"] == "succeeded" and state["step"] == 5 and state["checkpoint_step"] == 5
        assert [m["step"] for m in client.get(f"/api/jobs/{job}/metrics").json()["metrics"]] == [1, 2, 3, 4, 5]
        events = _events(client, job)
        assert [s for kind, s in events if kind == "step"] == [1, 2, 3, 4, 5]
        assert [s for kind, s in events if kind == "eval"] == [3]
        assert [kind for kind, _ in events].count("status") == 3  # queued, running, succeeded


def test_cancel_reaches_the_worker_and_a_silent_one_is_stopped(tmp_path: Path, executor: RemoteStandIn) -> None:
    with _app(tmp_path, ray_cancel_grace_s=0.5) as client:
        polite = client.post("/api/jobs", json=tiny(steps=50), headers=_admin()).json()["id"]
        silent = client.post("/api/jobs", json=tiny(steps=50), headers=_admin()).json()["id"]
        token = executor.tokens[polite]
        _post(client, polite, token, [{"type": "started", "step": 0, "pid": 1, "history": []}, *_steps(1, 2)])
        assert client.post(f"/api/jobs/{polite}/cancel", headers=_admin()).json()["status"] == "running"
        assert _post(client, polite, token, _steps(3, 3)).json() == {"cancel": True}
        _post(client, polite, token, [{"type": "done", "status": "cancelled", "step": 3, "error": None}])
        assert client.get(f"/api/jobs/{polite}").json()["status"] == "cancelled"

        # A worker that never answers is stopped after the grace; its job is cancelled, not failed.
        client.post(f"/api/jobs/{silent}/cancel", headers=_admin())
        job = wait_for(client, silent, lambda j: j["status"] != "running", timeout=15)
        assert job["status"] == "cancelled" and job["error"] is None and executor.killed == [silent]


def test_a_restarted_server_reattaches_runs_its_executor_still_has(tmp_path: Path, executor: RemoteStandIn) -> None:
    with _app(tmp_path) as client:
        kept = client.post("/api/jobs", json=tiny(steps=6), headers=_admin()).json()["id"]
        lost = client.post("/api/jobs", json=tiny(steps=6), headers=_admin()).json()["id"]
        token = executor.tokens[kept]
        _post(client, kept, token, [{"type": "started", "step": 0, "pid": 1, "history": []}, *_steps(1, 3)])
    # The server stopped; the runs did not. One of them is lost while it is away.
    executor.alive.discard(lost)
    with _app(tmp_path) as client:
        assert client.get(f"/api/jobs/{kept}").json()["status"] == "running"
        assert client.get(f"/api/jobs/{lost}").json()["status"] == "interrupted"
        # The worker sends again what it could not deliver (step 3 arrived before), then goes on.
        _post(client, kept, token, [*_steps(3, 6), {"type": "done", "status": "succeeded", "step": 6, "error": None}])
        assert client.get(f"/api/jobs/{kept}").json()["status"] == "succeeded"
        assert [m["step"] for m in client.get(f"/api/jobs/{kept}/metrics").json()["metrics"]] == list(range(1, 7))
        assert [s for kind, s in _events(client, kept) if kind == "step"] == list(range(1, 7))
        # The lost run's worker, should it come back, is told to stop; the job resumes with a new token.
        assert _post(client, lost, executor.tokens[lost], _steps(1, 1)).json() == {"cancel": True}
        old = executor.tokens[lost]
        client.post(f"/api/jobs/{lost}/resume", headers=_admin())
        assert executor.tokens[lost] != old and _post(client, lost, old, _steps(1, 1)).status_code == 401


def test_the_reporter_retries_with_back_off_and_keeps_order() -> None:
    """A server away for three sends, then one that loses an answer: every message arrives, in order."""
    received: list[list[int]] = []
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise httpx.ConnectError("connection refused")
        body = httpx.Response(200, content=request.content).json()
        steps = [m["data"]["step"] for m in body["messages"] if m["type"] == "step"]
        if steps:
            received.append(steps)
        if calls["n"] == 4:
            return httpx.Response(503)  # applied, but the answer says try again: sent again
        return httpx.Response(200, json={"cancel": calls["n"] >= 6})

    from app.worker.messages import Record

    reporter = HttpReporter(
        "http://server", "j1", "tok", batch_s=0.01, min_backoff_s=0.01, transport=httpx.MockTransport(handler)
    )
    reporter.start()
    for step in range(1, 8):
        reporter.put(Record("j1", "step", {"step": step}))
    assert reporter.flush(timeout=10)
    for step in range(8, 10):
        reporter.put(Record("j1", "step", {"step": step}))
    assert reporter.close(timeout=10)
    assert reporter.retries >= 4
    assert received[0] == received[1]  # the batch whose answer was a 503 came again, whole
    applied: list[int] = []  # what the server keeps: a step after the last one it has
    for batch in received:
        assert batch == sorted(batch)
        applied += [s for s in batch if not applied or s > applied[-1]]
    assert applied == list(range(1, 10))
    assert reporter.cancel.is_set()


def test_the_reporter_stops_when_the_server_refuses_the_run() -> None:
    from app.worker.messages import Record

    reporter = HttpReporter(
        "http://server", "j1", "tok", batch_s=0.01, transport=httpx.MockTransport(lambda r: httpx.Response(401))
    ).start()
    reporter.put(Record("j1", "step", {"step": 1}))
    assert reporter.gone.wait(5) and reporter.cancel.is_set()
    assert not reporter.close(timeout=5)


def test_ray_resources_come_from_the_settings_and_the_config(tmp_path: Path) -> None:
    from app.execution.executors.ray import RayExecutor, ray_resources

    settings = Settings(data_dir=tmp_path, ray_cpus_per_job=2, server_url="http://10.0.0.5:8000/")
    assert ray_resources(settings) == {"entrypoint_num_cpus": 2}
    with_gpus = settings.model_copy(update={"ray_gpus_per_job": 0.5})
    assert ray_resources(with_gpus) == {"entrypoint_num_cpus": 2, "entrypoint_num_gpus": 0.5}
    job = Job(id="abc", name="n", config=tiny(), status=JobStatus.queued, created_at=utcnow(), step=7, total_steps=5)
    command = RayExecutor(settings).entrypoint(job)
    assert command.startswith("python -m app.worker.main --job abc --server http://10.0.0.5:8000 --job-dir ")
    # A multi-worker job's peers are Ray actors, each asking for one worker's share, placed within the timeout.
    tail = "--ray-peers 2.0 0.0 --ray-placement-timeout 300.0"
    assert command.endswith(f"--data-dir {tmp_path.resolve()} --known-step 7 {tail}")


FULL_STEP = {
    "step": 2,
    "pos_clf": 1.0,
    "neg_clf": 0.5,
    "loc": 0.25,
    "total": 1.75,
    "num_pos": 3.0,
    "num_neg": 9.0,
    "lr": 0.001,
    "images_per_sec": 120.5,
    "time": 1e9,
}


def _step(**changes: Any) -> dict[str, Any]:
    return {"type": "step", "data": {**FULL_STEP, **changes}}


# What a probe posted with a job's worker token (the job has 3 steps): each was a 500 on every
# later read of the job's metrics, a step the real worker could no longer follow, or markup stored.
BAD_BATCHES: dict[str, str | list[dict[str, Any]]] = {
    "step past 64 bits": [_step(step=2**63 - 1)],
    "step past the job": [_step(step=4)],
    "step not a whole number": [_step(step=1e20)],
    "step true": [_step(step=True)],
    "step 0": [_step(step=0)],
    "loss a string": [_step(total="1.75")],
    "loss missing": [{"type": "step", "data": {"step": 2, "time": 1e9}}],
    "unknown key": [_step(gpu="<b>")],
    "eval markup": [{"type": "eval", "data": {"step": 2, "map": '<img src=x onerror="alert(1)">'}}],
    "checkpoint 1e300": [{"type": "checkpoint", "step": 1e300}],
    "checkpoint Infinity": '[{"type": "checkpoint", "step": Infinity}]',
    "loss NaN": '[{"type":"step","data":{"step":2,"pos_clf":NaN,"neg_clf":0,"loc":0,"total":0,"time":1}}]',
    "done step past the job": [{"type": "done", "status": "succeeded", "step": 10**6}],
    "history record": [{"type": "started", "step": 2, "pid": 1, "history": [{**FULL_STEP, "lr": "fast"}]}],
    "history past its start": [{"type": "started", "step": 1, "pid": 1, "history": [FULL_STEP]}],
    "unknown type": [{"type": "progress", "step": 2}],
    "extra field": [{"type": "checkpoint", "step": 2, "path": "/etc/passwd"}],
}


def test_a_malformed_report_is_refused_whole_and_the_job_goes_on(tmp_path: Path, executor: RemoteStandIn) -> None:
    with _app(tmp_path) as client:
        job = client.post("/api/jobs", json=tiny(steps=3), headers=_admin()).json()["id"]
        token = executor.tokens[job]
        assert _post(client, job, token, [{"type": "started", "step": 0, "pid": 1, "history": []}, *_steps(1, 1)])
        worker = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for case, bad in BAD_BATCHES.items():
            # A good step first: nothing of a batch is applied when one of its messages is refused.
            text = bad if isinstance(bad, str) else json.dumps(bad)
            body = f'{{"messages": [{json.dumps(_step(step=2))}, {text[1:-1]}]}}'
            response = client.post(f"/api/jobs/{job}/worker/events", content=body, headers=worker)
            assert response.status_code == 422, (case, response.text)
            assert response.json()["detail"][0]["loc"][:3] == ["body", "messages", 1], (case, response.text)
            state = client.get(f"/api/jobs/{job}").json()
            assert (state["status"], state["step"], state["checkpoint_step"]) == ("running", 1, None), case
            metrics = client.get(f"/api/jobs/{job}/metrics")
            assert metrics.status_code == 200 and [m["step"] for m in metrics.json()["metrics"]] == [1], case
        # The real worker's next steps, as its trainer reports them, still count.
        real = [_step(step=2), {"type": "eval", "data": {"step": 2, "images": 4, "time": 1e9, "map": None}}]
        assert _post(client, job, token, real).json() == {"cancel": False}
        assert [m["step"] for m in client.get(f"/api/jobs/{job}/metrics").json()["metrics"]] == [1, 2]


def _asgi_post(app: Any, path: str, headers: dict[str, str], chunks: int, size: int = 2**20) -> tuple[int, int]:
    """POST ``chunks`` chunks of ``size`` bytes to an ASGI app; its status and how many chunks it read."""
    chunk, read, status = b"x" * size, 0, []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read == chunks:
            await asyncio.sleep(3600)  # the client has nothing more to send
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": read < chunks}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    raw = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 60))
    return status[0], read


@pytest.mark.parametrize("port", ["listener", "server"])
def test_the_token_is_checked_before_the_body_is_read_and_the_body_is_bounded(
    tmp_path: Path, executor: RemoteStandIn, port: str
) -> None:
    """The probe's unauthenticated 200 MB post to the listener took 390 MB before its 422."""
    from app.api.worker import report_app
    from app.worker.messages import MAX_REPORT_BYTES

    with _app(tmp_path) as client:
        server: Any = client.app
        app = report_app(server.state.runner, server.state.settings) if port == "listener" else server
        job = client.post("/api/jobs", json=tiny(steps=3), headers=_admin()).json()["id"]
        path = f"/api/jobs/{job}/worker/events"
        twenty_mib = {"Content-Length": str(20 * 2**20)}
        for token in (None, "not-the-token", ADMIN):
            auth = {"Authorization": f"Bearer {token}"} if token else {}
            assert _asgi_post(app, path, {**twenty_mib, **auth}, chunks=20) == (401, 0), token
        worker = {"Authorization": f"Bearer {executor.tokens[job]}"}
        over = {"Content-Length": str(MAX_REPORT_BYTES + 1)}
        assert _asgi_post(app, path, {**worker, **over}, chunks=20) == (413, 0)
        # Streamed without a length: refused once the bound is passed, the rest never read.
        status, read = _asgi_post(app, path, {**worker, "Transfer-Encoding": "chunked"}, chunks=100)
        assert status == 413 and read == MAX_REPORT_BYTES // 2**20 + 1
        assert _post(client, job, executor.tokens[job], _steps(1, 1)).status_code == 200  # a real batch still goes


def test_what_a_trainer_reports_passes_the_check() -> None:
    """An evaluation with no box to find has a NaN mAP, an error may carry a terminal's colours:
    the worker sends them as null and U+FFFD, and the server takes them."""
    from app.worker.messages import CheckpointSaved, Done, Record, Started, parse_batch, to_wire

    evaluation = {"step": 2, "images": 4, "time": 1e9, "val_total": 1.5, "map": float("nan")}
    sent = [
        Started("j1", 1, 42, [{**FULL_STEP, "step": 1}]),
        Record("j1", "step", FULL_STEP),
        Record("j1", "eval", evaluation),
        CheckpointSaved("j1", 2),
        Done("j1", "failed", 2, "\x1b[31mOOM\x1b[0m\nat step 2"),
    ]
    received = parse_batch("j1", [json.loads(json.dumps(to_wire(m), allow_nan=False)) for m in sent], max_step=3)
    assert received[:2] == sent[:2] and received[3] == sent[3]
    assert received[2] == Record("j1", "eval", {**evaluation, "map": None})
    assert received[4] == Done("j1", "failed", 2, "\ufffd[31mOOM\ufffd[0m\nat step 2")


def test_a_time_budgets_plan_moves_the_jobs_length(tmp_path: Path, executor: RemoteStandIn) -> None:
    """A ``planned`` message sets total_steps (at most the config's train.steps) and says so in a
    status event; steps up to train.steps stay accepted after a shorter plan, none beyond."""
    from app.worker.messages import Planned, to_wire

    with _app(tmp_path) as client:
        job = client.post("/api/jobs", json=tiny(steps=10), headers=_admin()).json()["id"]
        token = executor.tokens[job]
        plan = to_wire(Planned(job, 4, "planned 4 steps to end 1 min after the start"))
        assert plan == {"type": "planned", "total_steps": 4, "reason": "planned 4 steps to end 1 min after the start"}
        first = [{"type": "started", "step": 0, "pid": 1, "history": []}, *_steps(1, 2), plan]
        assert _post(client, job, token, first).status_code == 200
        assert client.get(f"/api/jobs/{job}").json()["total_steps"] == 4
        again = to_wire(Planned(job, 6, "planned 6 steps"))  # a later plan, and steps up to it
        assert _post(client, job, token, [again, *_steps(3, 6)]).status_code == 200
        assert client.get(f"/api/jobs/{job}").json()["total_steps"] == 6
        over = to_wire(Planned(job, 11, "more than train.steps"))
        assert _post(client, job, token, [over]).status_code == 422  # past the config's train.steps
        _post(client, job, token, [{"type": "done", "status": "succeeded", "step": 6, "error": None}])
        text = client.get(f"/api/jobs/{job}/events").text  # the whole log: the job has ended
        plans = [json.loads(line[6:])["total_steps"] for line in text.splitlines() if '"total_steps"' in line]
        assert plans == [4, 6]


@pytest.mark.parametrize(
    ("delivered", "outcome", "code"),
    [(True, "succeeded", 0), (True, "cancelled", 0), (True, "failed", 4), (False, "failed", 1), (False, None, 1)],
)
def test_the_workers_exit_status_says_a_failed_job(
    monkeypatch: pytest.MonkeyPatch, delivered: bool, outcome: str | None, code: int
) -> None:
    """A failed job's worker exits 4, so Ray lists the job FAILED as the dashboard does."""
    import app.worker.main as worker_main

    monkeypatch.setenv(worker_main.TOKEN_ENV, "t")
    monkeypatch.setenv(worker_main.CONFIG_ENV, "{}")
    monkeypatch.setattr(worker_main, "run_reporting", lambda *a, **k: worker_main.Reported(delivered, outcome))
    argv = ["--job", "j", "--server", "http://127.0.0.1:9", "--job-dir", "/tmp/x", "--data-dir", "/tmp/y"]
    assert worker_main.main(argv) == code
