"""Fixtures of the API tests: in-process apps (TestClient) and real server processes."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from live_server import ServerProcess
from pg_server import PostgresServer, PostgresUnavailable

from app.main import create_app
from app.settings import Settings
from app.store import JobStore


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """An in-process app on a temporary data dir (lifespan run)."""
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as test_client:
        yield test_client


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


@pytest.fixture
def store(database_url: str) -> Iterator[JobStore]:
    """A job store on each backend (``database_url``), closed at the end."""
    job_store = JobStore(database_url)
    yield job_store
    job_store.close()


@pytest.fixture
def db_client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    """Like ``client``, on each store backend (``database_url``): for the tests that exercise the store."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[[Path | None], ServerProcess]]:
    """A factory of server processes, all stopped at the end of the test."""
    servers: list[ServerProcess] = []

    def make(data_dir: Path | None = None) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / "data")
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop(signal.SIGKILL if server.process and server.process.poll() is None else signal.SIGTERM)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the life-cycle tests of a session."""
    root = tmp_path_factory.mktemp("server")
    srv = ServerProcess(root / "data").start()
    yield srv
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client of the session server."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http
