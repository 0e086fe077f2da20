"""benchmarks.server, the one start/stop helper of the benchmarks and the live-server tests,
on stand-in commands (a few lines of Python) rather than the real server."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.server import ServerError, free_port, serve_command, start_server, stop_server

HEALTHZ = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
)


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_serve_command_names_port_and_data_dir(tmp_path: Path) -> None:
    cmd = serve_command(8123, tmp_path)
    assert cmd[-5:] == ["serve", "--port", "8123", "--data-dir", str(tmp_path)]


def test_start_waits_for_healthz_and_stop_terminates(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    process = start_server(tmp_path, port, log, command=[sys.executable, "-c", HEALTHZ, str(port)], timeout=30)
    assert process.poll() is None and "serving" in log.read_text()
    assert stop_server(process) == -signal.SIGTERM
    assert stop_server(process) == -signal.SIGTERM  # already stopped: its status again


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    command = [sys.executable, "-c", "print('bad config'); raise SystemExit(3)"]
    with pytest.raises(ServerError, match=r"exited with 3(.|\n)*bad config"):
        start_server(tmp_path, free_port(), log, command=command, timeout=30)


def test_a_server_that_never_answers_is_killed(tmp_path: Path) -> None:
    command = [sys.executable, "-c", IGNORES_SIGTERM]
    with pytest.raises(ServerError, match="did not answer"):
        start_server(tmp_path, free_port(), tmp_path / "server.log", command=command, timeout=1)


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"up\n"
    assert stop_server(process, timeout=0.5) == -signal.SIGKILL
    process = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"up\n"
    with pytest.raises(subprocess.TimeoutExpired):
        stop_server(process, timeout=0.5, strict=True)
    assert process.returncode == -signal.SIGKILL
