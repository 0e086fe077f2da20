"""The layers of DESIGN.md, checked on the imports of every module (read with ``ast``, nothing run)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTTP = ("fastapi", "starlette")
# Below the services: what the services, the routes and the composition root stand on.
CORE = ["app/domain.py", "app/settings.py", "app/store", "app/execution", "app/worker", "app/http", "app/figures"]


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


def files(place: str) -> list[Path]:
    """``place``'s modules: the file itself, or every module of the package."""
    return [ROOT / place] if place.endswith(".py") else modules(place)


@pytest.mark.parametrize("package", ["app/services", *(p for p in CORE if p != "app/http")])
def test_services_and_the_core_speak_no_http(package: str) -> None:
    """Domain errors, not ``HTTPException``: one place (app.api.errors) maps them to statuses.

    Starlette is HTTP as much as FastAPI: a service that needs a thread awaits it with anyio.
    ``app/http`` is the HTTP plumbing itself (middleware, connection limits, the SSE response).
    """
    bad = {}
    for path in files(package):
        http = sorted(m for m in imports(path) if under(m, *HTTP))
        if http:
            bad[str(path.relative_to(ROOT))] = http
    assert bad == {}


@pytest.mark.parametrize("package", CORE)
def test_the_core_never_imports_services(package: str) -> None:
    """Services stand on the core (store, execution, worker, ...), never the reverse."""
    bad = {}
    for path in files(package):
        above = sorted(m for m in imports(path) if under(m, "app.services", "app.api", "app.main", "app.cli"))
        if above:
            bad[str(path.relative_to(ROOT))] = above
    assert bad == {}


def test_the_worker_imports_nothing_else_from_app() -> None:
    """``app/worker`` runs in a job's (or an import's) own process: the server imports it, never the
    reverse, so what a worker loads is the library and the worker package, nothing of the server."""
    bad = {}
    for path in modules("app/worker"):
        outside = sorted(m for m in imports(path) if under(m, "app") and not under(m, "app.worker"))
        if outside:
            bad[str(path.relative_to(ROOT))] = outside
    assert bad == {}


def module_graph() -> dict[str, set[str]]:
    """Every module of ``app`` and ``ssd`` -> the modules of both it imports (functions' lazy
    imports included). An imported name counts as the longest module it starts with
    (``from app.store.jobs import JobStore`` -> ``app.store.jobs``)."""
    names: dict[str, Path] = {}
    for package in ("app", "ssd"):
        for path in modules(package):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def module_of(name: str) -> str | None:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in names:
                return ".".join(parts[:end])
        return None

    return {
        name: {m for m in map(module_of, imports(path)) if m is not None and m != name} for name, path in names.items()
    }


def strongly_connected(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Tarjan's components of ``graph`` (iterative: no recursion limit), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    yield sorted(component)


def test_strongly_connected_finds_a_circle_by_hand() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert sorted(strongly_connected(graph)) == [["a", "b", "c"], ["d"], ["e"]]


def test_no_import_cycles() -> None:
    """No two modules of ``app`` and ``ssd`` import each other, directly or round a circle, even
    from inside a function: a lazy import hides a circle from Python, not from a reader."""
    circles = [c for c in strongly_connected(module_graph()) if len(c) > 1]
    assert circles == []


def test_no_benchmark_inside_the_packages() -> None:
    assert [p for pkg in ("app", "ssd") for p in (ROOT / pkg).rglob("bench*")] == []
    assert not any(under(m, "benchmarks") for pkg in ("app", "ssd") for p in modules(pkg) for m in imports(p))


def test_no_data_path_asks_which_kind_of_dataset() -> None:
    """The generator is the registered dataset ``mnist`` behind :class:`ssd.datasets.source.DataSource`:
    no module but the sources and the registry compares a dataset with ``mnist`` or asks whether
    a split is the generator's or an import's (22 such forks in 8 files before the interface)."""
    import re

    fork = re.compile(
        r"[!=]= *MNIST\b|\bMNIST *[!=]=|[!=]= *[\"']mnist[\"']"
        r"|isinstance\([^)]*\b(FileDataset|DetectionDataset|ImportedSource|GeneratedSource)\b"
    )
    allowed = {"ssd/datasets/source.py", "ssd/datasets/registry.py"}
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for pkg in ("app", "ssd")
        for path in modules(pkg)
        if str(path.relative_to(ROOT)) not in allowed
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if fork.search(line)
    ]
    assert found == []
