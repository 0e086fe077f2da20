"""The runs table over REST: GET /api/jobs filters, sort keys and paging (X-Total-Count), the job's
tags, notes, sweep, best mAP and duration, and PATCH /api/jobs/{id} with its 422s."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from live_server import TINY

from ssd.config import from_dict


def _make(client: TestClient, name: str, **kwargs: Any) -> str:
    store = client.app.state.store  # type: ignore[attr-defined]
    config = from_dict({**TINY, "name": name}).to_dict()
    job, _ = store.create_job(name=name, config=config, total_steps=5, **kwargs)
    store.set_status(job.id, "succeeded")
    return job.id


def _eval(client: TestClient, job_id: str, step: int, map50: float, map_: float) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    store.record(job_id, [("eval", {"step": step, "map50": map50, "map": map_})])


def _names(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/api/jobs", params=params)
    assert response.status_code == 200, response.text
    return [job["name"] for job in response.json()]


def test_list_filters_sorts_and_pages(db_client: TestClient) -> None:
    a = _make(db_client, "lr-1e-3", tags=["baseline"])
    b = _make(db_client, "lr-3e-3", sweep_id="sw42")
    c = _make(db_client, "wide priors", sweep_id="sw42")
    _eval(db_client, a, 10, 0.70, 0.30)
    _eval(db_client, a, 20, 0.65, 0.35)
    _eval(db_client, b, 10, 0.90, 0.40)

    assert _names(db_client) == ["wide priors", "lr-3e-3", "lr-1e-3"]  # newest first, as before
    assert _names(db_client, sort="-best_map50") == ["lr-3e-3", "lr-1e-3", "wide priors"]
    assert _names(db_client, sort="-best_map50", sweep="sw42") == ["lr-3e-3", "wide priors"]
    assert _names(db_client, q="LR-") == ["lr-3e-3", "lr-1e-3"]
    assert _names(db_client, tag="baseline") == ["lr-1e-3"]
    assert _names(db_client, dataset="mnist", status="succeeded", sort="name") == ["lr-1e-3", "lr-3e-3", "wide priors"]
    assert _names(db_client, dataset="trees") == []

    first = db_client.get("/api/jobs", params={"sort": "name", "limit": 2})
    assert [j["name"] for j in first.json()] == ["lr-1e-3", "lr-3e-3"] and first.headers["X-Total-Count"] == "3"
    last = db_client.get("/api/jobs", params={"sort": "name", "limit": 2, "offset": 2})
    assert [j["name"] for j in last.json()] == ["wide priors"] and last.headers["X-Total-Count"] == "3"
    beyond = db_client.get("/api/jobs", params={"limit": 2, "offset": 10})
    assert beyond.json() == [] and beyond.headers["X-Total-Count"] == "3"

    job = db_client.get(f"/api/jobs/{a}").json()
    assert job["best"] == {"map50": 0.7, "map50_step": 10, "map": 0.35, "map_step": 20}
    assert (job["tags"], job["notes"], job["sweep_id"]) == (["baseline"], "", None)
    assert job["duration_s"] >= 0
    assert db_client.get(f"/api/jobs/{b}").json()["sweep_id"] == "sw42"
    assert {j["id"] for j in db_client.get("/api/jobs").json()} == {a, b, c}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "-bogus"}, "sort"),
        ({"status": "done"}, "status"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_list_queries_are_422_naming_the_parameter(client: TestClient, params: dict[str, Any], field: str) -> None:
    response = client.get("/api/jobs", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_patch_renames_tags_and_annotates(db_client: TestClient) -> None:
    job_id = _make(db_client, "before")
    response = db_client.patch(f"/api/jobs/{job_id}", json={"name": "  after  ", "tags": ["a", "b", "a"]})
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["tags"]) == ("after", ["a", "b"])
    notes = "Loss spikes at step 40.\n\tTry warm-up 100."
    response = db_client.patch(f"/api/jobs/{job_id}", json={"notes": notes})
    assert (response.json()["name"], response.json()["tags"], response.json()["notes"]) == ("after", ["a", "b"], notes)
    assert db_client.get(f"/api/jobs/{job_id}").json()["notes"] == notes
    assert _names(db_client, tag="b") == ["after"]
    assert db_client.patch(f"/api/jobs/{job_id}", json={"tags": []}).json()["tags"] == []
    assert db_client.patch("/api/jobs/nope", json={"name": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "two\nlines"}, "name"),
        ({"name": 3}, "name"),
        ({"tags": ["ok", ""]}, "tags"),
        ({"tags": ["a,b"]}, "tags"),
        ({"tags": ["x" * 41]}, "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"tags": "baseline"}, "tags"),
        ({"notes": "n" * 10_001}, "notes"),
        ({"status": "succeeded"}, "status"),
    ],
)
def test_bad_patches_are_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    job_id = _make(client, "keep")
    response = client.patch(f"/api/jobs/{job_id}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]
    assert client.get(f"/api/jobs/{job_id}").json()["name"] == "keep"
