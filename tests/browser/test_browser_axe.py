"""axe-core over every page in Chromium: any violation of any rule fails the test.

axe-playwright-python bundles axe-core and injects it into the page; each page is checked once
its script has drawn it (charts included), and a few states besides: the token dialog and the
new-job form showing field errors. The detections page needs a job with a checkpoint: a tiny
job trains once for the module.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

pytestmark = pytest.mark.browser

axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright")


# Page path (``{job}``: the tiny job's id) and what shows that its script has drawn it.
PAGES = {
    "jobs": ("/", ["#jobs-body tr[data-job-id]"]),
    "new_job": ("/jobs/new", ["form[data-ready=true]"]),
    "job": ("/jobs/{job}", ["#job-root[data-ready=true]", "#loss-chart .main-svg", "#map-chart .main-svg"]),
    "detections": (
        "/jobs/{job}/detections",
        ["#det-root[data-ready=true]", ".det-plot .main-svg", "#eval-card[data-ready=true]"],
    ),
    "datasets": ("/datasets", ["#datasets-body[data-ready=true]"]),
    "dataset_mnist": ("/datasets/mnist", ["#report-root[data-ready=true]"]),
    "dataset": ("/dataset", ["#thumbs[data-ready=true]", "#stats-classes .main-svg"]),
    "dataset_image": ("/dataset/val/3", ["#image-root[data-ready=true]", "#image-figure .main-svg"]),
    "priors": ("/priors", ["#priors-root[data-ready=true]", "#prior-figure .main-svg", "#coverage-buckets .main-svg"]),
    "priors_of_a_job": ("/priors?job={job}", ["#priors-root[data-ready=true]", "#prior-figure .main-svg"]),
}


@pytest.fixture(scope="module")
def trained_job(server: str, tiny_job: Any) -> str:
    """The id of a finished tiny job with a checkpoint."""
    request = urllib.request.Request(
        f"{server}/api/jobs",
        data=json.dumps(tiny_job("browser-axe", 40)).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        job_id = str(json.load(response)["id"])
    deadline = time.monotonic() + 300
    while True:
        with urllib.request.urlopen(f"{server}/api/jobs/{job_id}", timeout=30) as response:
            job = json.load(response)
        if job["status"] in ("succeeded", "failed", "cancelled", "interrupted"):
            break
        assert time.monotonic() < deadline, f"the tiny job did not finish: {job['status']}"
        time.sleep(0.5)
    assert job["status"] == "succeeded", job.get("error")
    return job_id


def assert_no_violations(page: Any, what: str) -> None:
    results = axe_sync.Axe().run(page)
    assert results.violations_count == 0, f"{what}: {results.generate_report()}"


def open_page(page: Any, name: str, job_id: str) -> None:
    path, ready = PAGES[name]
    page.goto(path.format(job=job_id))
    for selector in ready:
        page.wait_for_selector(selector, state="attached", timeout=120_000)


@pytest.mark.parametrize("name", list(PAGES))
def test_page_has_no_axe_violations(page: Any, trained_job: str, name: str) -> None:
    open_page(page, name, trained_job)
    assert_no_violations(page, PAGES[name][0])


def test_token_dialog_has_no_axe_violations(page: Any, trained_job: str) -> None:
    open_page(page, "jobs", trained_job)
    page.evaluate("import('/static/js/lib/api.js').then((api) => { api.askToken(); })")
    page.wait_for_selector("dialog.token-dialog[open]")
    assert_no_violations(page, "the token dialog")
    page.click("dialog.token-dialog button[value=cancel]")
    page.wait_for_selector("dialog.token-dialog", state="detached")


def test_new_job_form_with_errors_has_no_axe_violations(page: Any, trained_job: str) -> None:
    open_page(page, "new_job", trained_job)
    page.fill('[name="train.steps"]', "")
    page.click("#advanced > summary")
    page.fill('[name="priors.scales"]', "[[8]")
    page.click("#submit-job")
    page.wait_for_selector("#form-summary:not([hidden])")
    assert page.locator("[aria-invalid=true]").count() == 2
    assert_no_violations(page, "the new-job form with field errors")
