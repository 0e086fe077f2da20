"""Sweeps in the browser: start a small sweep from the form, watch its page, cancel it; a refused
value shows next to the swept field and queues nothing."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from axe_check import assert_no_axe_violations

pytestmark = pytest.mark.browser

# The base of tests/browser/conftest.py's TINY_JOB, as the form's fields (notebook preset).
TINY_FIELDS = {
    "model.num_units": "2",
    "model.source_layers": "norm3_2",
    "priors.strides": "4",
    "priors.scales": "[[12, 18]]",
    "priors.ratios": "0.7",
    "data.image_size": "32",
    "data.scale_range": "0.5, 1.0",
    "data.min_digits": "1",
    "data.max_digits": "2",
    "data.val_images": "24",
    "train.batch_size": "2",
    "train.eval_images": "4",
    "train.checkpoint_every": "20",
}


def open_form(page: Any) -> None:
    page.goto("/sweeps/new")
    page.wait_for_selector("form[data-ready=true]")
    page.select_option("#preset", "notebook")
    page.click("#advanced > summary")  # the tiny network's fields are advanced settings
    for key, value in TINY_FIELDS.items():
        page.fill(f'[name="{key}"]', value)


def sweep_key(page: Any, key: str, mode: str, values: str) -> None:
    page.select_option(f'[name="sweep:{key}"]', mode)
    page.fill(f'[name="values:{key}"]', values)


def test_start_a_sweep_from_the_form_watch_it_and_cancel_it(page: Any, shot: Any) -> None:
    open_form(page)
    page.fill('[name="name"]', "lr-grid")
    page.fill('[name="train.steps"]', "100000")  # long: the first job is still running when we cancel
    sweep_key(page, "train.learning_rate", "grid", "0.001, 0.003")
    sweep_key(page, "seed", "grid", "1, 2")
    assert page.locator("#sweep-preview").inner_text().startswith("4 jobs: grid 2 × 2")
    assert page.locator('[name="train.learning_rate"]').is_disabled()  # swept: not part of the base
    shot(page, "sweep_new")
    with page.expect_request(lambda r: r.url.endswith("/api/sweeps") and r.method == "POST") as request:
        page.click("#submit-sweep")
    body = request.value.post_data_json
    assert body["grid"] == {"train.learning_rate": [0.001, 0.003], "seed": [1, 2]}
    assert body["base"]["preset"] == "notebook" and body["base"]["model"]["num_units"] == 2
    assert "learning_rate" not in body["base"].get("train", {})

    page.wait_for_url(re.compile(r"/sweeps/[0-9a-f]+$"))
    sweep_id = page.url.rsplit("/", 1)[-1]
    rows = page.locator("#runs-body tr")
    page.wait_for_function("document.querySelectorAll('#runs-body tr[data-job-id]').length === 4")
    headers = page.locator("#runs-head th").all_inner_texts()
    assert "train.learning_rate" in headers and "seed" in headers
    # The form's field order (seed, then train.*), the last key changing fastest.
    assert list(body["grid"]) == ["seed", "train.learning_rate"]
    values = [rows.nth(i).locator("td.value").all_inner_texts() for i in range(4)]
    assert values == [["1", "0.001"], ["1", "0.003"], ["2", "0.001"], ["2", "0.003"]]
    page.wait_for_selector('#runs-body tr[data-status="running"]', timeout=120_000)
    page.wait_for_function(
        "[...document.querySelectorAll('#runs-body tr[data-status=running] .progress-label')]"
        ".some(e => parseInt(e.textContent) > 0)",
        timeout=60_000,
    )
    assert page.locator("#sweep-status").inner_text() == "running"
    assert page.locator("#cancel-btn").is_enabled()
    assert (
        page.locator("#compare-link")
        .get_attribute("href")
        .endswith("/compare?jobs=" + ",".join(rows.nth(i).get_attribute("data-job-id") for i in range(4)))
    )
    shot(page, "sweep_running")

    page.click("#cancel-btn")
    page.wait_for_selector("#sweep-status:text('cancelled')", timeout=30_000)
    assert page.locator("#runs-body tr[data-status=cancelled]").count() == 4
    assert page.locator("#cancel-btn").is_disabled()
    assert page.request.get(f"/api/sweeps/{sweep_id}").json()["status"] == "cancelled"
    page.goto("/sweeps")
    page.wait_for_selector(f'tr[data-sweep-id="{sweep_id}"]')
    assert "cancelled" in page.locator(f'tr[data-sweep-id="{sweep_id}"]').inner_text()
    shot(page, "sweeps_list")
    assert_no_axe_violations(page, "the sweeps list")


def test_a_refused_value_shows_at_the_swept_field_and_queues_nothing(page: Any, shot: Any) -> None:
    before = len(page.request.get("/api/jobs?limit=1000").json())
    open_form(page)
    sweep_key(page, "train.learning_rate", "grid", "0.001, -1")
    page.click("#submit-sweep")
    error = page.locator('[data-sweep-error-for="train.learning_rate"]')
    error.wait_for(state="visible")
    assert "-1" in error.inner_text() and "(0, 10]" in error.inner_text()
    assert "no job was queued" in page.locator("#form-summary").inner_text()
    assert page.url.endswith("/sweeps/new")
    shot(page, "sweep_new_error")
    assert_no_axe_violations(page, "the new-sweep form with an error")
    time.sleep(0.2)
    assert len(page.request.get("/api/jobs?limit=1000").json()) == before
    # A random range on a number: min/max inputs; the preview counts the draws.
    page.select_option('[name="sweep:train.learning_rate"]', "random")
    page.fill('[name="min:train.learning_rate"]', "0.0001")
    page.fill('[name="max:train.learning_rate"]', "0.01")
    page.fill('[name="samples"]', "3")
    assert page.locator("#sweep-preview").inner_text().startswith("3 jobs")


def test_a_sweep_midway_highlights_its_best_run(page: Any, tiny_job: Any, shot: Any) -> None:
    """Two short runs evaluated, a long one running, one queued: the best row is marked."""
    base = {k: v for k, v in tiny_job("midway", 40).items() if k != "name"}
    grid = {"train.steps": [40, 100_000], "train.learning_rate": [0.01, 0.003]}
    answer = page.request.post("/api/sweeps", data={"name": "midway", "base": base, "grid": grid, "max_jobs": 4})
    assert answer.status == 201, answer.text()
    sweep = answer.json()
    page.goto(f"/sweeps/{sweep['id']}")
    page.wait_for_function(
        "(() => { const s = [...document.querySelectorAll('#runs-body tr')].map(r => r.dataset.status);"
        " return s[0] === 'succeeded' && s[1] === 'succeeded' && s[2] === 'running'; })()",
        timeout=180_000,
    )
    page.wait_for_selector("#runs-body tr.best")
    best = page.request.get(f"/api/sweeps/{sweep['id']}").json()["best"]
    assert page.locator("#runs-body tr.best").get_attribute("data-job-id") == best["job_id"]
    assert page.locator("#best-card").is_visible() and best["name"] in page.locator("#best-text").inner_text()
    assert page.locator("#compare-link").get_attribute("href").split("=")[1].startswith(best["job_id"])
    assert page.locator("#runs-link").get_attribute("href") == f"/?sweep={sweep['id']}"
    shot(page, "sweep_midway")
    assert_no_axe_violations(page, "a sweep page mid-way")
    page.request.post(f"/api/sweeps/{sweep['id']}/cancel")  # free the worker for the other tests
    page.wait_for_selector("#sweep-status:text('cancelled')", timeout=30_000)
    # A job of the sweep links back to it.
    page.click(f'#runs-body tr[data-job-id="{best["job_id"]}"] .job-name a')
    page.wait_for_selector("#sweep-link")
    page.click("#sweep-link")
    page.wait_for_url(f"**/sweeps/{sweep['id']}")


def test_sweep_from_this_job_starts_from_its_config(page: Any, tiny_job: Any) -> None:
    response = page.request.post("/api/jobs", data=tiny_job("sweep-source", 2))
    assert response.status == 201, response.text()
    job_id = response.json()["id"]
    page.goto(f"/jobs/{job_id}")
    page.wait_for_selector("#job-root[data-ready=true]")
    page.click("#sweep-from-link")
    page.wait_for_selector("form[data-ready=true]")
    assert page.locator("#sweep-name").input_value() == "sweep-source sweep"
    assert page.locator('[name="model.num_units"]').input_value() == "2"  # the job's config is the base
    assert "Sweeping around the config of" in page.locator("#from-job").inner_text()
    assert page.locator("#dataset-picker").input_value() == "mnist"
