"""Submitting a job that starts from weights (``model.init``): what the server refuses before queueing."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ssd.checkpoint import CHECKPOINT_FILES, write_config
from ssd.config import from_dict


def fake_checkpoint(directory: Path, backbone: str = "notebook") -> None:
    """A run directory that has a checkpoint's files (what the check looks at) and a real config."""
    directory.mkdir(parents=True)
    write_config(directory, from_dict({"model": {"backbone": backbone}}))
    for name in CHECKPOINT_FILES[1:]:
        (directory / name).write_bytes(b"")


def refusal(client: TestClient, init: str, **model: str) -> dict:
    response = client.post("/api/jobs", json={"model": {"init": init, **model}})
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", "model", "init"]
    return detail


def test_an_init_a_job_cannot_start_from_is_422_and_queues_nothing(client: TestClient, tmp_path: Path) -> None:
    jobs = tmp_path / "data" / "jobs"
    assert refusal(client, "job:nope")["msg"] == "job nope has no run directory to start from"
    (jobs / "queued").mkdir(parents=True)
    assert refusal(client, "job:queued")["msg"] == "job queued has no checkpoint yet to start from"
    fake_checkpoint(jobs / "mobile", backbone="mobilenet_v2")
    assert "trained a mobilenet_v2 backbone, this run has notebook" in refusal(client, "job:mobile")["msg"]
    outside = tmp_path / "elsewhere"
    fake_checkpoint(outside)
    assert "is outside" in refusal(client, str(outside))["msg"]  # the server reads no file outside its root
    weights = tmp_path / "data" / "weights.h5"
    weights.write_bytes(b"")
    assert "notebook backbone starts from a run" in refusal(client, str(weights))["msg"]
    assert client.get("/api/jobs").json() == []


def test_a_sweep_checks_its_base_init(client: TestClient) -> None:
    body = {"name": "s", "base": {"model": {"init": "job:nope"}}, "grid": {"train.learning_rate": [0.001, 0.002]}}
    response = client.post("/api/sweeps", json=body)
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", "base", "model", "init"]
