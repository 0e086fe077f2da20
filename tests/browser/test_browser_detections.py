"""The detections viewer in the browser: open it while a job trains, move the score slider and the
class toggles (no request), the evaluation and analysis panels, an upload, and the page's matcher by hand."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

VISIBLE = "Number(document.getElementById('det-grid').dataset.visibleDetections)"
SHAPES_SHOWN = """() => [...document.querySelectorAll('.det-plot')]
  .map((div) => div.layout.shapes.filter((s) => s.name.startsWith('det:') && s.visible !== false).length)
  .reduce((a, b) => a + b, 0)"""


def set_slider(page: Any, value: float) -> None:
    page.eval_on_selector(
        "#det-score",
        "(input, value) => { input.value = value; input.dispatchEvent(new Event('input')); }",
        str(value),
    )


def png(width: int, height: int) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[10:40, 20:45] = (200, 120, 60)  # a blob for the model to look at
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_detections_page_slider_toggles_evaluation_upload(page: Any, shot: Any, tiny_job: Any) -> None:
    # The page first waits (409: no checkpoint yet), then shows a running or just-finished job.
    response = page.request.post("/api/jobs", data=tiny_job("browser-detections", 300))
    assert response.status == 201, response.text()
    job_id = response.json()["id"]
    try:
        page.goto(f"/jobs/{job_id}")
        page.click("#detections-link")
        page.wait_for_url(re.compile(rf"/jobs/{job_id}/detections$"))
        # Queued or running without a checkpoint: a clear message, then a retry finds one.
        page.wait_for_selector("#det-root[data-ready=true]")
        if not page.locator("#det-error").is_hidden():
            assert "no checkpoint yet" in page.locator("#det-error").inner_text()
            shot(page, "detections_waiting")
        page.wait_for_function(f"{VISIBLE} >= 0", timeout=180_000)
        page.wait_for_selector("#eval-card[data-ready=true]", timeout=120_000)
        assert page.locator(".det-plot").count() == 12

        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        set_slider(page, 0)
        everything = page.evaluate(VISIBLE)
        assert everything > 0, "an untrained model still scores some boxes above 0.01"
        assert page.evaluate(SHAPES_SHOWN) == everything
        shot(page, "detections_score_0")
        set_slider(page, 0.1)
        some = page.evaluate(VISIBLE)
        set_slider(page, 1)
        assert page.evaluate(VISIBLE) == 0 and page.evaluate(SHAPES_SHOWN) == 0
        assert everything >= some
        set_slider(page, 0)
        assert page.evaluate(VISIBLE) == everything
        tp_fp = page.evaluate("[...['tp', 'fp']].map((k) => Number(document.getElementById('det-grid').dataset[k]))")
        assert sum(tp_fp) == everything

        # Class toggles: all off hides every box; one class back shows only that class.
        page.click("#det-classes button:has-text('none')")
        assert page.evaluate(VISIBLE) == 0
        page.check("#det-classes input[data-class='1']")
        only_one = page.evaluate(VISIBLE)
        page.click("#det-classes button:has-text('all')")
        assert page.evaluate(VISIBLE) == everything >= only_one
        assert requests == [], f"the slider and toggles must not call the server: {requests}"

        # Evaluation panel: metrics, a 10-row AP table, PR curves and the confusion heatmap.
        assert page.locator("#ap-table tbody tr").count() == 10
        assert page.evaluate("document.getElementById('pr-chart').data.length") == 10
        assert page.evaluate("document.getElementById('confusion-chart').data[0].type") == "heatmap"
        assert "mAP@.5" in page.locator("#eval-tiles").inner_text()
        shot(page.locator("#eval-card"), "detections_evaluation")

        # Why it missed: an analysis of 8 images in a child process, its tiles and three charts.
        page.fill("#analysis-n", "8")
        page.click("#analysis-run")
        page.wait_for_selector("#analysis-card[data-ready=true]", timeout=180_000)
        tiles = page.locator("#analysis-tiles").inner_text()
        assert "AP@.5 (TIDE)" in tiles and "missed: no prior can match" in tiles
        for chart in ("tide-chart", "size-chart", "prior-recall-chart"):
            assert page.evaluate(f"document.getElementById('{chart}').data[0].type") == "bar"
        assert "8 val images" in page.locator("#analysis-status").inner_text()
        # The gallery: crops of false positives, then of the objects not found; a filter narrows them.
        doc = page.request.get(f"/api/jobs/{job_id}/analysis?n=8").json()  # the kept document: no new run
        tiles = "#gallery .gallery-tile"
        assert page.locator(tiles).count() == min(48, len(doc["false_positives"]))
        page.select_option("#gallery-kind", "miss")
        missed = [g for g in doc["ground_truths"] if g["cause"] != "found"]
        assert page.locator(tiles).count() == min(48, len(missed))
        if missed:
            k = missed[0]["class"]
            page.select_option("#gallery-class", str(k))
            assert page.locator(tiles).count() == min(48, sum(g["class"] == k for g in missed))
            href = page.locator(f"{tiles} a").first.get_attribute("href")
            assert href is not None and href.startswith("?offset=")

        shot(page.locator("#analysis-card"), "detections_analysis")

        # Upload: a 64x48 PNG; then a text file, which the server refuses with a clear message.
        page.set_input_files(
            "#upload-file", files=[{"name": "blob.png", "mimeType": "image/png", "buffer": png(64, 48)}]
        )
        page.click("#upload-run")
        page.wait_for_selector("#upload-card[data-ready=true]", timeout=60_000)
        assert "64×48 px" in page.locator("#upload-summary").inner_text()
        assert page.evaluate("document.getElementById('upload-chart').layout.xaxis.range[1]") == 64
        shot(page.locator("#upload-card"), "detections_upload")
        page.set_input_files(
            "#upload-file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": b"not an image"}]
        )
        page.click("#upload-run")
        page.wait_for_selector("#upload-error:not([hidden])")
        assert "only PNG and JPEG" in page.locator("#upload-error").inner_text()
        set_slider(page, 0.05)
        shot(page, "detections_page")
    finally:
        page.request.post(f"/api/jobs/{job_id}/cancel")  # free the worker for the other tests


def test_the_page_matcher_on_a_hand_worked_case(page: Any) -> None:
    """static/js/lib/match.js in Chromium: greedy by score, same class, IoU >= 0.5."""
    page.goto("/")
    result = page.evaluate(
        """async () => {
          const { matchDetections } = await import('/static/js/lib/match.js');
          // GT 0 class 3, GT 1 class 5, GT 2 class 1 (see tests/app/test_detections.py).
          const gts = [{ label: 3 }, { label: 5 }, { label: 1 }];
          const dets = [
            { score: 0.9, label: 3 }, { score: 0.8, label: 3 }, { score: 0.6, label: 5 },
            { score: 0.55, label: 5 }, { score: 0.4, label: 7 }, { score: 0.2, label: 3 },
          ];
          const iou = [[1, 0, 0], [1 / 3, 0, 0], [0, 0.8, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]];
          return [0.5, 0.7, 0].map((score) => matchDetections(dets, gts, iou, { score }));
        }"""
    )
    at_half, at_high, at_zero = result
    assert at_half["status"] == ["tp", "fp", "tp", "fp", None, None]
    assert at_half["gtMatched"] == [True, True, False] and at_half["matchedGt"] == [0, -1, 1, -1, -1, -1]
    assert at_high["status"] == ["tp", "fp", None, None, None, None]
    assert at_high["gtMatched"] == [True, False, False]
    assert at_zero["status"] == ["tp", "fp", "tp", "fp", "fp", "fp"]
