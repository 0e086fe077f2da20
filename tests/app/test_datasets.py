"""The dataset browser's JSON and pages (in-process app)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ssd.config import from_dict
from ssd.datasets.registry import Registry

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_a_page_of_images_with_boxes(client: TestClient) -> None:
    r = client.get("/api/datasets/val/images", params={"offset": 10, "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert (body["total"], body["image_size"], len(body["items"])) == (500, 128, 5)
    item = body["items"][0]
    assert item["index"] == 10 and item["url"] == "/api/datasets/val/images/10.png"
    assert 2 <= len(item["boxes"]) <= 6
    box = item["boxes"][0]
    x1, y1, x2, y2 = box["box"]
    assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128 and 0 <= box["label"] <= 9
    assert box["width"] == x2 - x1
    # The last page is short, past the end is empty.
    assert len(client.get("/api/datasets/val/images?offset=498&limit=24").json()["items"]) == 2
    assert client.get("/api/datasets/val/images?offset=600").json()["items"] == []


def test_image_png_and_detail_figure(client: TestClient) -> None:
    r = client.get("/api/datasets/train/images/3.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content.startswith(PNG_MAGIC)
    detail = client.get("/api/datasets/train/images/3").json()
    fig = go.Figure(detail["figure"])  # validates every attribute
    assert fig.data[0].type == "image"
    boxes = [t for t in fig.data if t.type == "scatter"]
    assert len(boxes) == len(detail["boxes"])
    label = detail["boxes"][0]["label"]
    assert f"digit {label}" in boxes[0].text and "px" in boxes[0].text


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("/api/datasets/val/images/500", 404),  # past the 500 validation images
        ("/api/datasets/val/images/500.png", 404),
        ("/api/datasets/val/images/-1", 422),
        ("/api/datasets/test/images", 422),
        ("/api/datasets/val/images?limit=0", 422),
        ("/api/datasets/val/images?limit=101", 422),
        ("/api/datasets/val/images?offset=-5", 422),
        ("/api/datasets/val/stats?n=0", 422),
        ("/api/datasets/val/images?job=nosuchjob", 404),
        ("/dataset/val/-1", 422),
    ],
)
def test_bad_requests_are_4xx(client: TestClient, url: str, code: int) -> None:
    assert client.get(url).status_code == code


def test_stats(client: TestClient) -> None:
    body = client.get("/api/datasets/val/stats", params={"n": 50}).json()
    assert body["num_images"] == 50
    assert sum(body["objects_per_image"]["counts"]) == 50
    assert sum(body["class_counts"]) == body["num_boxes"] >= 100
    assert body["width"]["min"] <= body["width"]["median"] <= body["width"]["max"]
    for name in ("objects", "sizes", "classes"):
        go.Figure(body["figures"][name])


def test_job_query_uses_the_jobs_data_config(client: TestClient) -> None:
    config = from_dict({"data": {"image_size": 64, "scale_range": [0.5, 1.0], "val_images": 20}}).to_dict()
    job, _ = client.app.state.store.create_job(name="small", config=config, total_steps=1)  # type: ignore[attr-defined]
    body = client.get("/api/datasets/val/images", params={"job": job.id, "limit": 2}).json()
    assert (body["image_size"], body["total"]) == (64, 20)
    assert body["items"][0]["url"] == f"/api/datasets/val/images/0.png?job={job.id}"
    assert client.get(f"/api/datasets/val/images/20?job={job.id}").status_code == 404


def test_pages_render_and_nav_links_the_browser(client: TestClient) -> None:
    for url in ("/", "/dataset", "/dataset/val/3", "/priors"):
        r = client.get(url)
        assert r.status_code == 200
        assert 'href="/dataset"' in r.text and 'href="/priors"' in r.text


def _peak_mib(call: Callable[[], object]) -> float:
    """How far this process's resident memory peaked above where it was, in MiB, during ``call``
    (Linux: writing 5 to /proc/self/clear_refs resets the peak, VmHWM)."""

    def status(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(key)

    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("the peak resident memory cannot be reset here")
    before = status("VmRSS")
    call()
    return status("VmHWM") - before


@pytest.mark.parametrize("kind", ["JPEG", "PNG"])
def test_the_browser_decodes_no_more_of_a_large_image_than_it_shows(
    client: TestClient, tmp_path: Path, kind: str
) -> None:
    """A 24-megapixel photo shown at the 128 px input: a JPEG is decoded at 1/8 of its size, a PNG
    reduced before it is resized (it was decoded whole, then copied three times: about 330 MiB)."""
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    suffix = kind.lower().replace("jpeg", "jpg")
    y, x = np.mgrid[0:4000, 0:6000]
    pixels = np.stack([x // 24 % 256, y // 16 % 256, (x + y) // 40 % 256], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(src / "images" / f"big.{suffix}", format=kind)
    del pixels, x, y
    ann = {
        "images": [{"id": 1, "file_name": f"big.{suffix}", "width": 6000, "height": 4000}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [600, 400, 1200, 800], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (src / "ann.json").write_text(json.dumps(ann))
    meta = Registry(tmp_path / "data").import_dataset(src, name="big", val_fraction=0.0)
    page: dict[str, Any] = {}

    def browse() -> None:
        page.update(client.get("/api/datasets/train/images", params={"dataset": meta["id"]}).json())

    # The whole decode of this PNG is 92 MiB (Pillow keeps RGB in 4 bytes a pixel); a JPEG's 1.4.
    assert _peak_mib(browse) < {"JPEG": 20, "PNG": 150}[kind]
    assert page["items"][0]["boxes"][0]["box"] == [12.8, 12.8, 38.4, 38.4]  # 600/6000*128, ... as before
    png = client.get(f"/api/datasets/train/images/0.png?dataset={meta['id']}")
    assert Image.open(io.BytesIO(png.content)).size == (128, 128)
