"""Fine-tune from this run: the job page's button opens the form with the job's config and
``model.init = job:<id>``; the new job says where its weights started."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


def wait_succeeded(page: Any) -> None:
    page.wait_for_selector("#job-root[data-ready=true]")
    page.wait_for_function("document.getElementById('job-status').textContent === 'succeeded'", timeout=180_000)


def test_fine_tune_from_a_run_prefills_the_form_and_starts_from_its_weights(
    page: Any, shot: Any, tiny_job: Any
) -> None:
    response = page.request.post("/api/jobs", data=tiny_job("browser-source", 4))
    assert response.status == 201, response.text()
    source = response.json()["id"]
    page.goto(f"/jobs/{source}")
    wait_succeeded(page)
    weights = page.locator("#job-weights")
    weights.wait_for(state="visible")
    assert "best mAP@.5" in weights.inner_text() and "at step 4" in weights.inner_text()
    link = page.locator("#finetune-link")
    assert link.get_attribute("aria-disabled") == "false"
    shot(page, "job_fine_tune_source")
    link.click()
    page.wait_for_selector("form[data-ready=true]")
    assert page.locator('[name="model.init"]').input_value() == f"job:{source}"
    assert page.locator('[name="model.num_units"]').input_value() == "2"  # the source's config
    assert page.locator('[name="name"]').input_value() == "browser-source fine-tuned"
    note = page.locator("#from-job")
    assert note.is_visible() and f"job:{source}" in note.inner_text()
    shot(page, "new_job_fine_tune")
    with page.expect_request(lambda r: r.url.endswith("/api/jobs") and r.method == "POST") as request:
        page.click("#submit-job")
    assert request.value.post_data_json["model"]["init"] == f"job:{source}"
    page.wait_for_url("**/jobs/*")
    wait_succeeded(page)
    weights = page.locator("#job-weights")
    weights.wait_for(state="visible")
    assert f"started from job:{source}:" in weights.inner_text() and "0 new" in weights.inner_text()
    shot(page, "job_fine_tuned")
