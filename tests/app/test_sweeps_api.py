"""The sweeps API in-process (jobs stay queued: ``max_concurrent_jobs=0``), and against a real server
whose workers train: create, progress, best run, cancel of queued and running jobs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from live_server import TINY, tiny

from app.domain import TERMINAL
from app.main import create_app
from app.settings import Settings

GRID = {"train.learning_rate": [1e-3, 3e-3], "priors.ratios": [[0.5, 1], [0.35, 0.6, 1]]}


@pytest.fixture
def held(tmp_path: Path) -> Iterator[TestClient]:
    """An app whose jobs wait in the queue."""
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", max_concurrent_jobs=0))) as client:
        yield client


@pytest.fixture
def held_db(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    """``held`` on each store backend (SQLite, PostgreSQL): for the tests that write sweeps and jobs."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, max_concurrent_jobs=0)
    with TestClient(create_app(settings)) as client:
        yield client


def job_count(client: TestClient) -> int:
    return len(client.get("/api/jobs", params={"limit": 1000}).json())


def test_create_queues_the_grid_in_order_tagged_with_the_sweep(held_db: TestClient) -> None:
    answer = held_db.post("/api/sweeps", json={"name": "lr", "base": TINY, "grid": GRID, "max_jobs": 4})
    assert answer.status_code == 201, answer.text
    sweep = answer.json()
    assert sweep["name"] == "lr" and sweep["status"] == "queued" and sweep["keys"] == list(GRID)
    assert len(sweep["job_ids"]) == 4 and sweep["progress"]["counts"]["queued"] == 4
    assert sweep["spec"]["grid"] == GRID and sweep["base"] == TINY
    expected = [(1e-3, [0.5, 1]), (1e-3, [0.35, 0.6, 1]), (3e-3, [0.5, 1]), (3e-3, [0.35, 0.6, 1])]
    for i, (job_id, run, (lr, ratios)) in enumerate(zip(sweep["job_ids"], sweep["runs"], expected, strict=True)):
        job = held_db.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "queued" and job["sweep_id"] == sweep["id"]
        assert job["name"] == f"lr #{i + 1}" and job["config"]["name"] == f"lr #{i + 1}"
        assert job["config"]["train"]["learning_rate"] == lr and job["config"]["priors"]["ratios"] == ratios
        assert job["config"]["model"]["num_units"] == TINY["model"]["num_units"]  # the base under the values
        assert run == {
            **run,
            "index": i,
            "job_id": job_id,
            "values": {"train.learning_rate": lr, "priors.ratios": ratios},
        }
    queue = held_db.get("/api/jobs", params={"status": "queued"}).json()
    assert [j["id"] for j in reversed(queue)] == sweep["job_ids"]  # newest first: created in order
    tagged = held_db.get("/api/jobs", params={"sweep": sweep["id"]}).json()
    assert {j["id"] for j in tagged} == set(sweep["job_ids"])
    assert held_db.get(f"/api/sweeps/{sweep['id']}").json()["runs"] == sweep["runs"]
    listed = held_db.get("/api/sweeps").json()
    assert [s["id"] for s in listed] == [sweep["id"]] and "runs" not in listed[0]
    assert sweep["compare_url"] == "/compare?jobs=" + ",".join(sweep["job_ids"])


def test_random_sweep_is_reproducible(held_db: TestClient) -> None:
    request = {"base": TINY, "random": {"train.learning_rate": {"min": 1e-4, "max": 1e-2, "log": True}},
               "samples": 3, "seed": 5, "max_jobs": 3}  # fmt: skip
    first = held_db.post("/api/sweeps", json=request).json()
    again = held_db.post("/api/sweeps", json=request).json()
    assert [r["values"] for r in first["runs"]] == [r["values"] for r in again["runs"]]
    assert len({r["values"]["train.learning_rate"] for r in first["runs"]}) == 3


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        # ssd.config refuses one of the swept values: the key and the value are named.
        ({"grid": {"train.learning_rate": [1e-3, -1]}}, ["body", "grid", "train.learning_rate"], ["-1", "(0, 10]"]),
        (
            {"random": {"train.batch_size": [2, 0]}, "samples": 8, "seed": 1},
            ["body", "random", "train.batch_size"],
            ["0 (job", "1..", "got 0"],
        ),  # fmt: skip
        ({"grid": {"train.learnig_rate": [1e-3]}}, ["body", "grid", "train.learnig_rate"], ["did you mean"]),
        ({"grid": {"seed": [1, 2, 3]}, "max_jobs": 2}, ["body", "max_jobs"], ["the grid makes 3 jobs"]),
        # A value that breaks another field: the swept key is blamed, the field is quoted.
        (
            {"grid": {"model.source_layers": [["norm3_2"], ["norm3_2", "norm4_2"]]}},
            ["body", "grid", "model.source_layers"],
            ["priors.scales", '["norm3_2", "norm4_2"]'],
        ),  # fmt: skip
        ({"grid": {"seed": [1]}, "base": {**TINY, "train": {"steps": 0}}}, ["body", "base", "train", "steps"], []),
        ({"grid": {"seed": [1]}, "base": {"train": {"batch_size": "x"}}}, ["body", "base", "train", "batch_size"], []),
        ({"grid": {"seed": [1]}, "name": ""}, ["body", "name"], []),
        # Values skip the body's pydantic model: any JSON is ssd.config's to refuse, never a 500.
        ({"grid": {"model.backbone": [["resnet50"]]}}, ["body", "grid", "model.backbone"], ['["resnet50"]']),
        ({"random": {"data.dataset": [{"a": 1}]}}, ["body", "random", "data.dataset"], ['{"a": 1}']),
        ({"grid": {"seed": [1]}, "max_jobs": 0}, ["body", "max_jobs"], []),
    ],
)
def test_a_refused_sweep_names_the_key_and_value_and_queues_nothing(
    held: TestClient, body: dict[str, Any], loc: list[str], words: list[str]
) -> None:
    answer = held.post("/api/sweeps", json={"base": TINY, **body})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail[0]["loc"] == loc, detail
    for word in words:
        assert word in detail[0]["msg"], detail
    assert job_count(held) == 0 and held.get("/api/sweeps").json() == []


def test_a_base_refused_alone_passes_when_the_grid_fixes_it(held: TestClient) -> None:
    base = {**TINY, "train": {**TINY["train"], "steps": 0}}
    answer = held.post("/api/sweeps", json={"base": base, "grid": {"train.steps": [3, 4]}})
    assert answer.status_code == 201, answer.text


def test_cancel_cancels_queued_jobs_and_is_idempotent(held_db: TestClient) -> None:
    sweep = held_db.post("/api/sweeps", json={"base": TINY, "grid": {"seed": [1, 2, 3]}}).json()
    done = held_db.post(f"/api/jobs/{sweep['job_ids'][0]}/cancel").json()
    assert done["status"] == "cancelled"
    cancelled = held_db.post(f"/api/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["cancel_requested"] is True
    assert body["progress"]["counts"]["cancelled"] == 3 and body["progress"]["done"] == 3
    assert held_db.post(f"/api/sweeps/{sweep['id']}/cancel").json()["status"] == "cancelled"


def test_unknown_sweep_is_404(held: TestClient) -> None:
    assert held.get("/api/sweeps/nope").status_code == 404
    assert held.post("/api/sweeps/nope/cancel").status_code == 404


def wait_for_sweep(api: httpx.Client, sweep_id: str, done: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        sweep = api.get(f"/api/sweeps/{sweep_id}").json()
        if done(sweep):
            return sweep
        assert time.monotonic() < deadline, sweep
        time.sleep(0.2)


def test_a_sweep_runs_in_order_reports_the_best_run_and_cancels_a_running_job(api: httpx.Client) -> None:
    base = tiny(steps=4, eval_every=2, checkpoint_every=0)
    sweep = api.post("/api/sweeps", json={"name": "live", "base": base, "grid": {"seed": [1, 2]}}).json()
    finished = wait_for_sweep(api, sweep["id"], lambda s: s["status"] == "finished")
    assert finished["progress"]["counts"]["succeeded"] == 2 and finished["progress"]["fraction"] == 1.0
    jobs = [api.get(f"/api/jobs/{job_id}").json() for job_id in sweep["job_ids"]]
    assert jobs[0]["started_at"] <= jobs[1]["started_at"]  # queued in order, run in order
    best = finished["best"]
    assert best is not None and best["best"]["map50"] == max(r["best"]["map50"] for r in finished["runs"])
    assert finished["compare_url"].startswith(f"/compare?jobs={best['job_id']}")

    # A long job running and one queued behind it: cancel stops both.
    long = tiny(steps=100_000, checkpoint_every=0)
    sweep = api.post("/api/sweeps", json={"base": long, "grid": {"seed": [1, 2]}}).json()
    running = wait_for_sweep(api, sweep["id"], lambda s: s["runs"][0]["step"] >= 1)
    assert running["status"] == "running" and running["runs"][1]["status"] == "queued"
    answer = api.post(f"/api/sweeps/{sweep['id']}/cancel").json()
    assert answer["runs"][1]["status"] == "cancelled"
    assert answer["status"] in ("cancelling", "cancelled")
    stopped = wait_for_sweep(api, sweep["id"], lambda s: s["status"] == "cancelled", timeout=30)
    assert [r["status"] for r in stopped["runs"]] == ["cancelled", "cancelled"]
    assert 0 < stopped["runs"][0]["step"] < 100_000
    assert all(api.get(f"/api/jobs/{j}").json()["status"] in TERMINAL for j in sweep["job_ids"])


@pytest.mark.parametrize(
    ("path", "script"),
    [("/sweeps", "pages/sweeps.js"), ("/sweeps/new", "pages/sweep_new.js"), ("/sweeps/a1b2c3", "pages/sweep.js")],
)
def test_sweep_pages_render_with_their_module(held: TestClient, path: str, script: str) -> None:
    page = held.get(path)
    assert page.status_code == 200 and f'src="/static/js/{script}"' in page.text
    assert 'href="/sweeps" id="nav-sweeps" aria-current="page"' in page.text


def test_sweep_page_escapes_the_id(held: TestClient) -> None:
    page = held.get("/sweeps/%3Cscript%3Ex")
    assert "<script>x" not in page.text and "&lt;script&gt;x" in page.text
