"""A real ``ssdboard serve`` process for the benchmarks and the tests: start, wait, stop.

:func:`start_server` runs the server (or any command serving ``/healthz``) in a subprocess with
its output in a log file and returns once ``/healthz`` answers 200; :func:`stop_server` sends
SIGTERM (the server checkpoints its jobs and stops its workers) and kills it if it has not
exited in time. :func:`free_port` picks the port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

LOG_TAIL_CHARS = 4000  # how much of the server's log a start failure quotes


class ServerError(RuntimeError):
    """The server exited or did not answer ``/healthz`` in time; the message quotes its log."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(port: int, data_dir: Path) -> list[str]:
    """``ssdboard serve --port PORT --data-dir DIR``: the console script next to this interpreter,
    else ``python -m app.cli`` (an environment where the package is not installed as a script)."""
    script = Path(sys.executable).with_name("ssdboard")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]
    return [*cmd, "serve", "--port", str(port), "--data-dir", str(data_dir)]


def _log_tail(log: Path | None) -> str:
    if log is None:
        return ""
    try:
        return f"; log {log}:\n{log.read_text(errors='replace')[-LOG_TAIL_CHARS:]}"
    except OSError:
        return f"; no log at {log}"


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float, log: Path | None = None) -> None:
    """Poll ``url/healthz`` until it answers 200; :class:`ServerError` if ``process`` exits first
    or ``timeout`` seconds pass (the process is left running: :func:`stop_server` it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"server exited with {process.returncode}{_log_tail(log)}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ServerError(f"server did not answer {url}/healthz in {timeout:g} s{_log_tail(log)}")


def start_server(
    data_dir: Path,
    port: int,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    command: Sequence[str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``ssdboard serve`` on ``port`` with ``data_dir``; return once ``/healthz`` answers.

    Args:
        data_dir: the server's ``--data-dir``.
        port: its ``--port`` on 127.0.0.1 (see :func:`free_port`).
        log: the file that receives its stdout and stderr (truncated first).
        env: its whole environment; default this process's with ``TF_CPP_MIN_LOG_LEVEL=3``.
        timeout: seconds to wait for ``/healthz``.
        command: another command to run instead of :func:`serve_command` (it must serve
            ``/healthz`` on ``port``), e.g. the container image's ``CMD``.
        cwd: its working directory (default this process's); a folder without the source tree
            makes sure an installed package is what it imports.

    Raises:
        ServerError: it exited or did not answer in time; it is killed, and the message
            quotes the end of its log.
    """
    cmd = list(command) if command is not None else serve_command(port, data_dir)
    environment = dict(env) if env is not None else {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=cwd)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, timeout, log)
    except ServerError:
        stop_server(process, signal.SIGKILL)
        raise
    return process


def stop_server(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30, *, strict: bool = False
) -> int:
    """Send ``sig`` (SIGTERM: the server checkpoints and stops its workers) and wait for the exit.

    A process that has not exited after ``timeout`` seconds is killed; with ``strict`` the
    :class:`subprocess.TimeoutExpired` is raised after that (a test wants to know), else the
    kill's status is returned. Returns the exit status (``-N`` for signal N), or the earlier
    one of a process that had already exited.
    """
    if process.poll() is not None:
        return process.returncode
    process.send_signal(sig)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        if strict:
            raise
        return process.returncode
