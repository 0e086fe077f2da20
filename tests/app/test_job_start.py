"""What the server decides when a job is submitted: the recipe fitted to an imported dataset
(kept with the job, shown before it starts) and the ``model.init`` it refuses before queueing."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ssd.checkpoint import CHECKPOINT_FILES, write_config
from ssd.config import from_dict
from ssd.datasets.export import export_generator
from ssd.datasets.registry import Registry


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
    assert job["config"]["data"]["image_size"] == 128
    lines = client.get(f"/api/jobs/{job['id']}").json()["run"]["recipe"].split("\n")
    keys = [line.split(" = ")[0] for line in lines]
    assert keys == ["data.image_size", "priors", "augment.expand", "train.ema_decay"]
    shown = lines[1].split("ratios: [")[1].split("]")[0].split(", ")
    assert job["config"]["priors"]["ratios"] == [float(r) for r in shown]
    client.post(f"/api/jobs/{job['id']}/cancel")
    # the generator gets no choices: no recipe on its job
    plain = client.post("/api/jobs", json={"train": {"steps": 1}}).json()
    assert (client.get(f"/api/jobs/{plain['id']}").json()["run"] or {}).get("recipe") is None
    client.post(f"/api/jobs/{plain['id']}/cancel")


def test_plan_of_a_draft(client: TestClient, tmp_path: Path) -> None:
    export_generator(tmp_path / "export", "coco", images=12, val_fraction=0.25, seed=0)
    Registry(tmp_path / "data").import_dataset(tmp_path / "export", name="digits")
    plan = client.post("/api/config/plan", json={"data": {"dataset": "digits"}}).json()
    keys = [c["key"] for c in plan["choices"]]
    assert keys == ["data.image_size", "priors", "augment.expand", "train.steps", "train.ema_decay"]
    assert plan["config"]["train"]["steps"] == 600 and plan["config"]["model"]["num_classes"] == 10
    cover = plan["coverage"]
    assert cover["images"] == 9 and cover["boxes"] > 0 and cover["unmatched_share"] == 0.0  # the priors fitted to them
    no_run = {"seconds": None, "images": 600 * 16, "runs": 0, "images_per_sec": None, "budget_minutes": None}
    assert plan["time"] == no_run
    # 9 training images hold fewer than 10 boxes of each digit
    (rare,) = plan["warnings"]
    assert rare["field"] == "data.dataset" and "hardly learned" in rare["message"]
    assert client.get("/api/jobs").json() == []  # nothing queued
    # over the memory limit: a warning naming the field, not a refusal
    big = client.post("/api/config/plan", json={"train": {"batch_size": 4000}}).json()
    assert [w["field"] for w in big["warnings"]] == ["train.batch_size"]
    assert big["memory"]["estimate_gib"] > big["memory"]["limit_gib"]
    # not a config: 422 at the field
    bad = client.post("/api/config/plan", json={"train": {"steps": 0}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "train", "steps"]


def test_expected_time_is_the_median_speed_of_like_runs() -> None:
    from types import SimpleNamespace

    from app.services.plan import expected_time
    from ssd.config import from_dict

    config = from_dict({}).to_dict()
    like = {"model": dict(config["model"]), "data": dict(config["data"]), "train": dict(config["train"])}
    other = {**like, "data": {**like["data"], "image_size": 256}}
    runs = [
        SimpleNamespace(config=like, last_metrics={"images_per_sec": 80.0}),
        SimpleNamespace(config=other, last_metrics={"images_per_sec": 10.0}),  # another input size
        SimpleNamespace(config=like, last_metrics={"images_per_sec": 100.0}),
        SimpleNamespace(config=like, last_metrics={"images_per_sec": 60.0}),
        SimpleNamespace(config=like, last_metrics=None),
    ]
    jobs = SimpleNamespace(list=lambda status, limit: runs)
    # 1200 steps of 16 images at the median of 80, 100 and 60 images/s
    expected = {"seconds": 240.0, "images": 19200, "runs": 3, "images_per_sec": 80.0, "budget_minutes": None}
    assert expected_time(config, jobs) == expected  # type: ignore[arg-type]
