"""What the server decides when a job is submitted: the recipe fitted to an imported dataset
(kept with the job, shown before it starts) and the ``model.init`` it refuses before queueing."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ssd.checkpoint import CHECKPOINT_FILES, write_config
from ssd.config import from_dict
from ssd.datasets.export import export_generator
from ssd.datasets.registry import Registry
from ssd.recipe import EMA_DECAY


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


def test_a_job_on_an_import_keeps_the_recipes_choices(client: TestClient, tmp_path: Path) -> None:
    export_generator(tmp_path / "export", "coco", images=12, val_fraction=0.25, seed=0)
    Registry(tmp_path / "data").import_dataset(tmp_path / "export", name="digits")
    body = {"data": {"dataset": "digits"}, "train": {"steps": 2, "eval_images": 2, "batch_size": 2}}
    job = client.post("/api/jobs", json=body).json()
    assert job["config"]["train"]["steps"] == 2  # the user's
    assert job["config"]["train"]["ema_decay"] == EMA_DECAY and job["config"]["data"]["image_size"] == 128
    lines = client.get(f"/api/jobs/{job['id']}").json()["run"]["recipe"].split("\n")
    assert [line.split(" = ")[0] for line in lines] == ["data.image_size", "priors", "train.ema_decay"]
    shown = lines[1].split("ratios: [")[1].split("]")[0].split(", ")
    assert job["config"]["priors"]["ratios"] == [float(r) for r in shown]
    client.post(f"/api/jobs/{job['id']}/cancel")
    # the generator gets no choices: no recipe on its job
    plain = client.post("/api/jobs", json={"train": {"steps": 1}}).json()
    assert (client.get(f"/api/jobs/{plain['id']}").json()["run"] or {}).get("recipe") is None
    client.post(f"/api/jobs/{plain['id']}/cancel")
