"""The docs: the generated reference pages match the code, the site builds with --strict, the README stays short."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
# A repository file or folder in inline code (`app/services/limits.py`), a module (`ssd.detect.non_max_suppression`).
FILE_IN_CODE = re.compile(r"`((?:app|ssd|benchmarks|tests|tools|static|templates)/[\w./-]*)`")
# `app.x.y`, and the module of a command line: `python -m app.worker.main ...`.
MODULE_IN_CODE = re.compile(r"(?:`|-m )((?:app|ssd|benchmarks)(?:\.\w+)+)")


def _gen_reference() -> ModuleType:
    """tools/gen_reference.py (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "tools" / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_reference_matches_the_code() -> None:
    """CLI, config keys, REST and settings pages regenerated from the code equal the committed ones."""
    gen = _gen_reference()
    stale = [str(path.relative_to(ROOT)) for path, text in gen.render_all().items() if path.read_text() != text]
    assert not stale, f"{', '.join(stale)} differ from the code: run `{gen.REGENERATE}` and commit the pages"


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """mkdocs build --strict: a broken link or anchor, or a page left out of the nav, fails."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        if os.environ.get("CI"):
            pytest.fail("CI: mkdocs or mkdocs-material is missing (the test extras install them)")
        pytest.skip("mkdocs and mkdocs-material are not installed: pip install -e '.[docs]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "rest" / "index.html").exists()


def test_the_readme_is_short_and_its_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, "the README grew: move the detail into docs/"
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+://", t) and not t.startswith("#")]
    assert local, "the README links into docs/"
    assert [t for t in local if not (ROOT / t).exists()] == []


def _written_pages() -> list[Path]:
    """The pages people write (the generated reference follows the code by itself)."""
    pages = [p for p in sorted((ROOT / "docs").rglob("*.md")) if "reference" not in p.relative_to(ROOT / "docs").parts]
    return [*pages, ROOT / "README.md", ROOT / "CONTRIBUTING.md"]


def _is_module(parts: list[str]) -> bool:
    """Some prefix of ``parts`` (two names at least) is a module or package of the repository."""
    for n in range(2, len(parts) + 1):
        base = ROOT.joinpath(*parts[:n])
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return True
    return False


def test_the_docs_name_files_and_modules_that_exist() -> None:
    """A file, folder or module the pages name in code is there: a move or a rename updates the docs."""
    stale = []
    for page in _written_pages():
        text = page.read_text()
        for match in FILE_IN_CODE.finditer(text):
            path = match.group(1).rstrip("/")
            if re.search(r"[A-Z]{2,}|\.\.\.", path):  # a placeholder: static/js/pages/NAME.js, tests/app/...
                continue
            if not (ROOT / path).exists():
                stale.append(f"{page.relative_to(ROOT)}: {path}")
        for match in MODULE_IN_CODE.finditer(text):
            if re.search(r"[A-Z]{2,}", match.group(1)):  # a placeholder: benchmarks.NAME
                continue
            if not _is_module(match.group(1).split(".")):
                stale.append(f"{page.relative_to(ROOT)}: {match.group(1)}")
    assert stale == [], "pages name what is no longer there (moved or renamed?):\n" + "\n".join(sorted(set(stale)))
