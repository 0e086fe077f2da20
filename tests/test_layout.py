"""The layers of DESIGN.md, checked on the imports of every module (read with ``ast``, nothing run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (functions' lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_library_never_imports_the_web_layer() -> None:
    bad = {
        str(p.relative_to(ROOT)): sorted(
            m for m in imports(p) if under(m, "fastapi", "starlette", "jinja2", "plotly", "app")
        )
        for p in modules("ssd")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_only_routes_and_the_composition_root_import_routes() -> None:
    """Arrows point down: services and the core never reach up into ``app.api``.

    ``app/main.py`` (``create_app``, which includes the routers) is the one module above them.
    """
    bad = {}
    for path in modules("app"):
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("app", "api") or rel == Path("app/main.py"):
            continue
        climbing = sorted(m for m in imports(path) if under(m, "app.api"))
        if climbing:
            bad[str(rel)] = climbing
    assert bad == {}


@pytest.mark.parametrize(
    "package", ["app/services", "app/domain.py", "app/messages.py", "app/runner.py", "app/events.py"]
)
def test_services_and_the_core_speak_no_http(package: str) -> None:
    """Domain errors, not ``HTTPException``: one place (app.api.errors) maps them to statuses."""
    paths = [ROOT / package] if package.endswith(".py") else modules(package)
    for path in paths:
        names = imports(path)
        assert not any(under(m, "fastapi", "app.schemas") for m in names), (path, names)


def test_no_benchmark_inside_the_packages() -> None:
    assert [p for pkg in ("app", "ssd") for p in (ROOT / pkg).rglob("bench*")] == []
    assert not any(under(m, "benchmarks") for pkg in ("app", "ssd") for p in modules(pkg) for m in imports(p))
