"""The HTML pages and their static files, without a browser (tests/browser drives Chromium)."""

from __future__ import annotations

import json
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api import pages
from app.figures.dataset import CLASS_COLORS


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(pages.router)
    pages.mount_static(app)
    return TestClient(app)


@pytest.mark.parametrize(
    ("path", "script"),
    [("/", "pages/jobs.js"), ("/jobs/new", "pages/new_job.js"), ("/jobs/3f9c1a2b4d5e", "pages/job.js")],
)
def test_pages_render_with_their_module(client: TestClient, path: str, script: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f'<script type="module" src="/static/js/{script}"></script>' in response.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", response.text), "no CDN, nothing external"


def test_job_page_loads_plotly_from_the_plotly_package(client: TestClient) -> None:
    html = client.get("/jobs/abc").text
    assert html.count(f'<script src="{pages.PLOTLY_URL}" defer></script>') == 1
    response = client.get(pages.PLOTLY_URL)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert len(response.content) == pages.PLOTLY_JS.stat().st_size
    assert b"window.Plotly" in response.content[-200:]


def test_only_pages_with_charts_load_plotly_and_the_class_colours(client: TestClient) -> None:
    """base.html's charts flag: plotly.js and the figures' class colours, on chart pages only."""
    for path in ("/", "/jobs/new"):
        html = client.get(path).text
        assert "plotly" not in html and 'id="class-colors"' not in html, path
    html = client.get("/jobs/abc").text
    found = re.search(r'<script type="application/json" id="class-colors">(.*?)</script>', html)
    assert found is not None
    assert json.loads(found.group(1)) == list(CLASS_COLORS)


def test_job_id_is_escaped(client: TestClient) -> None:
    html = client.get("/jobs/%3Cscript%3Ex").text
    assert "<script>x" not in html and "&lt;script&gt;x" in html


def test_own_static_files_are_revalidated(client: TestClient) -> None:
    response = client.get("/static/js/lib/api.js")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/css/app.css").status_code == 200
