"""In-process API tests (TestClient): health, config schema, 404/409s, bad configs, history, replay."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient
from live_server import TINY, tiny

from app.api.schemas import DEFAULTS, ConfigIn
from app.services.jobs import downsample
from ssd.config import SECTIONS, from_dict, merge


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_config_schema_has_both_presets_defaults_and_help(client: TestClient) -> None:
    body = client.get("/api/config/schema").json()
    assert body["defaults"] == from_dict({}).to_dict()
    assert body["notebook"] == from_dict({"preset": "notebook"}).to_dict()
    schema = body["json_schema"]
    train = schema["$defs"]["TrainIn"]["properties"]
    assert train["steps"]["default"] == DEFAULTS["train"]["steps"] and train["steps"]["description"]
    assert schema["$defs"]["PriorsIn"]["properties"]["scales"]["default"] == DEFAULTS["priors"]["scales"]


def test_config_model_mirrors_ssd_config() -> None:
    """Every section and key of ssd.config is in ConfigIn with the default preset's value, and no more."""
    fields = ConfigIn.model_fields
    assert set(fields) == {"preset", *DEFAULTS}
    for section, cls in SECTIONS.items():
        model = fields[section].annotation
        assert set(model.model_fields) == set(DEFAULTS[section]), section  # type: ignore[union-attr]
        dumped = model().model_dump(mode="json")  # type: ignore[misc, union-attr]
        assert dumped == DEFAULTS[section], cls


def test_openapi_documents_the_contract_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/resume",
        "/api/jobs/{job_id}/metrics",
        "/api/jobs/{job_id}/events",
        "/api/jobs/{job_id}/checkpoint",
        "/healthz",
    ):
        assert path in paths
    post = paths["/api/jobs"]["post"]
    assert "201" in post["responses"]
    assert "tiny" in post["requestBody"]["content"]["application/json"]["examples"]
    assert "text/event-stream" in paths["/api/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/jobs/nope"),
        ("POST", "/api/jobs/nope/cancel"),
        ("POST", "/api/jobs/nope/resume"),
        ("DELETE", "/api/jobs/nope"),
        ("GET", "/api/jobs/nope/metrics"),
        ("GET", "/api/jobs/nope/checkpoint"),
        ("GET", "/api/jobs/nope/events"),
    ],
)
def test_unknown_job_is_404(client: TestClient, method: str, path: str) -> None:
    assert client.request(method, path).status_code == 404


BAD = [
    ({"bogus": 1}, ["bogus"]),
    ({"train": {"stepz": 5}}, ["train", "stepz"]),
    ({"priors": {"strides": [-4]}}, ["priors", "strides"]),
    ({"priors": {"ratios": []}}, ["priors", "ratios"]),
    ({"model": {"source_layers": ["norm9_9"]}}, ["model", "source_layers"]),
    ({"priors": {"scales": [[8], [16]]}}, ["priors", "scales"]),  # two scale groups, one source layer
    ({"model": {"source_layers": ["norm3_2", "norm4_2"]}}, ["priors", "scales"]),  # heads without priors
    ({"priors": {"strides": [8]}}, ["priors", "strides"]),  # norm3_2 has stride 4
    ({"train": {"batch_size": 0}}, ["train", "batch_size"]),
    ({"train": {"batch_size": "many"}}, ["train", "batch_size"]),
    ({"data": {"image_size": 100000}}, ["data", "image_size"]),
    ({"train": {"steps": 10**9}}, ["train", "steps"]),
    ({"model": {"num_units": 10**6}}, ["model", "num_units"]),
    ({"preset": "huge"}, ["preset"]),
    ({"train": {"learning_rate": 0}}, ["train", "learning_rate"]),
    ({"matching": {"variances": [0.1]}}, ["matching", "variances"]),
    # Each value is allowed alone; together they are absurd.
    ({"data": {"image_size": 1024}, "train": {"batch_size": 4096}}, ["train", "batch_size"]),
    ({"data": {"image_size": 1024}, "priors": {"scales": [[8] * 40], "ratios": [0.5, 1, 2] * 5}}, ["priors"]),
    ({"train": {"steps": 10**7, "batch_size": 1000}}, ["train", "steps"]),
]


@pytest.mark.parametrize("override, loc", BAD, ids=[".".join(loc) + f"-{i}" for i, (_, loc) in enumerate(BAD)])
def test_bad_config_is_422_naming_the_field_and_queues_nothing(
    client: TestClient, override: dict[str, Any], loc: list[str]
) -> None:
    response = client.post("/api/jobs", json=merge(TINY, override))
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert [d["loc"][: len(loc) + 1] for d in details][0] == ["body", *loc], details
    assert all(d["msg"] for d in details)
    assert client.get("/api/jobs").json() == []


def test_total_work_limit_names_steps(tmp_path: Any) -> None:
    from app.main import create_app
    from app.settings import Settings

    settings = Settings(data_dir=tmp_path, max_train_images=1000)
    with TestClient(create_app(settings)) as small:
        response = small.post("/api/jobs", json=tiny(steps=1000, batch_size=2))
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "train", "steps"]


def test_job_filters_and_conflicts_without_workers(db_client: TestClient) -> None:
    """Jobs made directly in the store (no worker): list order, status filter, 409s, metrics, replay."""
    store = db_client.app.state.store  # type: ignore[attr-defined]
    config = from_dict(TINY).to_dict()
    first, _ = store.create_job(name="a", config=config, total_steps=5)
    second, _ = store.create_job(name="b", config=config, total_steps=5)
    store.set_status(first.id, "succeeded")
    store.set_status(second.id, "failed", error="boom")
    steps = [{"step": s, "pos_clf": 1.0, "neg_clf": 0.5, "loc": 0.2, "total": 1.7, "time": 1.0 + s} for s in (1, 2, 3)]
    store.record(first.id, [("step", m) for m in steps] + [("eval", {"step": 3, "map": 0.1})])

    listed = db_client.get("/api/jobs").json()
    assert [j["id"] for j in listed] == [second.id, first.id]
    assert [j["id"] for j in db_client.get("/api/jobs", params={"status": "failed"}).json()] == [second.id]
    assert db_client.get("/api/jobs", params={"status": "bogus"}).status_code == 422
    assert len(db_client.get("/api/jobs", params={"limit": 1}).json()) == 1
    assert db_client.get(f"/api/jobs/{second.id}").json()["error"] == "boom"

    assert db_client.post(f"/api/jobs/{first.id}/cancel").status_code == 409
    assert db_client.post(f"/api/jobs/{first.id}/resume").status_code == 409
    assert db_client.get(f"/api/jobs/{first.id}/checkpoint").status_code == 404

    history = db_client.get(f"/api/jobs/{first.id}/metrics").json()
    assert [m["step"] for m in history["metrics"]] == [1, 2, 3]
    assert history["evals"] == [{"step": 3, "map": 0.1}]
    path = f"/api/jobs/{first.id}/metrics"
    assert [m["step"] for m in db_client.get(f"{path}?max_points=2").json()["metrics"]] == [1, 3]
    assert [m["step"] for m in db_client.get(f"{path}?after_step=2").json()["metrics"]] == [3]


def _events(client: TestClient, path: str, **kwargs: Any) -> list[tuple[int, str, dict[str, Any]]]:
    out: list[tuple[int, str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    with client.stream("GET", path, **kwargs) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line:
                if "data" in fields:
                    out.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value.strip()
    return out


def test_event_replay_of_a_finished_job_and_last_event_id(db_client: TestClient) -> None:
    store = db_client.app.state.store  # type: ignore[attr-defined]
    job, _ = store.create_job(name="a", config=from_dict(TINY).to_dict(), total_steps=3)
    store.set_status(job.id, "running")
    store.record(job.id, [("step", {"step": s, "pos_clf": 1, "neg_clf": 1, "loc": 1, "total": 3}) for s in (1, 2, 3)])
    store.set_status(job.id, "succeeded")
    path = f"/api/jobs/{job.id}/events"

    events = _events(db_client, path)
    assert [(e[0], e[1]) for e in events] == [
        (1, "status"),
        (2, "status"),
        (3, "step"),
        (4, "step"),
        (5, "step"),
        (6, "status"),
    ]
    assert events[-1][2] == {"status": "succeeded"}
    assert _events(db_client, path, headers={"Last-Event-ID": "3"}) == events[3:]
    assert _events(db_client, path, params={"last_event_id": 5}) == events[5:]
    assert _events(db_client, path, params={"after_step": 2}) == [events[4], events[5]]
    assert _events(db_client, path, params={"from": "live"}) == []
    assert db_client.get(path, headers={"Last-Event-ID": "x"}).status_code == 400


def test_downsample_keeps_first_and_last() -> None:
    rows = [{"step": s} for s in range(1, 101)]
    assert downsample(rows, None) == rows
    picked = [r["step"] for r in downsample(rows, 5)]
    assert picked == [1, 26, 51, 75, 100]
    assert [r["step"] for r in downsample(rows, 1)] == [100]
    assert downsample(rows[:3], 10) == rows[:3]


def test_server_process_never_imports_tensorflow(tmp_path: Any) -> None:
    code = f"""
import sys
from fastapi.testclient import TestClient
from app.main import create_app
from app.settings import Settings
with TestClient(create_app(Settings(data_dir={str(tmp_path)!r}))) as c:
    assert c.post("/api/jobs", json={{"train": {{"batch_size": 0}}}}).status_code == 422
    assert c.get("/api/config/schema").status_code == 200
bad = [m for m in ("tensorflow", "keras") if m in sys.modules]
assert not bad, bad
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
