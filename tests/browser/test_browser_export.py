"""The job page's export control: no link before a checkpoint, then a download of the chosen format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser


def test_export_link_downloads_the_chosen_format(page: Any, shot: Any, tiny_job: Any, tmp_path: Path) -> None:
    response = page.request.post("/api/jobs", data=tiny_job("browser-export", 4))
    assert response.status == 201, response.text()
    job_id = response.json()["id"]
    page.goto(f"/jobs/{job_id}")
    page.wait_for_selector("#job-root[data-ready=true]")
    link = page.locator("#export-link")
    if page.locator("#job-status").inner_text() != "succeeded":  # queued or running: no checkpoint yet
        assert link.get_attribute("href") is None and link.get_attribute("aria-disabled") == "true"
    # The page refreshes the job when it ends; its checkpoint enables the link.
    page.wait_for_function("document.getElementById('job-status').textContent === 'succeeded'", timeout=180_000)
    assert link.get_attribute("aria-disabled") == "false"
    assert link.get_attribute("href").endswith(f"/api/jobs/{job_id}/export?format=savedmodel")
    page.select_option("#export-format", "tflite")
    assert link.get_attribute("href").endswith(f"/api/jobs/{job_id}/export?format=tflite")
    shot(page, "job_export")
    with page.expect_download(timeout=120_000) as download_info:  # the first download converts
        link.click()
    download = download_info.value
    assert download.suggested_filename == f"ssdboard-{job_id}-browser-export.tflite"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.stat().st_size > 10_000 and saved.read_bytes()[4:8] == b"TFL3"  # the FlatBuffer's identifier
