"""``GET /api/jobs/{id}/analysis``: a real analysis in a child process (``ssdboard analyze``: the
server imports no TensorFlow for it), kept per checkpoint, its figures, and the error answers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_export_api import CONFIG, fake_converter, listing_converter, make_job

from app.main import create_app
from app.services.analysis import AnalysisService
from app.settings import Settings
from ssd.datasets.resolve import resolve


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ssd.train import train

    directory = tmp_path_factory.mktemp("analysis-api") / "run"
    train(CONFIG, directory)
    return directory


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as test_client:
        yield test_client


def service(client: TestClient) -> AnalysisService:
    return client.app.state.analysis  # type: ignore[attr-defined, no-any-return]


def test_an_analysis_is_computed_once_per_checkpoint_in_a_child(client: TestClient, checkpoint: Path) -> None:
    job_id, job_dir = make_job(client, checkpoint)
    (job_dir / "metrics.jsonl").write_text((checkpoint / "metrics.jsonl").read_text())  # what a worker writes
    response = client.get(f"/api/jobs/{job_id}/analysis", params={"n": 6})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job_id"] == job_id and body["split"] == "val" and body["images"] == 6
    assert body["dataset"] == "mnist" and set(body["figures"]) == {"tide", "sizes", "prior_recall"}
    # The ground truths are the validation images' own, in order.
    val = resolve(CONFIG).split(CONFIG, "val", augment=False)
    labels = [c for i in range(6) for c in val[i].labels.tolist()]
    assert [g["class"] for g in body["ground_truths"]] == labels
    assert sum(body["causes"].values()) == len(labels)
    # The health checks read the run's records too (copied beside the snapshot).
    health = {c["check"]: c for c in body["health"]}
    assert health["no_positive_priors"]["status"] != "skipped" and health["loss_diverged"]["status"] == "skipped"
    assert service(client).runs == 1

    again = client.get(f"/api/jobs/{job_id}/analysis", params={"n": 6})
    assert again.status_code == 200 and service(client).runs == 1  # the kept file
    assert again.json()["ground_truths"] == body["ground_truths"]
    kept = [p.name for p in (job_dir / "analysis").iterdir()]
    stat = (job_dir / "model.weights.h5").stat()
    assert kept == [f"val-6-last-{stat.st_mtime_ns}-{stat.st_size}.json"]

    weights = job_dir / "model.weights.h5"  # a newer checkpoint is analyzed again; the old file goes
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert client.get(f"/api/jobs/{job_id}/analysis", params={"n": 6}).status_code == 200
    assert service(client).runs == 2
    assert [p.name for p in (job_dir / "analysis").iterdir()] == [
        f"val-6-last-{stat.st_mtime_ns + 10**9}-{stat.st_size}.json"
    ]
    assert client.head(f"/api/jobs/{job_id}/analysis").status_code == 200


def test_analysis_errors_are_named(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/api/jobs/nope/analysis").status_code == 404
    job_id, job_dir = make_job(client, None, status="running")
    response = client.get(f"/api/jobs/{job_id}/analysis")
    assert response.status_code == 409 and "nothing to analyze" in response.json()["detail"]
    assert client.head(f"/api/jobs/{job_id}/analysis").status_code == 409
    too_many = client.get(f"/api/jobs/{job_id}/analysis", params={"n": 1001})  # SSDBOARD_MAX_EVAL_IMAGES
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["query", "n"]
    (job_dir / "config.json").write_text(json.dumps(CONFIG.to_dict()))
    (job_dir / "model.weights.h5").write_bytes(b"stub")
    service(client).python = fake_converter(tmp_path, "ssdboard: error: option --checkpoint: cannot be read")
    failed = client.get(f"/api/jobs/{job_id}/analysis", params={"n": 4})
    assert failed.status_code == 500 and failed.json()["detail"] == (
        "the analysis failed: option --checkpoint: cannot be read"
    )
    assert not list((job_dir / "analysis").glob("*.json"))  # nothing kept of a failure


def test_the_analysis_uses_the_best_weights_and_follows_that_file(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.services.analysis as analysis_module

    snapshots: list[list[str]] = []

    def read(target: Path) -> dict[str, object]:
        snapshots.append(target.read_text().split())
        return {"split": "val"}

    monkeypatch.setattr(AnalysisService, "_read", lambda self, target: read(target))
    monkeypatch.setattr(analysis_module, "analysis_figures", lambda document, threshold: {})
    job_id, job_dir = make_job(client, None)
    (job_dir / "config.json").write_text(json.dumps(CONFIG.to_dict()))
    (job_dir / "model.weights.h5").write_bytes(b"last")
    service(client).python = listing_converter(tmp_path)
    url, params = f"/api/jobs/{job_id}/analysis", {"n": 4}
    last = client.get(url, params=params)
    assert last.status_code == 200 and last.json()["checkpoint"]["weights"] == "last"
    assert "model.weights.h5" in snapshots[-1]
    (job_dir / "best.weights.h5").write_bytes(b"the best")
    (job_dir / "best.json").write_text(json.dumps({"step": 3, "map50": 0.5, "map": 0.3}))
    best = client.get(url, params=params).json()["checkpoint"]
    assert (best["weights"], best["step"]) == ("best", 3) and "best.weights.h5" in snapshots[-1]
    assert service(client).runs == 2
    (job_dir / "model.weights.h5").write_bytes(b"a newer last")  # not the file analyzed: the kept one
    assert client.get(url, params=params).status_code == 200 and service(client).runs == 2


def test_the_figures_carry_the_documents_numbers() -> None:
    from app.figures.analysis import prior_recall_figure, tide_figure

    tide = {
        "cls": 18.0,
        "loc": 1.5,
        "both": 0.0,
        "dupe": None,
        "bkg": 0.25,
        "missed": 2.0,
        "false_pos": 30.0,
        "false_neg": 9.0,
    }
    bars = tide_figure(tide)["data"][0]
    assert list(bars["x"]) == [18.0, 1.5, 0.0, 0.0, 0.25, 2.0, 30.0, 9.0]  # None (no such error) drawn as 0
    bins = [
        {"low": 0.0, "high": 0.1, "ground_truths": 3, "found": 0, "no_prior": 2, "recall": 0.0},
        {"low": 0.1, "high": 0.2, "ground_truths": 0, "found": 0, "no_prior": 0, "recall": None},
        {"low": 0.6, "high": 0.7, "ground_truths": 5, "found": 4, "no_prior": 0, "recall": 0.8},
    ]
    found, not_found, no_prior, recall = prior_recall_figure(bins, 0.5)["data"]
    assert list(found["x"]) == [0.05, 0.65]  # empty bins are left out
    assert (list(found["y"]), list(not_found["y"]), list(no_prior["y"])) == ([0, 4], [1, 1], [2, 0])
    assert list(recall["y"]) == [0.0, 0.8]


def test_the_size_figure_reads_ap_and_prior_coverage_together() -> None:
    from app.figures.analysis import bucket_coverage, size_figure

    stories = [
        {"size_bucket": "< 16 px", "positives": 0},
        {"size_bucket": "< 16 px", "positives": 2},
        {"size_bucket": "24-32 px", "positives": 1},
    ]
    covered = bucket_coverage(stories)
    assert covered == {"< 16 px": 0.5, "24-32 px": 1.0}
    sizes = [
        {"label": "small", "ap": 40.0, "ap50": 60.0, "num_gt": 3},
        {"label": "< 16 px", "ap": 10.0, "ap50": 20.0, "num_gt": 2},
        {"label": "24-32 px", "ap": None, "ap50": None, "num_gt": 1},
    ]
    ap50, ap, coverage = size_figure(sizes, covered)["data"]
    assert list(ap50["x"]) == ["small (3)", "< 16 px (2)", "24-32 px (1)"] and list(ap50["y"]) == [60.0, 20.0, None]
    assert list(coverage["x"]) == ["< 16 px (2)", "24-32 px (1)"] and list(coverage["y"]) == [50.0, 100.0]
