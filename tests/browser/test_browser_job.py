"""A job's whole life in the browser: submit from the form, watch the chart grow, cancel, reload."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.browser

# Small enough to start training within seconds on two busy CPU cores; steps enough that
# it is still running when the test cancels it (it takes about 50 steps/s).
TINY = {
    "model.num_units": "2",
    "model.source_layers": "norm3_2",
    "priors.strides": "4",
    "priors.scales": "[[8]]",
    "priors.ratios": "1.0",
    "data.image_size": "32",
    "data.scale_range": "0.5, 1.0",
    "data.min_digits": "1",
    "data.max_digits": "2",
    "train.steps": "20000",
    "train.batch_size": "2",
}

TRACE_LENGTH = "document.getElementById('loss-chart').data[0].x.length"


def test_submit_watch_cancel_reload(page: Any, shot: Any) -> None:
    page.goto("/jobs/new")
    page.wait_for_selector("form[data-ready=true]")
    page.select_option("#preset", "notebook")
    page.fill('[name="name"]', "browser-tiny")
    page.click("#advanced > summary")  # the tiny network's fields are advanced settings
    for name, value in TINY.items():
        page.fill(f'[name="{name}"]', value)
    page.click("#submit-job")

    page.wait_for_url(re.compile(r"/jobs/(?!new)[^/]+$"))
    page.wait_for_selector("#job-root[data-ready=true]")
    assert page.locator("#job-name").inner_text() == "browser-tiny"

    # The worker starts (TensorFlow import, graph trace), then steps arrive over SSE.
    page.wait_for_function(f"{TRACE_LENGTH} > 0", timeout=180_000)
    first = page.evaluate(TRACE_LENGTH)
    page.wait_for_function(f"{TRACE_LENGTH} > {first} + 3", timeout=60_000)
    assert page.locator("#job-status").inner_text() == "running"
    assert "steps/s" in page.locator("#progress-rate").inner_text()
    traces = page.evaluate("document.getElementById('loss-chart').data.slice(0, 4).map((t) => t.name)")
    assert traces == ["pos_clf", "neg_clf", "loc", "total"]
    page.click("#log-scale")
    assert page.evaluate("document.getElementById('loss-chart').layout.yaxis.type") == "log"
    shot(page, "job_running")

    page.click("#cancel-btn")
    page.wait_for_function("document.getElementById('job-status').textContent === 'cancelled'", timeout=60_000)
    assert page.locator("#resume-btn").is_enabled()
    assert page.locator("#cancel-btn").is_disabled()
    drawn = page.evaluate(TRACE_LENGTH)
    shot(page, "job_cancelled")

    # A reload draws the whole history again from the store.
    page.reload()
    page.wait_for_selector("#job-root[data-ready=true]")
    page.wait_for_function(f"{TRACE_LENGTH} >= {drawn}", timeout=15_000)
    assert page.locator("#job-status").inner_text() == "cancelled"
    # The health card: every check, problems first, each with a status and its evidence.
    page.wait_for_selector("#health-card[data-ready=true]", timeout=30_000)
    items = page.locator("#health-list .health-item")
    assert items.count() == 7
    statuses = [items.nth(i).get_attribute("class") for i in range(7)]
    ranks = [next(k for k, s in enumerate(("fail", "warn", "ok", "skipped")) if f"health-{s}" in c) for c in statuses]
    assert ranks == sorted(ranks)
    # This tiny config's 8 px priors cannot match most of its 14-28 px digits: the check says so, in numbers.
    evidence = page.locator('[data-check="no_positive_priors"] .health-evidence').inner_text()
    assert re.match(r"\d+ of \d+ \([\d.]+%\) steps had no positive prior in their batch", evidence), evidence

    # The list shows the job with its status and losses.
    page.goto("/")
    row = page.locator("#jobs-body tr", has_text="browser-tiny")
    row.wait_for()
    assert "cancelled" in row.inner_text()
    shot(page, "jobs_list")


def test_smoothing_is_tensorboards_debiased_ema(page: Any) -> None:
    page.goto("/")
    values = page.evaluate(
        """async () => {
            const { Ema } = await import("/static/js/lib/plots.js");
            const half = new Ema(0.5);
            const raw = new Ema(0);
            return [[1, 3, 3].map((v) => half.next(v)), [1, 3].map((v) => raw.next(v))];
        }"""
    )
    # w = 0.5: EMA 0.5, 1.75, 2.375 divided by the debias 1 - w^n = 0.5, 0.75, 0.875.
    assert values[0] == pytest.approx([1.0, 7 / 3, 19 / 7])
    assert values[1] == [1, 3]
