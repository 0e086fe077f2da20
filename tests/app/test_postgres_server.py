"""A real ``ssdboard serve`` on a PostgreSQL store (``SSDBOARD_DATABASE_URL``): a job trains, streams
and is kept across a restart of the server, and the store outlives a restart of PostgreSQL. The
store's tests on both backends are in test_store*.py, test_migrations.py and the API tests
(``database_url`` in tests/conftest.py)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import TERMINAL, ServerProcess, sse, tiny, wait_for
from pg_server import PostgresServer

from app.store.jobs import JobStore

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


def test_a_server_on_postgresql_trains_streams_and_keeps_its_jobs_across_a_restart(tmp_path: Path, pg_url: str) -> None:
    env = {"SSDBOARD_DATABASE_URL": pg_url}
    first = ServerProcess(tmp_path / "data", env=env).start(timeout=60)
    try:
        with httpx.Client(base_url=first.url, timeout=30) as http:
            job = http.post("/api/jobs", json=tiny(steps=5)).json()
            events = list(sse(http, f"/api/jobs/{job['id']}/events"))
            done = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=120)
        assert done["status"] == "succeeded" and done["step"] == 5, done
        assert [e["data"]["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4, 5]
        assert done["created_at"].endswith("Z") or done["created_at"].endswith("+00:00")
    finally:
        assert first.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert not (tmp_path / "data" / "ssdboard.db").exists()  # the store is the PostgreSQL database

    second = ServerProcess(tmp_path / "data", env=env).start(timeout=60)
    try:
        with httpx.Client(base_url=second.url, timeout=30) as http:
            assert http.get(f"/api/jobs/{job['id']}").json() == done
            history = http.get(f"/api/jobs/{job['id']}/metrics").json()
            assert [m["step"] for m in history["metrics"]] == [1, 2, 3, 4, 5] and len(history["evals"]) == 1
            assert list(sse(http, f"/api/jobs/{job['id']}/events")) == events
    finally:
        second.stop()


def test_the_store_outlives_a_postgresql_restart(postgres: PostgresServer, pg_url: str) -> None:
    """Every pooled connection is cut by the restart; each is pinged before use and replaced."""
    if postgres.root is None:
        pytest.skip("SSDBOARD_TEST_POSTGRES_URL: a server this session did not start is not restarted")
    store = JobStore(pg_url)
    try:
        job, _ = store.create_job(name="before", config={}, total_steps=1)
        postgres.restart()
        assert store.get_job(job.id).name == "before"  # type: ignore[union-attr]
        assert store.update_job_meta(job.id, name="after").name == "after"  # type: ignore[union-attr]
        assert [j.name for j in store.list_jobs()] == ["after"]
    finally:
        store.close()
