"""Fixtures of the API tests: in-process apps (TestClient) and real server processes; ``store`` and
``db_client`` on each store backend (``database_url``, tests/conftest.py)."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from live_server import ServerProcess

from app.main import create_app
from app.settings import Settings
from app.store.jobs import JobStore


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """An in-process app on a temporary data dir (lifespan run)."""
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as test_client:
        yield test_client


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
