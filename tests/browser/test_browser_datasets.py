"""The datasets pages in a real browser: upload a zip through the form, follow the import, read
the validation report, open a problem over its image, browse the images of the dataset."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from axe_check import assert_no_axe_violations

from ssd.datasets.export import export_generator

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def dataset_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 generated images as COCO, with a clipped box, an unknown class and a missing image."""
    root = tmp_path_factory.mktemp("upload")
    out = export_generator(root / "digits", "coco", images=24, val_fraction=0.25, seed=3)
    path = out / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    first = data["images"][0]["id"]
    data["annotations"] += [
        {"id": 9001, "image_id": first, "category_id": 1, "bbox": [90, 80, 60, 70], "iscrowd": 0},
        {"id": 9002, "image_id": first, "category_id": 42, "bbox": [10, 10, 20, 20], "iscrowd": 0},
        {"id": 9003, "image_id": 777, "category_id": 2, "bbox": [5, 5, 20, 20], "iscrowd": 0},
    ]
    data["images"].append({"id": 777, "file_name": "gone.png", "width": 128, "height": 128})
    path.write_text(json.dumps(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(out.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(out).as_posix())
    target = root / "digits.zip"
    target.write_bytes(buffer.getvalue())
    return target


def test_upload_a_zip_and_read_its_report(page: Any, shot: Any, dataset_zip: Path) -> None:
    name = f"digits-{uuid.uuid4().hex[:6]}"
    page.goto("/datasets")
    page.wait_for_selector("#datasets-body[data-ready=true]")
    assert page.locator("#datasets-body tr[data-dataset-id=mnist]").count() == 1
    assert_no_axe_violations(page, "/datasets")
    page.set_input_files("#upload-file", str(dataset_zip))
    page.fill("#upload-name", name)
    page.select_option("#upload-format", "coco")
    page.click("#upload-submit")
    page.wait_for_selector("#upload-status[data-state=ready]", timeout=60_000)
    assert page.get_attribute("#upload-progress", "aria-valuenow") == "100"
    assert f"{name} is ready: 24 images" in page.inner_text("#upload-stage")
    page.wait_for_selector(f"#datasets-body tr:has-text('{name}') .status-ready")
    page.wait_for_timeout(400)  # the progress bar's width transition
    shot(page, "datasets")

    page.click("#upload-link")
    page.wait_for_selector("#report-root[data-ready=true]")
    assert page.inner_text("#dataset-name") == name
    reasons = page.locator("#reasons-body tr")
    assert sorted(reasons.evaluate_all("rows => rows.map(r => r.dataset.reason)")) == [
        "clipped",
        "missing_image",
        "unknown_class",
    ]
    assert "clipped to it and kept" in page.inner_text("#reasons-body tr[data-reason=clipped]")
    assert page.locator("#problems-body tr").count() == 3
    dropped = page.locator("#problems-body tr[data-reason=missing_image]")
    assert dropped.locator("a").count() == 0 and "(dropped)" in dropped.inner_text()
    shot(page, "dataset_report")
    assert_no_axe_violations(page, "the dataset's report")

    page.click("#problems-body tr[data-reason=clipped] td a")
    page.wait_for_selector("#problem-root[data-ready=true]")
    page.wait_for_selector("#problem-figure .main-svg")
    facts = page.inner_text("#problem-facts")
    assert "90, 80, 150, 150" in facts and "annotations/instances_train.json" in facts
    shot(page, "dataset_problem")
    assert_no_axe_violations(page, "a problem over its image")

    page.click("#dataset-link")
    page.wait_for_selector("#report-root[data-ready=true]")
    page.click("#browse-link")
    page.wait_for_selector("#thumbs[data-ready=true]")
    assert page.input_value("#dataset-select") != "mnist"
    assert page.locator("#thumbs .thumb").count() == 6  # the validation split
    page.wait_for_selector("#stats-classes .main-svg")
    shot(page, "dataset_browser_imported")
    assert_no_axe_violations(page, "the browser on an imported dataset")
    page.locator("#thumbs .thumb").first.click()
    page.wait_for_selector("#image-root[data-ready=true]")
    assert "images/val/" in page.inner_text("#image-summary")
    assert page.inner_text("#class-header") == "class"
    shot(page, "dataset_image_imported")
    page.go_back()
    page.wait_for_selector("#thumbs[data-ready=true]")
    page.select_option("#dataset-select", "mnist")
    page.wait_for_function("document.getElementById('page-label').textContent.endsWith('of 500')")


def test_a_file_that_is_not_a_zip_shows_the_servers_answer(page: Any, tmp_path: Path) -> None:
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("these are notes, not a zip")
    page.goto("/datasets")
    page.wait_for_selector("#datasets-body[data-ready=true]")
    page.set_input_files("#upload-file", str(not_zip))
    page.click("#upload-submit")
    page.wait_for_selector("#upload-error:not([hidden])")
    assert "not a .zip" in page.inner_text("#upload-error")
