"""The new-job form: built from the schema, and the server's 422s shown next to the fields."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


def open_form(page: Any) -> None:
    page.goto("/jobs/new")
    page.wait_for_selector("form[data-ready=true]")


def test_form_shows_every_section_with_defaults_and_help(page: Any, shot: Any) -> None:
    open_form(page)
    # The run's basic choices up front; every section of the rest under Advanced settings.
    basic = page.locator("#basic-fields [data-field]").evaluate_all("els => els.map(e => e.dataset.field)")
    assert basic == [
        "name",
        "model.backbone",
        "model.init",
        "data.image_size",
        "train.steps",
        "train.time_budget",
        "train.batch_size",
        "train.learning_rate",
    ]
    assert page.locator('fieldset[data-section="model"]').is_hidden()
    shot(page, "new_job_basic")
    page.click("#advanced > summary")
    for section in ("model", "priors", "matching", "loss", "data", "train", "detect"):
        assert page.locator(f'fieldset[data-section="{section}"]').is_visible()
    assert page.locator('[name="train.batch_size"]').input_value() == "16"
    help_text = page.locator('[data-field="train.batch_size"] .help').inner_text()
    assert "Default: 16" in help_text
    assert len(help_text) > len("Default: 16"), "the schema's description is missing"
    assert page.locator('fieldset[data-section="augment"]').is_hidden()  # the generator takes none
    shot(page, "new_job")
    # The notebook preset refills the fields: constant schedule, no variances.
    page.select_option("#preset", "notebook")
    assert page.locator('[name="train.schedule"]').input_value() == '"constant"'
    assert page.locator('[name="matching.variances"]').input_value() == ""


def test_bad_value_shows_the_servers_message_next_to_the_field(page: Any, shot: Any) -> None:
    open_form(page)
    page.fill('[name="train.batch_size"]', "0")
    with page.expect_request(lambda r: r.url.endswith("/api/jobs") and r.method == "POST") as request:
        page.click("#submit-job")
    # Only what the user changed travels, with the preset; the server owns the defaults.
    assert request.value.post_data_json == {"preset": "default", "train": {"batch_size": 0}}
    error = page.locator('[data-error-for="train.batch_size"]')
    error.wait_for(state="visible")
    assert error.inner_text().strip(), "the field shows no message"
    summary = page.locator("#form-summary")
    assert summary.is_visible() and "train.batch_size" in summary.inner_text()
    assert page.url.endswith("/jobs/new"), "a refused config must not leave the form"
    page.wait_for_timeout(800)  # the smooth scroll to the field
    shot(page.locator(".basic-fields"), "new_job_error_field")
    shot(page, "new_job_error")
    # Editing the field clears its message.
    page.fill('[name="train.batch_size"]', "4")
    assert not error.is_visible()


def test_unparseable_list_is_caught_before_sending(page: Any) -> None:
    open_form(page)
    page.click("#advanced > summary")
    page.fill('[name="priors.scales"]', "[[8]")
    page.click("#advanced > summary")  # closed again: the error opens it
    page.click("#submit-job")
    error = page.locator('[data-error-for="priors.scales"]')
    error.wait_for(state="visible")
    assert "JSON" in error.inner_text()
    assert page.url.endswith("/jobs/new")
