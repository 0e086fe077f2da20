"""The runs table in Chromium, on a server whose store holds 60 finished jobs (written straight into
the store, nothing trains): sort by best mAP@.5 from the header, filter by tag, page, select runs
and open Compare with them; then name, tags and notes edited on a job page."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from benchmarks.jobs_list import fill_store
from benchmarks.server import stop_server

pytestmark = pytest.mark.browser

AXE = "axe_playwright_python.sync_playwright"


@pytest.fixture(scope="module")
def runs_server(tmp_path_factory: pytest.TempPathFactory, browser_server: Any) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("runs-data")
    fill_store(f"sqlite:///{data_dir / 'ssdboard.db'}", jobs=60, steps=20, evals=2)
    url, process = browser_server(data_dir, data_dir.parent / "runs-server.log", dict(os.environ))
    yield url
    stop_server(process)


@pytest.fixture
def runs_page(browser: Any, runs_server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=runs_server, viewport={"width": 1500, "height": 950})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def _row_names(page: Any) -> list[str]:
    return [str(n) for n in page.locator("#jobs-body tr[data-job-id] .job-name a").all_inner_texts()]


def _api_names(server: str, **params: Any) -> list[str]:
    return [job["name"] for job in httpx.get(f"{server}/api/jobs", params=params, timeout=30).json()]


def _wait_rows(page: Any, names: list[str]) -> None:
    deadline = time.monotonic() + 15
    while _row_names(page) != names:
        assert time.monotonic() < deadline, f"rows {_row_names(page)[:5]}... never became {names[:5]}..."
        page.wait_for_timeout(100)


def test_sort_filter_page_select_and_compare(runs_page: Any, runs_server: str, shot: Any) -> None:
    page = runs_page
    page.goto("/")
    page.wait_for_selector("#jobs-body tr[data-job-id]")
    _wait_rows(page, _api_names(runs_server, limit=50))
    assert page.locator("#page-range").inner_text() == "1–50 of 60 jobs"

    # Sort by best mAP@.5 from its header: best first, then the other way round.
    header = page.locator('th[data-sort="best_map50"] button')
    header.click()
    _wait_rows(page, _api_names(runs_server, sort="-best_map50", limit=50))
    assert page.locator('th[data-sort="best_map50"]').get_attribute("aria-sort") == "descending"
    assert "sort=-best_map50" in page.url
    header.click()
    _wait_rows(page, _api_names(runs_server, sort="best_map50", limit=50))
    header.click()
    _wait_rows(page, _api_names(runs_server, sort="-best_map50", limit=50))

    # The next page, then a tag filter (typed) that fits on one page.
    page.click("#next-page")
    _wait_rows(page, _api_names(runs_server, sort="-best_map50", limit=50, offset=50))
    assert page.locator("#page-range").inner_text() == "51–60 of 60 jobs"
    page.fill("#tag-filter", "baseline")
    tagged = _api_names(runs_server, sort="-best_map50", tag="baseline", limit=50)
    assert 0 < len(tagged) < 60
    _wait_rows(page, tagged)
    assert "tag=baseline" in page.url and "offset" not in page.url
    for row in page.locator("#jobs-body tr[data-job-id] td.tags").all_inner_texts():
        assert "baseline" in row

    # A reload keeps the view (the URL holds it).
    page.reload()
    _wait_rows(page, tagged)
    assert page.locator("#tag-filter").input_value() == "baseline"

    # Select three runs: Compare opens them in the order they were ticked.
    compare = page.locator("#compare-link")
    assert compare.get_attribute("aria-disabled") == "true" and compare.get_attribute("href") is None
    rows = page.locator("#jobs-body tr[data-job-id]")
    picked = [rows.nth(i).get_attribute("data-job-id") for i in (2, 0, 1)]
    rows.nth(2).locator("input.select-run").check()
    assert compare.get_attribute("aria-disabled") == "true"  # one more needed
    assert page.locator("#selection-note").inner_text() == "1 run selected: select at least one more."
    rows.nth(0).locator("input.select-run").check()
    rows.nth(1).locator("input.select-run").check()
    page.wait_for_timeout(2500)  # a poll redraws the rows: the ticks stay
    assert page.locator("#jobs-body input.select-run:checked").count() == 3
    assert compare.inner_text() == "Compare 3"
    assert compare.get_attribute("href") == f"/compare?jobs={','.join(picked)}"  # type: ignore[arg-type]
    shot(page, "runs_table_selected")
    compare.click()
    page.wait_for_url(f"**/compare?jobs={','.join(picked)}")  # type: ignore[arg-type]


def test_at_most_ten_runs_can_be_ticked(runs_page: Any) -> None:
    page = runs_page
    page.goto("/?sort=name")
    page.wait_for_selector("#jobs-body tr[data-job-id]")
    boxes = page.locator("#jobs-body input.select-run")
    for i in range(10):
        boxes.nth(i).check()
    assert boxes.nth(10).is_disabled()
    assert page.locator("#compare-link").get_attribute("href").count(",") == 9
    page.click("#clear-selection")
    assert page.locator("#jobs-body input.select-run:checked").count() == 0
    assert not boxes.nth(10).is_disabled()


def test_name_tags_and_notes_on_the_job_page(runs_page: Any, runs_server: str, shot: Any) -> None:
    page = runs_page
    job_id = httpx.get(f"{runs_server}/api/jobs", params={"limit": 1}, timeout=30).json()[0]["id"]
    page.goto(f"/jobs/{job_id}")
    page.wait_for_selector("#job-root[data-ready=true]")
    save = page.locator("#meta-form button[type=submit]")
    assert save.is_disabled()  # nothing changed yet
    page.fill("#meta-form input[name=name]", "renamed in the browser")
    page.fill("#meta-form input[name=tags]", "keeper, lr 3e-4")
    page.fill("#meta-form textarea[name=notes]", "Best so far.\nTry a longer warm-up.")
    save.click()
    page.wait_for_function("document.getElementById('meta-status').textContent === 'Saved.'")
    assert page.locator("#job-name").inner_text() == "renamed in the browser"
    job = httpx.get(f"{runs_server}/api/jobs/{job_id}", timeout=30).json()
    assert (job["name"], job["tags"], job["notes"]) == (
        "renamed in the browser",
        ["keeper", "lr 3e-4"],
        "Best so far.\nTry a longer warm-up.",
    )
    # A refusal names the field and leaves the job as it was.
    page.fill("#meta-form input[name=tags]", "x" * 41)
    save.click()
    page.wait_for_function("document.getElementById('meta-status').textContent.startsWith('tags: ')")
    assert page.locator("#meta-form input[name=tags]").get_attribute("aria-invalid") == "true"
    assert httpx.get(f"{runs_server}/api/jobs/{job_id}", timeout=30).json()["tags"] == ["keeper", "lr 3e-4"]
    shot(page, "job_meta")
    # The runs table shows the new name and tags, and filters on the tag.
    page.goto("/?tag=keeper")
    _wait_rows(page, ["renamed in the browser"])


def test_the_runs_table_passes_axe(runs_page: Any) -> None:
    axe_sync = pytest.importorskip(AXE)
    page = runs_page
    page.goto("/?sort=-best_map50")
    page.wait_for_selector("#jobs-body tr[data-job-id]")
    page.locator("#jobs-body input.select-run").first.check()
    results = axe_sync.Axe().run(page)
    assert results.violations_count == 0, results.generate_report()
