"""The API against a real server: schemathesis fuzzing of the live ``/openapi.json`` (no 5xx,
every response conforms to its schema) and path traversal on every route with a path parameter.

The server has a token (the request carry it, as a deployed client's would) and
``SSDBOARD_MAX_CONCURRENT_JOBS=0``, so the jobs the fuzzer submits queue and never train.
Examples are bounded and derandomized: the same cases every run, about a minute on two cores.
"""

from __future__ import annotations

import http.client
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from live_server import ServerProcess, route_table, tiny
from schemathesis.checks import not_a_server_error, response_schema_conformance

from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.slow

TOKEN = "fuzz-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "TOP-SECRET-7f3a9c"  # in a file next to the data dir: no route may ever serve it


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a token whose jobs stay queued, and a secret file outside its data dir."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "secret.txt").write_text(SECRET)
    env = {"SSDBOARD_TOKEN": TOKEN, "SSDBOARD_MAX_CONCURRENT_JOBS": "0"}
    server = ServerProcess(root / "data", env=env).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def _schema_dict() -> dict[str, Any]:
    settings = Settings(data_dir=Path("unused"), token=TOKEN, max_concurrent_jobs=0)  # type: ignore[arg-type]
    return create_app(settings).openapi()


# The schema is built at collection time from the same app factory the server runs, and
# test_the_live_schema_is_the_fuzzed_one proves it equals the server's /openapi.json. (Loading it
# lazily from the server through schemathesis.pytest.from_fixture fails on pytest 9.2, whose
# nodes no longer have the ``_nodeid`` attribute schemathesis 4.32 reads.)
schema = schemathesis.openapi.from_dict(_schema_dict())


def test_the_live_schema_is_the_fuzzed_one(fuzz_server: ServerProcess) -> None:
    assert httpx.get(f"{fuzz_server.url}/openapi.json").json() == _schema_dict()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_api_conforms_under_fuzzing(case: schemathesis.Case, fuzz_server: ServerProcess) -> None:
    case.call_and_validate(
        base_url=fuzz_server.url,
        headers=AUTH,
        checks=[not_a_server_error, response_schema_conformance],
        timeout=30,
    )


# Raw URL pieces (sent as written, no client-side normalization): relative, encoded, double
# encoded, backslashes, absolute paths and a NUL byte.
def _payloads(secret: Path) -> list[str]:
    absolute = str(secret)
    return [
        "..",
        "../secret.txt",
        "../../secret.txt",
        "../../../../../../../../etc/passwd",
        "..%2Fsecret.txt",
        "..%2F..%2Fsecret.txt",
        "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f%2e%2e%2fsecret.txt",
        "%2e%2e/%2e%2e/pyproject.toml",
        "%252e%252e%252fsecret.txt",
        "..%5C..%5Csecret.txt",
        "....//....//secret.txt",
        absolute,
        absolute.replace("/", "%2F"),
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "secret.txt%00.png",
        "0%00",
    ]


VALID = {"split": "val", "index": "0"}
FORBIDDEN = (SECRET, "root:x:0:0", "[build-system]")


def _raw(server: ServerProcess, method: str, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        headers = {**AUTH, "Content-Length": "0"} if method != "GET" else {}
        for key, value in headers.items():
            connection.putheader(key, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode("latin-1")
    finally:
        connection.close()


def test_no_route_serves_a_path_from_the_client(fuzz_server: ServerProcess, tmp_path: Path) -> None:
    """``../`` and absolute paths in every path parameter of every route: 404/422, never a file, never 5xx."""
    job_id = httpx.post(f"{fuzz_server.url}/api/jobs", json=tiny(steps=5), headers=AUTH).json()["id"]
    app = create_app(Settings(data_dir=tmp_path / "unused"))
    documented = set(httpx.get(f"{fuzz_server.url}/openapi.json").json()["paths"])
    table = route_table(app)
    assert documented <= {path for path, _ in table}  # the OpenAPI paths are all among the routes
    payloads = _payloads(fuzz_server.data_dir.parent / "secret.txt")
    checked = 0
    for template, methods in table:
        params = re.findall(r"\{(\w+)(?::\w+)?\}", template)
        for param in params:
            for payload in payloads:
                values = {name: VALID.get(name, job_id) for name in params}
                values[param] = payload
                path = template
                for name, value in values.items():
                    path = re.sub(rf"\{{{name}(?::\w+)?\}}", lambda _, v=value: v, path)
                for method in sorted(methods):
                    status, body = _raw(fuzz_server, method, path)
                    checked += 1
                    where = f"{method} {path} -> {status}"
                    assert status < 500, where + "\n" + body[:500]
                    assert not any(marker in body for marker in FORBIDDEN), where
                    if template in documented or template.startswith("/static"):
                        assert status in (404, 405, 422), where + "\n" + body[:300]
                    else:  # an HTML page: the id lands escaped in the page, no file is read
                        assert status in (200, 404, 422), where
    assert checked > 200
    assert httpx.get(f"{fuzz_server.url}/healthz").status_code == 200
