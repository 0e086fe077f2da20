"""The pages against a server with a token: asked once on the first 401, kept for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.server import stop_server

pytestmark = pytest.mark.browser

TOKEN = "browser-token-0123456789"


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory, chromium_path: Any, browser_server: Any) -> Iterator[str]:
    """A server with a token whose jobs stay queued (nothing trains)."""
    data_dir = tmp_path_factory.mktemp("ssdboard-token")
    env = {**os.environ, "SSDBOARD_TOKEN": TOKEN, "SSDBOARD_MAX_CONCURRENT_JOBS": "0"}
    url, process = browser_server(data_dir, data_dir.parent / "token-server.log", env)
    try:
        yield url
    finally:
        stop_server(process, strict=True)


def test_the_pages_ask_for_the_token_once(browser: Any, guarded_server: str, shot: Any) -> None:
    context = browser.new_context(base_url=guarded_server)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/jobs/new")
    page.wait_for_selector("form[data-ready=true]")
    page.fill('[name="train.steps"]', "5")
    page.click("#submit-job")

    dialog = page.locator("dialog.token-dialog")
    dialog.wait_for(state="visible")
    shot(page, "token_dialog")
    dialog.locator("input").fill("wrong")
    dialog.locator('button[value="ok"]').click()
    page.locator("dialog.token-dialog p", has_text="not accepted").wait_for()
    dialog.locator("input").fill(TOKEN)
    dialog.locator('button[value="ok"]').click()

    page.wait_for_url(lambda url: "/jobs/new" not in url)  # submitted: on to the job's page
    assert page.evaluate("sessionStorage.getItem('ssdboard.token')") == TOKEN
    # Cancelling the queued job needs no second prompt: the stored token travels.
    page.locator("#cancel-btn").wait_for(state="visible")
    with page.expect_response(lambda r: r.url.endswith("/cancel")) as answer:
        page.click("#cancel-btn")
    assert answer.value.status == 200
    assert page.locator("dialog.token-dialog").count() == 0
    context.close()
    assert not errors, errors
