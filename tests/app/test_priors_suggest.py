"""POST /api/priors/suggest: priors fitted to the draft's dataset, coverage before and after, 422s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from ssd.config import from_dict
from ssd.datasets.export import export_generator
from ssd.datasets.registry import Registry

NOTEBOOK = {"preset": "notebook"}
BIG = {"data": {"image_size": 512}, "priors": {"scales": [10, 25, 40], "ratios": [1.0]}, "train": {"batch_size": 2}}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """An app whose data dir holds ``digits``: 40 generated images as COCO (36 train, 4 val)."""
    data = tmp_path / "data"
    out = export_generator(tmp_path / "coco", "coco", images=40, val_fraction=0.1, seed=0)
    Registry(data).import_dataset(out, name="digits")
    with TestClient(create_app(Settings(data_dir=data, max_concurrent_jobs=0))) as test_client:
        yield test_client


def suggest(client: TestClient, **body: Any) -> Any:
    return client.post("/api/priors/suggest", json=body)


def test_suggestion_for_mnist_raises_coverage_and_matches_the_coverage_report(client: TestClient) -> None:
    r = suggest(client, config=NOTEBOOK, per_cell=6, n=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dataset"] == "mnist" and body["split"] == "train" and body["per_cell"] == 6
    assert body["before"]["priors_per_cell"] == [3, 3, 3] and max(body["after"]["priors_per_cell"]) <= 6
    assert body["before"]["share_matched"] < 0.93 < 0.99 < body["after"]["share_matched"]
    assert body["priors"]["strides"] == [4, 8, 16] and body["priors"] == body["after"]["priors"]
    assert [b["label"] for b in body["after"]["buckets"]] == [b["label"] for b in body["before"]["buckets"]]
    assert sum(b["count"] for b in body["after"]["buckets"]) == body["num_gt"]
    assert body["elapsed_ms"] > 0 and body["search"]["evaluations"] > 0
    # Applied to the draft, the explorer's own coverage report gives the same figure.
    draft = {**NOTEBOOK, "priors": body["priors"]}
    from_dict(draft)
    report = client.post("/api/priors/coverage", json={"config": draft, "split": "train", "n": 300}).json()
    assert report["matched"] == body["after"]["matched"] and report["num_gt"] == body["num_gt"]


def test_default_budget_is_the_drafts_and_an_imported_dataset_is_used(client: TestClient) -> None:
    body = suggest(client, config={"data": {"dataset": "digits"}}, n=2000).json()
    assert body["dataset_name"] == "digits" and body["num_images"] == 36  # the whole train split
    assert body["per_cell"] == 6  # the default preset: 2 scales x 3 ratios
    assert max(body["after"]["priors_per_cell"]) <= 6
    assert body["after"]["matched"] >= body["before"]["matched"]
    val = suggest(client, config={"data": {"dataset": "digits"}}, split="val").json()
    assert val["num_images"] == 4


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"per_cell": 0}, ["body", "per_cell"]),
        ({"per_cell": 33}, ["body", "per_cell"]),
        ({"n": 0}, ["body", "n"]),
        ({"split": "test"}, ["body", "split"]),
        ({"config": {"priors": {"scales": [10, 20]}}}, ["body", "config", "priors", "scales"]),
        # 512 px with strides 4, 8, 16: 21,504 cells, fine with 1 prior a cell; 32 is past the explorer's limit.
        ({"config": BIG, "per_cell": 32}, ["body", "per_cell"]),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client: TestClient, body: dict[str, Any], loc: list[str]) -> None:
    r = suggest(client, **body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc


def test_unknown_job_or_dataset(client: TestClient) -> None:
    assert suggest(client, job="nosuchjob").status_code == 404
    r = suggest(client, config={"data": {"dataset": "nosuch"}})
    assert r.status_code in (404, 422) and "nosuch" in r.text
