"""Browser tests: a real ``ssdboard serve`` in a subprocess, driven by headless Chromium.

Chromium is Debian's (``apt-get install chromium``); playwright only drives it, so
``playwright install`` is never needed. Without ``/usr/bin/chromium`` every test here skips.
Screenshots go to ``$SSDBOARD_SCREENSHOTS`` (default ``/tmp/shots``) for a person to look at.
Servers start and stop through :mod:`benchmarks.server` (:func:`start_browser_server`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from benchmarks.server import ServerError, free_port, serve_command, start_server, stop_server

CHROMIUM = Path(os.environ.get("SSDBOARD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SHOTS = Path(os.environ.get("SSDBOARD_SCREENSHOTS", "/tmp/shots"))
# A job that trains within seconds on two busy cores and checkpoints every 20 steps.
TINY_JOB: dict[str, Any] = {
    "preset": "notebook",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[12, 18]], "ratios": [0.7]},
    "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2, "val_images": 24},
    "train": {"batch_size": 2, "eval_images": 4, "checkpoint_every": 20},
}


def server_command(port: int, data_dir: Path) -> list[str]:
    """The server under test. ``SSDBOARD_BROWSER_SERVER`` (a command with ``{port}`` and
    ``{data_dir}``) points the tests at another server, e.g. a fake API while developing pages."""
    override = os.environ.get("SSDBOARD_BROWSER_SERVER")
    if override:
        return shlex.split(override.format(port=port, data_dir=data_dir))
    return serve_command(port, data_dir)


def start_browser_server(data_dir: Path, log: Path, env: Mapping[str, str]) -> tuple[str, subprocess.Popen[bytes]]:
    """Start :func:`server_command` on a free port with ``env``; its base URL and process.
    A server that is not healthy within 60 s fails the test, quoting the end of ``log``."""
    port = free_port()
    try:
        process = start_server(data_dir, port, log, env=env, timeout=60, command=server_command(port, data_dir))
    except ServerError as exc:
        pytest.fail(str(exc))
    return f"http://127.0.0.1:{port}", process


@pytest.fixture(scope="session")
def tiny_job() -> Any:
    """``tiny_job(name, steps)``: the config of :data:`TINY_JOB` with that name and length."""

    def make(name: str, steps: int) -> dict[str, Any]:
        return {**TINY_JOB, "name": name, "train": {**TINY_JOB["train"], "steps": steps}}

    return make


@pytest.fixture(scope="session")
def browser_server() -> Any:
    """:func:`start_browser_server`, for tests that need a server of their own (e.g. with a token)."""
    return start_browser_server


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (CI's .ci/run does)")
    return CHROMIUM


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a fresh server with its own data dir, stopped after the session."""
    data_dir = tmp_path_factory.mktemp("ssdboard-data")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    url, process = start_browser_server(data_dir, data_dir.parent / "server.log", env)
    yield url
    stop_server(process)  # SIGTERM: the server checkpoints and stops its workers; killed after 30 s


@pytest.fixture(scope="session")
def browser(chromium_path: Path) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        # Every browser of the suite launches here, with the flags this machine needs.
        chromium = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh page whose relative URLs resolve against the server; fails the test on a JS error."""
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def shot() -> Any:
    """``shot(page_or_locator, "name")`` saves SHOTS/name.png (a page is taken whole)."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def take(target: Any, name: str) -> Path:
        path = SHOTS / f"{name}.png"
        if hasattr(target, "goto"):  # a Page, not a Locator
            target.screenshot(path=str(path), full_page=True)
        else:
            target.screenshot(path=str(path))
        return path

    return take
