"""The new-job flow from the data: upload a zip, open its page, Train on this dataset; the form
has the dataset chosen and only the fields that apply; Start; the job page trains on it."""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from axe_check import assert_no_axe_violations

from ssd.datasets.export import export_generator

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 generated images as COCO in a zip (12 train, 4 val)."""
    root = tmp_path_factory.mktemp("flow")
    out = export_generator(root / "digits", "coco", images=16, val_fraction=0.25, seed=5)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(out.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(out).as_posix())
    (root / "digits.zip").write_bytes(buffer.getvalue())
    return root / "digits.zip"


def test_upload_then_train_on_this_dataset(page: Any, shot: Any, small_zip: Path) -> None:
    name = f"flow-{uuid.uuid4().hex[:6]}"
    page.goto("/datasets")
    page.wait_for_selector("#datasets-body[data-ready=true]")
    page.set_input_files("#upload-file", str(small_zip))
    page.fill("#upload-name", name)
    page.click("#upload-submit")
    page.wait_for_selector("#upload-status[data-state=ready]", timeout=60_000)
    page.click("#upload-link")
    page.wait_for_selector("#report-root[data-ready=true]")
    page.click("#train-link")
    page.wait_for_selector("form[data-ready=true]")
    picked = page.locator("#dataset-picker option:checked").inner_text()
    assert picked.startswith(f"{name} — 16 images") and picked.endswith("10 classes")
    dataset_id = page.locator("#dataset-picker").input_value()
    assert page.locator('[name="data.dataset"]').input_value() == dataset_id
    classes = page.locator('[name="model.num_classes"]')
    assert classes.input_value() == "10" and classes.get_attribute("readonly") is not None
    # only the fields that apply: no digit counts for imported data, its augmentation instead
    page.click("#advanced > summary")
    assert page.locator('[data-field="data.min_digits"]').is_hidden()
    assert page.locator('fieldset[data-section="augment"]').is_visible()
    assert "fitted to the data when the job starts" in page.inner_text("#dataset-help")
    page.wait_for_selector("#plan-panel[data-state=ok], #plan-panel[data-state=warn]")
    shot(page, "new_job_from_dataset")
    assert_no_axe_violations(page, "the new-job form on an imported dataset")
    page.fill('[name="train.steps"]', "3")
    page.fill('[name="train.batch_size"]', "2")
    page.fill('[name="train.eval_images"]', "2")  # an advanced setting, open above
    with page.expect_request(lambda r: r.url.endswith("/api/jobs") and r.method == "POST") as request:
        page.click("#submit-job")
    sent = request.value.post_data_json
    assert sent["data"] == {"dataset": dataset_id} and "min_digits" not in sent["data"]
    assert request.value.response().status == 201, page.inner_text("#form-summary")
    page.wait_for_selector("#job-root[data-ready=true]")
    page.wait_for_function(f"document.getElementById('job-summary').textContent.includes('dataset {name}')")
    assert "digits" not in page.inner_text("#job-summary")
    page.wait_for_function("document.getElementById('job-status').textContent === 'succeeded'", timeout=180_000)
    recipe = page.locator("#recipe-details")
    assert "fitted to the data" in recipe.inner_text()
    recipe.locator("summary").click()
    assert "data.image_size = 128" in recipe.inner_text() and "priors = " in recipe.inner_text()
    assert "train.ema_decay = 0.999" in recipe.inner_text()  # the form left it to the recipe
    shot(page, "job_on_imported_data")
    # The generator again: its digit fields come back, augmentation goes
    page.goto("/jobs/new")
    page.wait_for_selector("form[data-ready=true]")
    assert page.locator("#dataset-picker").input_value() == "mnist"
    page.click("#advanced > summary")
    assert page.locator('[data-field="data.min_digits"]').is_visible()
    assert page.locator('fieldset[data-section="augment"]').is_hidden()


def test_before_you_start_follows_the_draft(page: Any, shot: Any) -> None:
    page.goto("/jobs/new")
    page.wait_for_selector("form[data-ready=true]")
    panel = page.locator("#plan-panel")
    page.wait_for_selector("#plan-panel[data-state=ok]")
    text = panel.inner_text()
    assert "at 128 px" in text and "GiB of" in text and "Time:" in text
    # the input size moves the coverage line; a batch too large for the server warns before Start
    page.fill('[name="data.image_size"]', "256")
    page.wait_for_function("document.getElementById('plan-panel').textContent.includes('at 256 px')")
    page.fill('[name="train.batch_size"]', "4000")
    page.wait_for_selector("#plan-panel[data-state=warn]")
    warning = page.locator(".plan-warning[data-field='train.batch_size']")
    assert "the server will refuse it" in warning.inner_text()
    shot(page, "new_job_plan_warning")
    page.click("#advanced > summary")
    assert_no_axe_violations(page, "the new-job form with a plan warning, advanced settings open")
    page.fill('[name="train.batch_size"]', "16")
    page.wait_for_selector("#plan-panel[data-state=ok]")


def test_the_plans_explorer_link_opens_the_draft(page: Any) -> None:
    page.goto("/jobs/new")
    page.wait_for_selector("form[data-ready=true]")
    page.fill('[name="data.image_size"]', "192")
    page.wait_for_function("document.getElementById('plan-panel').textContent.includes('at 192 px')")
    page.click("#plan-priors-link")
    page.wait_for_selector("#priors-root[data-ready=true]", timeout=30_000)
    page.wait_for_function("document.getElementById('coverage-headline').textContent.length > 0", timeout=30_000)
    assert "draft at 192 px" in page.inner_text("#priors-summary")
    assert page.locator("#preset-field").is_hidden()
