"""GET /api/jobs/{id}/metrics.csv: the store's steps and evaluations as CSV downloads, value for value."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi.testclient import TestClient

from app.services.metrics_csv import EVAL_COLUMNS, STEP_COLUMNS, csv_lines
from ssd.config import from_dict

TINY = {"train": {"steps": 3}}  # stored only: no worker runs it


def _rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def _as_stored(value: str) -> Any:
    return None if value == "" else float(value)


def test_steps_and_evals_equal_the_store(db_client: TestClient) -> None:
    store = db_client.app.state.store  # type: ignore[attr-defined]
    job, _ = store.create_job(name="a", config=from_dict(TINY).to_dict(), total_steps=3)
    steps = [
        {
            "step": s,
            "pos_clf": 0.1 + 0.2 * s,  # floats that a fixed number of digits would round
            "neg_clf": 1 / 3,
            "loc": 2.5e-7,
            "total": 0.1 + 0.2 * s + 1 / 3 + 2.5e-7,
            "num_pos": 12.0,
            "num_neg": 36.0,
            "lr": 1e-3 * s / 3,
            "images_per_sec": 97.123456789,
            "time": 1767225600.123456 + s,
        }
        for s in (1, 2, 3)
    ]
    steps[1].pop("images_per_sec")  # a value the store lacks is an empty cell
    evaluation = {"step": 3, "images": 8, "time": 1767225700.5, "map": 0.12345678901, "map50": 0.5}
    evaluation.update(val_pos_clf=1.5, val_neg_clf=0.25, val_loc=0.125, val_total=1.875)
    store.record(job.id, [("step", m) for m in steps] + [("eval", evaluation)])

    response = db_client.get(f"/api/jobs/{job.id}/metrics.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="ssdboard-{job.id}-metrics.csv"'
    header, rows = _rows(response.text)
    assert header == list(STEP_COLUMNS)
    stored = store.metrics(job.id)
    assert len(rows) == len(stored) == 3
    for row, want in zip(rows, stored, strict=True):
        assert int(row["step"]) == want["step"]
        for key in STEP_COLUMNS[1:]:
            assert _as_stored(row[key]) == want[key], (want["step"], key)  # exact: repr round-trips
    assert rows[1]["images_per_sec"] == ""

    response = db_client.get(f"/api/jobs/{job.id}/metrics.csv", params={"kind": "evals"})
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="ssdboard-{job.id}-evals.csv"'
    header, rows = _rows(response.text)
    assert header == list(EVAL_COLUMNS)
    assert [{k: _as_stored(v) for k, v in row.items()} for row in rows] == [
        {k: float(evaluation[k]) for k in EVAL_COLUMNS}
    ]


def test_unknown_job_is_404_and_bad_kind_422(client: TestClient) -> None:
    assert client.get("/api/jobs/nope/metrics.csv").status_code == 404
    assert client.get("/api/jobs/nope/metrics.csv", params={"kind": "evals"}).status_code == 404
    store = client.app.state.store  # type: ignore[attr-defined]
    job, _ = store.create_job(name="a", config=from_dict(TINY).to_dict(), total_steps=3)
    response = client.get(f"/api/jobs/{job.id}/metrics.csv", params={"kind": "bogus"})
    assert response.status_code == 422
    empty = client.get(f"/api/jobs/{job.id}/metrics.csv")  # a queued job: the header alone
    assert empty.status_code == 200 and empty.text == ",".join(STEP_COLUMNS) + "\r\n"


def test_csv_lines_quote_by_rfc_4180() -> None:
    lines = list(csv_lines([{"a": 'say "hi", bye', "b": 0.1 + 0.2}, {"a": None}], ["a", "b"]))
    assert lines == ["a,b\r\n", '"say ""hi"", bye",0.30000000000000004\r\n', ",\r\n"]


def test_job_page_links_both_downloads(client: TestClient) -> None:
    html = client.get("/jobs/3f9c1a2b4d5e").text
    assert 'href="/api/jobs/3f9c1a2b4d5e/metrics.csv" download' in html
    assert 'href="/api/jobs/3f9c1a2b4d5e/metrics.csv?kind=evals" download' in html
