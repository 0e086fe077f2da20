"""The package as a user installs it: ``pip install .`` with no extras, in a new virtual environment.

The test extras pull in packages the runtime may use without declaring them (httpx was one: a
plain install could not start its server), so these tests never run code from this test
environment. They copy the working tree (what git would commit), ``pip install`` it into a new
venv (pip's cache allowed), and from a folder outside the source tree:

- import every module of ``app`` and ``ssd`` from the installed package;
- start ``ssdboard serve`` and train a 5-step job over REST to ``succeeded``;
- check that every import the code makes lazily (inside a function: the optional packages) is
  either installed by the plain install or provided by one of the extras that the README
  documents on its own (``export``, ``postgres``, ``ray``), each tried alone: a venv holding
  the plain install plus that extra's requirements only, and nothing else.

The ``gpu`` extra (TensorFlow's CUDA build, several GB) and ``dev`` (a tool's MNIST source) are
not installed here. Each venv costs a minute or two of pip on two cores: the plain one is built
once for the module.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from benchmarks.server import free_port, start_server, stop_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "ssd")
EXTRAS = ("export", "postgres", "ray")
# Alembic loads this one itself, on an open connection; importing it alone raises by design.
NOT_IMPORTABLE_ALONE = frozenset({"app.store.migrations.env"})
PIP_TIMEOUT = 1200
PG_URL = "postgresql+psycopg://user:secret@127.0.0.1:1/ssdboard"  # never connected to


@dataclass(frozen=True)
class Venv:
    """A virtual environment made by these tests."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return next((self.root / "lib").glob("python3.*/site-packages"))

    def env(self, **extra: str) -> dict[str, str]:
        """This process's environment without its own venv or paths, with this venv's bin first."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return {**env, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}

    def run(self, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *args], cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def probe(self, script: str, *args: str, cwd: Path) -> dict:
        """Run ``script`` here; its last stdout line is JSON."""
        out = self.run("-c", script, *args, cwd=cwd)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
        return json.loads(out.stdout.strip().splitlines()[-1])


def make_venv(root: Path) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    return Venv(root)


def pip_install(venv: Venv, *requirements: str, cwd: Path) -> None:
    out = venv.run("-m", "pip", "install", "--disable-pip-version-check", *requirements, cwd=cwd, timeout=PIP_TIMEOUT)
    assert out.returncode == 0, (
        f"pip install {' '.join(requirements)} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    )


def copy_tree(dest: Path) -> Path:
    """The working tree as git would commit it (tracked and untracked files, ignored ones left
    out), so that no build output, venv or data of this checkout reaches the install."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, target = ROOT / name, dest / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return dest


def imported_names(tree: Path) -> dict[str, set[str]]:
    """Every third-party module ``app`` and ``ssd`` import, at any depth, outside ``if
    TYPE_CHECKING``: dotted name → the files importing it."""
    names: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((tree / package).rglob("*.py")):
            module = ast.parse(path.read_text(), str(path))
            typing_only = {
                id(n)
                for node in ast.walk(module)
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                for stmt in node.body
                for n in ast.walk(stmt)
            }
            for node in ast.walk(module):
                if id(node) in typing_only:
                    continue
                if isinstance(node, ast.Import):
                    dotted = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    dotted = [node.module]
                else:
                    continue
                for name in dotted:
                    top = name.split(".")[0]
                    if top not in PACKAGES and top not in sys.stdlib_module_names and top != "__future__":
                        names.setdefault(name, set()).add(path.relative_to(tree).as_posix())
    return names


_IMPORT_ALL = """
import importlib, json, pkgutil, sys
skip = set(sys.argv[1].split(","))
errors, files = {}, {}
for package in ("app", "ssd"):
    root = importlib.import_module(package)
    files[package] = root.__file__
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name in skip:
            continue
        try:
            importlib.import_module(info.name)
        except BaseException as error:
            errors[info.name] = f"{type(error).__name__}: {error}"
loaded = [m for m in sys.modules if m.split(".")[0] in ("app", "ssd")]
print(json.dumps({"errors": errors, "files": files, "count": len(loaded)}))
"""

# Import each dotted name; a name whose top-level package is not installed is "missing", any
# other failure an error (a package that is there but breaks).
_TRY_IMPORTS = """
import importlib, importlib.util, json, sys
result = {"ok": [], "missing": [], "errors": {}}
for name in json.loads(sys.argv[1]):
    if importlib.util.find_spec(name.split(".")[0]) is None:
        result["missing"].append(name)
        continue
    try:
        importlib.import_module(name)
        result["ok"].append(name)
    except BaseException as error:
        result["errors"][name] = f"{type(error).__name__}: {error}"
print(json.dumps(result))
"""

# What each extra is for, tried through the project's own code: the store's engine on PostgreSQL
# (SQLAlchemy loads psycopg, the driver, without connecting), the export's package checks, the
# ray executor's modules. Prints {"ok": bool, "detail": str}.
_EXTRA_PROBES = {
    "postgres": f"""
import json
from app.store.engine import make_engine
try:
    engine = make_engine({PG_URL!r})
    print(json.dumps({{"ok": True, "detail": engine.dialect.driver}}))
except Exception as error:
    print(json.dumps({{"ok": False, "detail": str(error)}}))
""",
    "export": """
import json
from ssd.export import require
try:
    require("tf2onnx", "tf2onnx", "onnx"); require("onnx", "onnx", "onnx")
    import onnxruntime, ai_edge_litert.interpreter  # what the README's export checks run the files with
    print(json.dumps({"ok": True, "detail": ""}))
except ImportError as error:
    print(json.dumps({"ok": False, "detail": str(error)}))
""",
    "ray": """
import json
try:
    import app.execution.executors.ray, app.worker.ray_peers, ray.job_submission, ray.util.placement_group
    print(json.dumps({"ok": True, "detail": ray.__version__}))
except ImportError as error:
    print(json.dumps({"ok": False, "detail": str(error)}))
""",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with no source tree in it: what runs here imports the installed package."""
    return tmp_path_factory.mktemp("outside")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_tree(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, source: Path, workdir: Path) -> Iterator[Venv]:
    """``pip install .``: the runtime dependencies only."""
    root = tmp_path_factory.mktemp("venv") / "plain"
    venv = make_venv(root)
    pip_install(venv, str(source), cwd=workdir)
    yield venv
    shutil.rmtree(root, ignore_errors=True)


def extra_requirements(venv: Venv, extra: str, workdir: Path) -> list[str]:
    """The requirements ``ssdboard[extra]`` adds, read from the installed package's metadata."""
    script = "import importlib.metadata as m, json; print(json.dumps(m.requires('ssdboard')))"
    declared = venv.probe(script, cwd=workdir)
    wanted = []
    for text in declared:
        requirement = Requirement(text)
        if requirement.marker is not None and requirement.marker.evaluate({"extra": extra}):
            requirement.marker = None
            wanted.append(str(requirement))
    return wanted


@pytest.fixture(scope="module")
def extras(tmp_path_factory: pytest.TempPathFactory, plain: Venv, workdir: Path) -> Iterator[dict[str, Venv]]:
    """One venv per extra: the plain install (through a ``.pth`` file, so it is not copied) plus
    that extra's requirements alone. Its own site-packages comes first on ``sys.path``, so what
    the extra installs shadows the plain install where versions differ."""
    made: dict[str, Venv] = {}
    root = tmp_path_factory.mktemp("extras")
    for extra in EXTRAS:
        venv = make_venv(root / extra)
        (venv.site_packages / "zz_ssdboard_plain.pth").write_text(f"{plain.site_packages}\n")
        requirements = extra_requirements(plain, extra, workdir)
        assert requirements, f"the installed ssdboard declares no requirements for [{extra}]"
        pip_install(venv, *requirements, cwd=workdir)
        made[extra] = venv
    yield made
    shutil.rmtree(root, ignore_errors=True)


def test_every_module_imports_from_the_plain_install(plain: Venv, workdir: Path) -> None:
    result = plain.probe(_IMPORT_ALL, ",".join(sorted(NOT_IMPORTABLE_ALONE)), cwd=workdir)
    assert result["errors"] == {}
    for package, file in result["files"].items():
        assert Path(file).is_relative_to(plain.site_packages), f"{package} came from {file}, not the install"
    source_modules = sum(len(list((ROOT / p).rglob("*.py"))) for p in PACKAGES)
    assert result["count"] >= source_modules - len(NOT_IMPORTABLE_ALONE)


def test_serve_and_train_a_five_step_job(plain: Venv, workdir: Path, tmp_path: Path) -> None:
    port = free_port()
    command = [str(plain.root / "bin" / "ssdboard"), "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")]
    server = start_server(tmp_path / "d", port, tmp_path / "serve.log", env=plain.env(), command=command, cwd=workdir)
    try:
        url = f"http://127.0.0.1:{port}"
        submitted = httpx.post(f"{url}/api/jobs", json={"name": "plain install", "train": {"steps": 5}}, timeout=30)
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]
        deadline = time.monotonic() + 600
        job = submitted.json()
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
            job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()
        assert job["status"] == "succeeded", job.get("error") or (tmp_path / "serve.log").read_text()[-4000:]
        assert job["step"] == 5
        steps = httpx.get(f"{url}/api/jobs/{job_id}/metrics", timeout=30).json()["metrics"]
        assert [m["step"] for m in steps] == [1, 2, 3, 4, 5]
        assert all(m["pos_clf"] >= 0 and m["neg_clf"] >= 0 and m["loc"] >= 0 for m in steps)
    finally:
        stop_server(server, strict=True)  # SIGTERM: it stops within 30 s or the test fails
    # The job's worker ran from the install too: its checkpoint is where the server put it.
    assert (tmp_path / "d" / "jobs" / job_id / "model.weights.h5").is_file()


def test_the_plain_install_says_which_extra_is_missing(plain: Venv, workdir: Path) -> None:
    """Without an extra, the code that needs it says how to install it (nothing crashes on import)."""
    for extra in ("postgres", "export"):
        result = plain.probe(_EXTRA_PROBES[extra], cwd=workdir)
        assert not result["ok"] and f"ssdboard[{extra}]" in result["detail"], (extra, result)


@pytest.mark.parametrize("extra", EXTRAS)
def test_an_extra_alone_gives_what_it_is_for(extras: dict[str, Venv], extra: str, workdir: Path) -> None:
    result = extras[extra].probe(_EXTRA_PROBES[extra], cwd=workdir)
    assert result["ok"], result["detail"]


def test_every_lazy_import_is_a_dependency_or_in_an_extra(
    plain: Venv, extras: dict[str, Venv], source: Path, workdir: Path
) -> None:
    """What the plain install lacks, of all the modules the code imports, each extra alone
    provides (and imports cleanly): no import depends on a package only the test extras bring."""
    names = imported_names(source)
    base = plain.probe(_TRY_IMPORTS, json.dumps(sorted(names)), cwd=workdir)
    assert base["errors"] == {}
    provided: dict[str, str] = {}
    for extra, venv in extras.items():
        result = venv.probe(_TRY_IMPORTS, json.dumps(base["missing"]), cwd=workdir)
        assert result["errors"] == {}, extra
        provided.update(dict.fromkeys(result["ok"], extra))
    unprovided = {name: sorted(names[name]) for name in base["missing"] if name not in provided}
    assert unprovided == {}, "imported by the code, in neither the dependencies nor an extra"
    # Not vacuous: the optional packages are found missing, then found in their extras.
    assert {"ray", "onnx", "tf2onnx"} <= set(base["missing"])
    assert provided["ray"] == "ray" and provided["onnx"] == "export"
