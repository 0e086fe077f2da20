"""The compare page: three tiny jobs overlaid, one trace per job, the differing key in the diff
table, a job that finishes while the page is open, and the URL keeping the x axis."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from axe_check import assert_no_axe_violations

from app.domain import TERMINAL

pytestmark = pytest.mark.browser

MAIN_TRACES = "(id) => document.getElementById(id).data.filter((t) => t.meta.role === 'main').length"
POINTS_OF = (
    "([id, job]) => document.getElementById(id).data.find((t) => t.meta.role === 'main' && t.meta.job === job).x.length"
)


def _submit(server: str, config: dict[str, Any]) -> str:
    response = httpx.post(f"{server}/api/jobs", json=config, timeout=30)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _wait_finished(server: str, job_id: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(f"{server}/api/jobs/{job_id}", timeout=30).json()["status"]
        if status in TERMINAL:
            assert status == "succeeded"
            return
        time.sleep(1)
    pytest.fail(f"job {job_id} did not finish in {timeout} s")


def test_compare_three_jobs(page: Any, server: str, shot: Any, tiny_job: Any) -> None:
    configs = []
    for name, lr, steps in (("cmp-lr1e-3", 1e-3, 8), ("cmp-lr3e-3", 3e-3, 8), ("cmp-lr1e-2", 1e-2, 120)):
        config = tiny_job(name, steps)
        configs.append(
            {**config, "train": {**config["train"], "learning_rate": lr, "eval_every": 4 if steps < 20 else 30}}
        )
    ids = [_submit(server, c) for c in configs]
    for job_id in ids[:2]:
        _wait_finished(server, job_id)

    # The third may still be queued or running: the page follows it live.
    page.goto(f"/compare?jobs={','.join(ids)}&x=images")
    page.wait_for_selector("#compare-root[data-ready=true]")
    for chart in ("chart-pos_clf", "chart-neg_clf", "chart-loc", "chart-total", "chart-map50", "chart-map"):
        page.wait_for_function(f"({MAIN_TRACES})('{chart}') === 3")
    colors = page.evaluate(
        "document.getElementById('chart-total').data.filter((t) => t.meta.role === 'main').map((t) => t.line.color)"
    )
    assert len(set(colors)) == 3
    swatches = page.locator("#jobs-body .swatch-job").evaluate_all("(els) => els.map((e) => e.style.background)")
    assert len(swatches) == 3

    row = page.locator('#diff-body tr[data-key="train.learning_rate"]')
    assert row.count() == 1
    assert "0.003" in row.inner_text()
    assert page.locator('#diff-body tr[data-key="data.image_size"]').count() == 0  # the same for all three
    page.check("#all-keys")
    assert page.locator('#diff-body tr[data-key="data.image_size"]').count() == 1
    assert "all=1" in page.url
    page.uncheck("#all-keys")

    # The x axis is the images seen: step x batch size (2).
    assert page.evaluate("document.getElementById('chart-total').layout.xaxis.title.text") == "images seen"
    # The third job cannot have finished yet (its worker imports TensorFlow after the second ends).
    assert page.locator(f"#jobs-body tr[data-job='{ids[2]}'] .badge").inner_text() in ("queued", "running")
    _wait_finished(server, ids[2])
    page.wait_for_function(
        "document.querySelector(`#jobs-body tr[data-job='" + ids[2] + "'] .badge`).textContent === 'succeeded'",
        timeout=60_000,
    )
    # Every step of the third job is drawn: streamed in, without a reload.
    page.wait_for_function(f"({POINTS_OF})(['chart-total', '{ids[2]}']) === 120", timeout=30_000)
    last_x = page.evaluate(
        "(job) => document.getElementById('chart-total').data"
        ".find((t) => t.meta.role === 'main' && t.meta.job === job).x.at(-1)",
        ids[2],
    )
    assert last_x == 240
    shot(page, "compare_three")
    assert_no_axe_violations(page, "the compare page")

    # The hyperparameter plot: one marker per job that has an evaluation.
    page.wait_for_selector('.hparam-chart[data-key="train.learning_rate"]')

    # Why they missed: each job analyzed (one at a time), TIDE's dAP side by side, a bar group per job.
    page.fill("#why-n", "4")
    page.click("#why-run")
    page.wait_for_selector("#why-card[data-ready=true]", timeout=300_000)
    assert page.locator("#why-status").inner_text().startswith("3 of 3 jobs analyzed on their first 4")
    names = page.evaluate("document.getElementById('why-chart').data.map((t) => t.name)")
    assert [n.split(" (")[0] for n in names] == ["cmp-lr1e-3", "cmp-lr3e-3", "cmp-lr1e-2"]
    assert page.evaluate("document.getElementById('why-chart').data[0].x.length") == 8

    # A reload keeps the selection and the axis (the URL holds them).
    page.reload()
    page.wait_for_selector("#compare-root[data-ready=true]")
    assert page.locator("#x-axis").input_value() == "images"


def test_a_bad_selection_says_why_and_offers_the_picker(page: Any) -> None:
    page.goto("/compare?jobs=justone")
    error = page.locator("#compare-error")
    error.wait_for()
    assert "2 to 10 jobs" in error.inner_text()
    assert page.locator("#picker").get_attribute("open") is not None
    page.wait_for_selector("#picker-list .picker-item, #picker-list p:not(:has-text('Loading'))")
    assert_no_axe_violations(page, "the compare page's picker")
    page.goto("/compare?jobs=nosuch1,nosuch2")
    page.wait_for_function("document.getElementById('compare-error').textContent.includes('no job nosuch1')")
