"""Slow and excess connections against real servers: the header timeout, the connection limit
(503 beyond it) and a server short of file descriptors (never a 500)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.http.server import MIN_CONNECTIONS, RESERVED_FDS, connection_limits
from benchmarks.server import free_port, serve_command, start_server, stop_server

NOFILE = 256


def _server(tmp_path: Path, *, nofile: int | None = None, **settings: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``ssdboard serve`` with ``SSDBOARD_*`` settings (no job runs), optionally under ``ulimit -n nofile``."""
    port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SSDBOARD_MAX_CONCURRENT_JOBS": "0"}
    env.update({f"SSDBOARD_{key.upper()}": value for key, value in settings.items()})
    command = serve_command(port, tmp_path / "data")
    if nofile is not None:  # soft and hard: the server cannot raise it
        limit = f"import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}));"
        command = [sys.executable, "-c", f"{limit} os.execv(sys.argv[1], sys.argv[1:])", *command]
    log = tmp_path / f"server-{port}.log"
    process = start_server(tmp_path / "data", port, log, env=env, command=command)
    return process, f"http://127.0.0.1:{port}", log


@pytest.fixture
def stop() -> Iterator[list[subprocess.Popen[bytes]]]:
    servers: list[subprocess.Popen[bytes]] = []
    yield servers
    for process in servers:
        stop_server(process, timeout=10)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _closed_within(sock: socket.socket, seconds: float, drip: bytes = b"") -> float | None:
    """Seconds until the server closes ``sock`` (sending ``drip`` every 0.2 s), or None if it does not."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            if drip:
                try:
                    sock.sendall(drip)
                except OSError:
                    return time.monotonic() - started
        except OSError:
            return time.monotonic() - started
    return None


def _request(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def _status(sock: socket.socket) -> str:
    """The status code of the response on ``sock``, ``closed`` or the error's name."""
    try:
        head = sock.recv(64)
    except OSError as exc:
        return type(exc).__name__
    return head.split(b" ")[1].decode() if head.startswith(b"HTTP/1.1 ") else "closed"


def test_clients_slow_with_their_headers_are_closed(tmp_path: Path, stop: list[subprocess.Popen[bytes]]) -> None:
    """SSDBOARD_HEADER_TIMEOUT=1: a connection that says nothing, one that drips its headers and a
    keep-alive one that drips its next request are closed after about a second; a live stream,
    whose headers came at once, stays open (uvicorn alone closed none of them)."""
    process, url, _ = _server(tmp_path, header_timeout="1")
    stop.append(process)
    port = _port(url)
    job = httpx.post(f"{url}/api/jobs", json={"train": {"steps": 5}}).raise_for_status().json()

    silent = socket.create_connection(("127.0.0.1", port))
    dripping = socket.create_connection(("127.0.0.1", port))
    dripping.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    reused = _request(port, "/healthz")
    assert _status(reused) == "200"
    reused.sendall(b"GET /healthz HTTP/1.1\r\n")
    stream = _request(port, f"/api/jobs/{job['id']}/events?from=live")
    assert _status(stream) == "200"

    took = _closed_within(silent, 5)
    assert took is not None and took < 2.5, took
    took = _closed_within(dripping, 5, drip=b"X-Slow: 1\r\n")
    assert took is not None and took < 2.5, took
    took = _closed_within(reused, 5, drip=b"X-Slow: 1\r\n")
    assert took is not None and took < 2.5, took
    assert _closed_within(stream, 1.5) is None  # a stream's headers were complete: no deadline
    for sock in (silent, dripping, reused, stream):
        sock.close()
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_requests_beyond_max_connections_get_503(tmp_path: Path, stop: list[subprocess.Popen[bytes]]) -> None:
    """SSDBOARD_MAX_CONNECTIONS=20 and 30 live streams: the streams beyond the limit and any other
    request get 503 while they are open, and /healthz answers 200 again once they are closed."""
    process, url, log = _server(tmp_path, max_connections="20")
    stop.append(process)
    port = _port(url)
    job = httpx.post(f"{url}/api/jobs", json={"train": {"steps": 5}}).raise_for_status().json()
    socks = [_request(port, f"/api/jobs/{job['id']}/events") for _ in range(30)]
    codes = [_status(sock) for sock in socks]
    assert set(codes) == {"200", "503"}, codes
    assert 15 <= codes.count("200") <= 20, codes
    assert httpx.get(f"{url}/healthz").status_code == 503
    assert httpx.get(f"{url}/api/jobs").status_code == 503
    for sock in socks:
        sock.close()
    deadline = time.monotonic() + 5
    while (code := httpx.get(f"{url}/healthz").status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code == 200
    assert "serving 20 connections (SSDBOARD_MAX_CONNECTIONS=20)" in log.read_text()


@pytest.mark.slow
def test_a_server_short_of_file_descriptors_never_answers_500(
    tmp_path: Path, stop: list[subprocess.Popen[bytes]]
) -> None:
    """Under ``ulimit -n 256``, 300 connections whose requests (streams and reads of the database)
    all come at once: every answer is 200 or 503, never 500 "unable to open database file" (as
    it was once the descriptors ran out); then as many streams as the server serves all work at once."""
    process, url, log = _server(tmp_path, nofile=NOFILE)
    stop.append(process)
    port = _port(url)
    job = httpx.post(f"{url}/api/jobs", json={"train": {"steps": 5}}).raise_for_status().json()
    paths = [f"/api/jobs/{job['id']}/events", "/api/jobs", f"/api/jobs/{job['id']}/metrics"]

    socks = []
    for _ in range(300):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        except OSError:
            break
    for i, sock in enumerate(socks):
        try:
            sock.sendall(f"GET {paths[i % 3]} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        except OSError:
            pass
    codes = [_status(sock) for sock in socks]
    assert "500" not in codes, codes
    assert set(codes) <= {"200", "503", "closed", "ConnectionResetError"}, codes
    for sock in socks:
        sock.close()

    served = int(re.search(r"serving (\d+) connections", log.read_text()).group(1))  # type: ignore[union-attr]
    assert served < NOFILE - RESERVED_FDS // 2
    time.sleep(0.5)  # the server notices the closed connections
    streams = [_request(port, paths[0]) for _ in range(served - 2)]
    assert [_status(sock) for sock in streams] == ["200"] * len(streams)
    extra = [_request(port, "/api/jobs") for _ in range(100)]  # beyond the limit, then beyond the cap
    codes = [_status(sock) for sock in extra]
    assert set(codes) <= {"200", "503", "closed", "ConnectionResetError"} and codes.count("200") <= 2, codes
    for sock in streams + extra:
        sock.close()
    deadline = time.monotonic() + 5
    while (code := httpx.get(f"{url}/healthz").status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code == 200
    assert "500 Internal Server Error" not in log.read_text()


def test_connection_limits_leave_descriptors_for_the_rest() -> None:
    assert connection_limits(20, 20_000).limit == 20
    roomy = connection_limits(2048, 20_000)
    assert (roomy.limit, roomy.clamped) == (2048, False)
    tight = connection_limits(2048, 1024, concurrent_jobs=2)
    assert tight.clamped and tight.cap <= 1024 - RESERVED_FDS and tight.limit < tight.cap
    assert connection_limits(2048, 10).cap == MIN_CONNECTIONS


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    code = (
        "import resource\n"
        "from app.http.server import raise_open_files_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "assert raise_open_files_limit() == (hard, hard), (resource.getrlimit(resource.RLIMIT_NOFILE), hard)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
