"""Shared test set-up: quiet TensorFlow's C++ logging before anything imports it, let the
in-process apps answer Starlette's TestClient, which sends ``Host: testserver``, and the store's
backends: ``database_url`` is a SQLite file or a fresh database on a PostgreSQL server that the
session starts (pg_server.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PostgresServer, PostgresUnavailable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The servers bind to loopback and accept only the loopback names plus SSDBOARD_ALLOWED_HOSTS.
os.environ.setdefault("SSDBOARD_ALLOWED_HOSTS", "testserver")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server started once per session (pg_server.py); skips where none can run, fails under CI.

    ``SSDBOARD_TEST_POSTGRES=skip`` skips it on purpose; ``SSDBOARD_TEST_POSTGRES_URL`` uses a running server.
    """
    if os.environ.get("SSDBOARD_TEST_POSTGRES") == "skip":
        pytest.skip("SSDBOARD_TEST_POSTGRES=skip: the store tests run on SQLite only")
    server = PostgresServer(os.environ.get("SSDBOARD_TEST_POSTGRES_URL") or None)
    try:
        server.start()
    except PostgresUnavailable as unavailable:
        server.stop()
        if os.environ.get("CI"):  # .ci/run installs PostgreSQL: a skip there would hide a broken set-up
            pytest.fail(f"CI: {unavailable}")
        pytest.skip(str(unavailable))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store database: a SQLite file, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        (tmp_path / "db").mkdir(exist_ok=True)
        yield f"sqlite:///{tmp_path / 'db' / 'ssdboard.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)
