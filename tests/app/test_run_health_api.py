"""``GET /api/jobs/{id}/health``: a job's checks from its records in the store and its data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest
from fastapi.testclient import TestClient

from app.api.schemas import HealthCheckOut
from app.main import create_app
from app.settings import Settings
from ssd.analysis.health import CHECKS
from ssd.config import from_dict


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as test_client:
        yield test_client


def test_a_runs_checks_from_its_records(client: TestClient) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    job, _ = store.create_job(name="sick", config=from_dict({}).to_dict(), total_steps=300)
    store.set_status(job.id, "running")
    # Half the steps without a positive prior, and a loss that went NaN at step 4 (stored as null).
    records = [{"step": s, "total": 2.0, "num_pos": 0.0 if s % 2 else 12.0} for s in range(1, 4)]
    records.append({"step": 4, "total": float("nan"), "num_pos": 0.0})
    store.record(job.id, [("step", r) for r in records])
    response = client.get(f"/api/jobs/{job.id}/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job_id"] == job.id and body["step"] == 4 and body["status"] == "running"
    checks = {c["check"]: c for c in body["checks"]}
    assert list(checks) == list(CHECKS)
    assert checks["no_positive_priors"]["status"] == "fail" and "3 of 4" in checks["no_positive_priors"]["evidence"]
    assert checks["loss_diverged"]["status"] == "fail" and "at step 4" in checks["loss_diverged"]["evidence"]
    assert checks["overfitting"]["status"] == "skipped"
    assert checks["unmatched_boxes"]["status"] == "ok" and checks["train_val_overlap"]["status"] == "skipped"


def test_an_unknown_job_is_404(client: TestClient) -> None:
    assert client.get("/api/jobs/nope/health").status_code == 404


def test_the_schemas_checks_are_the_libraries() -> None:
    """HealthCheckOut names the checks ssd.analysis.health runs, in its order: a new check must be in both."""
    assert get_args(HealthCheckOut.model_fields["check"].annotation) == CHECKS
