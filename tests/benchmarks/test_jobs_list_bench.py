"""benchmarks.jobs_list: a small run against a real server writes its figures (the full run is ``make bench``)."""

from __future__ import annotations

import json
from pathlib import Path

from app.store.jobs import JobStore
from benchmarks.jobs_list import REQUESTS, fill_store, main


def test_filled_jobs_have_what_the_runs_table_sorts_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ssdboard.db'}"
    ids = fill_store(url, jobs=6, steps=10, evals=2)
    store = JobStore(url)
    try:
        assert store.count_jobs() == 6 and len(ids) == 6
        best = store.list_jobs(sort="-best_map50")
        assert all(job.best.map50 is not None and job.best.map50_step in (5, 10) for job in best)
        assert [j.best.map50 for j in best] == sorted((j.best.map50 for j in best), reverse=True)
        assert all(job.duration_s > 0 and job.last_metrics["total"] > 0 for job in best)
        assert store.count_jobs(dataset="trees") == 2
    finally:
        store.close()


def test_small_run_writes_the_figures(tmp_path: Path, database_url: str) -> None:
    """On SQLite and on PostgreSQL (``--database-url``: the server it starts serves that database)."""
    out = tmp_path / "jobs_list.json"
    argv = ["--jobs", "12", "--steps", "5", "--evals", "1", "--repeats", "3", "--out", str(out)]
    assert main([*argv, "--database-url", database_url]) == 0
    result = json.loads(out.read_text())
    assert result["jobs"] == 12 and result["cpu"] and result["database"] == database_url.split(":")[0].split("+")[0]
    for label in REQUESTS:
        assert result[label]["p95_ms"] > 0
    assert result["API default (100, newest first)"]["total"] == 12
