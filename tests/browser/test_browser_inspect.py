"""The dataset browser and the prior explorer in a real browser."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = pytest.mark.browser


def test_dataset_page_renders_thumbnails_and_opens_an_image(page: Any, shot: Any) -> None:
    page.goto("/dataset")
    page.wait_for_selector("#thumbs[data-ready=true]")
    thumbs = page.locator("#thumbs .thumb")
    assert thumbs.count() == 24
    assert thumbs.first.locator("svg rect").count() >= 2  # the ground-truth boxes
    page.wait_for_function(
        "[...document.querySelectorAll('#thumbs img')].every(i => i.complete && i.naturalWidth === 128)"
    )
    page.wait_for_selector("#stats-classes .main-svg")
    shot(page, "dataset")
    page.click("#next-page")
    page.wait_for_function("document.querySelector('#thumbs .thumb').dataset.index === '24'")
    thumbs.first.click()
    page.wait_for_url("**/dataset/val/24")
    page.wait_for_selector("#image-root[data-ready=true]")
    assert page.locator("#image-figure .main-svg").count() >= 1
    assert page.locator("#boxes-table tbody tr").count() >= 2
    shot(page, "dataset_image")


def test_prior_explorer_redraws_when_a_scale_changes(page: Any, shot: Any) -> None:
    page.goto("/priors")
    page.wait_for_selector("#priors-root[data-ready=true]")
    card = page.locator("#coverage-card")
    assert "have no prior with IoU ≥ 0.5" in page.locator("#coverage-words").inner_text()
    before = card.get_attribute("data-share-matched")
    version = int(card.get_attribute("data-version") or 0)
    # Hovering the image draws the cell's priors without a request.
    box = page.locator("#prior-figure .nsewdrag").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("/cell \\(\\d+, \\d+\\)/.test(document.getElementById('cell-info').textContent)")
    shot(page, "priors")
    started = time.monotonic()
    page.fill('input[name="scales.0"]', "14")
    page.wait_for_function(f"Number(document.getElementById('coverage-card').dataset.version) > {version}")
    elapsed = time.monotonic() - started
    assert card.get_attribute("data-share-matched") != before
    assert elapsed < 2.0, f"redraw took {elapsed:.2f} s"
    shot(page, "priors_scale_14")


def test_suggest_priors_fills_the_draft_and_redraws(page: Any, shot: Any) -> None:
    page.goto("/priors")
    page.wait_for_selector("#priors-root[data-ready=true]")
    card = page.locator("#coverage-card")
    version = int(card.get_attribute("data-version") or 0)
    before = float(card.get_attribute("data-share-matched") or 0)
    page.fill("#suggest-per-cell", "6")
    page.click("#suggest-button")
    page.wait_for_selector("#suggest-result[data-version='1']", timeout=60_000)
    page.wait_for_function(f"Number(document.getElementById('coverage-card').dataset.version) > {version}")
    result = page.locator("#suggest-result")
    assert float(result.get_attribute("data-share-after") or 0) >= 0.995
    assert page.input_value('input[name="scales.0"]') != "10" and page.input_value("#ratios") != "0.4, 0.8, 1.2"
    assert float(card.get_attribute("data-share-matched") or 0) > before  # the validation images too
    assert page.locator("#suggest-buckets tbody tr").count() >= 3
    shot(page, "priors_suggested")
    page.click("#suggest-undo")
    page.wait_for_function("document.getElementById('ratios').value === '0.4, 0.8, 1.2'")
    assert result.is_hidden()
