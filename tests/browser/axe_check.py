"""axe-core over a page as drawn, for the browser tests (skips where axe-playwright-python is missing)."""

from __future__ import annotations

from typing import Any

import pytest


def assert_no_axe_violations(page: Any, what: str) -> None:
    """Fail naming ``what`` with axe's report when the page has any violation."""
    axe = pytest.importorskip("axe_playwright_python.sync_playwright")
    results = axe.Axe().run(page)
    assert results.violations_count == 0, f"{what}: {results.generate_report()}"
