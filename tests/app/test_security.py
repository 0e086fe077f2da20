"""Access control and request limits (app/http/security.py) on an in-process app: the bearer token on
every state-changing /api/ route, open reads, OpenAPI's description of both, body size limits,
CORS off by default, and the refusal to bind openly without a token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from live_server import route_table, tiny

from app.cli import main as cli_main
from app.http.security import STATE_CHANGING, UnsafeBindError, check_bind, is_loopback, needs_token
from app.main import create_app
from app.settings import Settings

TOKEN = "s3cret-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _settings(tmp_path: Path, **kwargs: object) -> Settings:
    # max_concurrent_jobs=0: submitted jobs stay queued, nothing trains in these tests.
    return Settings(data_dir=tmp_path / "data", max_concurrent_jobs=0, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[TestClient]:
    """An app with a token."""
    with TestClient(create_app(_settings(tmp_path, token=TOKEN))) as client:
        yield client


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "0", path)


def test_every_state_changing_api_route_needs_the_token(guarded: TestClient, tmp_path: Path) -> None:
    routes = [
        (method, path)
        for path, methods in route_table(create_app(_settings(tmp_path / "routes")))
        for method in methods
        if method in STATE_CHANGING
    ]
    assert ("POST", "/api/jobs") in routes and ("DELETE", "/api/jobs/{job_id}") in routes
    assert any(path.endswith("/upload") for _, path in routes)  # the inspection routes are covered too
    for method, path in routes:
        assert path.startswith("/api/"), f"{method} {path}: state-changing routes live under /api/"
        response = guarded.request(method, _concrete(path))
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == 'Bearer realm="ssdboard"'
        wrong = guarded.request(method, _concrete(path), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
        basic = guarded.request(method, _concrete(path), headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401


def test_the_token_admits_and_reads_stay_open(guarded: TestClient) -> None:
    job = guarded.post("/api/jobs", json=tiny(steps=5), headers=AUTH)
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    assert guarded.post("/api/jobs", json={"train": {"steps": 0}}, headers=AUTH).status_code == 422
    for path in ("/healthz", "/api/jobs", f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/metrics", "/api/config/schema"):
        assert guarded.get(path).status_code == 200, path
    assert guarded.get("/").status_code == 200 and guarded.get("/static/js/lib/api.js").status_code == 200
    assert guarded.post(f"/api/jobs/{job_id}/cancel").status_code == 401
    assert guarded.post(f"/api/jobs/{job_id}/cancel", headers=AUTH).json()["status"] == "cancelled"
    assert guarded.delete(f"/api/jobs/{job_id}", headers={"authorization": f"bearer {TOKEN}"}).status_code == 204


def test_without_a_token_nothing_is_asked(client: TestClient) -> None:
    assert client.post("/api/jobs", json={"train": {"steps": 0}}).status_code == 422  # reached the route
    schema = client.get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})
    assert "401" not in schema["paths"]["/api/jobs"]["post"]["responses"]


def test_openapi_marks_the_guarded_operations(guarded: TestClient) -> None:
    schema = guarded.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "SSDBOARD_TOKEN; needed by every POST, PUT, PATCH and DELETE under /api/.",
    }
    guarded_ops = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if needs_token(method, path):
                guarded_ops += 1
                assert operation["security"] == [{"bearer": []}], (method, path)
                assert "401" in operation["responses"]
            else:
                assert "security" not in operation, (method, path)
            if "requestBody" in operation:
                assert "413" in operation["responses"]
    assert guarded_ops >= 5


def test_request_bodies_are_limited(guarded: TestClient) -> None:
    big = b'{"name": "' + b"x" * (1 << 20) + b'"}'
    response = guarded.post("/api/jobs", content=big, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413 and "larger than 1048576 bytes" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"name": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}'

    streamed = guarded.post("/api/jobs", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert streamed.status_code == 413

    job_id = guarded.post("/api/jobs", json=tiny(steps=5), headers=AUTH).json()["id"]
    upload = f"/api/jobs/{job_id}/detections/upload"
    too_big = {"file": ("a.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (6 << 20), "image/png")}
    assert guarded.post(upload, files=too_big, headers=AUTH).status_code == 413
    # Under the multipart limit the route itself judges the file (a queued job has no checkpoint).
    small = {"file": ("a.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 1000, "image/png")}
    assert guarded.post(upload, files=small, headers=AUTH).status_code in (404, 409, 422)
    assert guarded.get("/healthz").status_code == 200


def test_cors_is_off_unless_origins_are_set(guarded: TestClient, tmp_path: Path) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    response = guarded.options("/api/jobs", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in guarded.get("/api/jobs", headers={"Origin": "https://x"}).headers
    settings = _settings(tmp_path / "cors", cors_origins=["https://team.example"])
    with TestClient(create_app(settings)) as client:
        allowed = client.options("/api/jobs", headers={**preflight, "Origin": "https://team.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://team.example"
        denied = client.options("/api/jobs", headers=preflight)
        assert "access-control-allow-origin" not in denied.headers


def test_binding_openly_needs_a_token_or_insecure(capsys: pytest.CaptureFixture[str]) -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2", "[::1]"):
        assert is_loopback(host) and check_bind(host, token_set=False, insecure=False) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(UnsafeBindError, match="SSDBOARD_TOKEN"):
            check_bind(host, token_set=False, insecure=False)
        assert check_bind(host, token_set=True, insecure=False) is None
        warning = check_bind(host, token_set=False, insecure=True)
        assert warning and warning.startswith("INSECURE")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["serve", "--host", "0.0.0.0", "--port", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "option --host: refusing to listen on 0.0.0.0 without a token" in err and "--insecure" in err


def test_a_blank_token_is_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSDBOARD_TOKEN", "")
    assert Settings().token is None
    monkeypatch.setenv("SSDBOARD_TOKEN", "abc-0123456789-xyz")
    token = Settings().token
    assert token is not None and token.get_secret_value() == "abc-0123456789-xyz"
    assert "abc-0123456789-xyz" not in repr(Settings())
