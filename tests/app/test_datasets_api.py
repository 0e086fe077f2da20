"""The dataset registry over REST (in-process app): uploads imported in the background, the
validation report and its problems, deletion, and the dataset browser on an imported dataset."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from ssd.datasets.export import export_generator

# One tiny dataset per real-world layout, shared with the reader and CLI tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ssd" / "datasets"))
from dataset_layouts import LAYOUTS, Layout  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def zip_folder(folder: Path, *, extra: dict[str, bytes] | None = None) -> bytes:
    """A zip of ``folder``'s files (paths relative to it), plus ``extra`` members as named."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def coco_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """20 generated images as COCO (15 train, 5 val), with three faults in the first train
    image's annotations: a box reaching past the border (clipped), an unknown class and a box
    outside the image (dropped); plus an annotation naming a missing image (dropped)."""
    out = export_generator(tmp_path_factory.mktemp("coco") / "digits", "coco", images=20, val_fraction=0.25, seed=0)
    path = out / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    first = data["images"][0]["id"]
    data["annotations"] += [
        {"id": 9001, "image_id": first, "category_id": 1, "bbox": [100, 100, 60, 60], "iscrowd": 0},
        {"id": 9002, "image_id": first, "category_id": 99, "bbox": [10, 10, 20, 20], "iscrowd": 0},
        {"id": 9003, "image_id": first, "category_id": 2, "bbox": [500, 500, 20, 20], "iscrowd": 0},
        {"id": 9004, "image_id": 777, "category_id": 2, "bbox": [5, 5, 20, 20], "iscrowd": 0},
    ]
    data["images"].append({"id": 777, "file_name": "gone.png", "width": 128, "height": 128})
    path.write_text(json.dumps(data))
    return zip_folder(out)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """An app whose jobs stay queued (max_concurrent_jobs=0)."""
    settings = Settings(data_dir=tmp_path / "data", max_concurrent_jobs=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def upload(client: TestClient, data: bytes, filename: str = "digits.zip", **fields: str) -> Any:
    return client.post("/api/datasets", files={"file": (filename, data, "application/zip")}, data=fields)


def wait(client: TestClient, dataset_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll GET /api/datasets/{id} until the import is not ``importing``."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/api/datasets/{dataset_id}").json()
        if body["status"] != "importing":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


@pytest.fixture
def ready(client: TestClient, coco_zip: bytes) -> dict[str, Any]:
    """The fault-laden COCO zip imported as ``digits``."""
    answer = upload(client, coco_zip, name="digits")
    assert answer.status_code == 202, answer.text
    return wait(client, answer.json()["id"])


def test_an_upload_is_accepted_then_imported_in_the_background(client: TestClient, coco_zip: bytes) -> None:
    answer = upload(client, coco_zip, name="digits", format="coco")
    assert answer.status_code == 202
    started = answer.json()
    assert started["status"] == "importing" and started["name"] == "digits" and started["source"] == "digits.zip"
    assert set(started["progress"]) == {"done", "total", "stage"}
    # Importing: not in the registry, but listed by this server and found by the upload's id.
    body = wait(client, started["id"])
    assert body["status"] == "ready", body.get("error")
    assert body["id"] == started["id"]  # the 202's id is the dataset's for good
    assert body["format"] == "coco" and body["classes"] == [str(d) for d in range(10)]
    assert body["counts"]["images"] == 20 and body["splits"] == {"train": 15, "val": 5}
    report = body["report"]
    assert report["dropped"]["boxes"] == {**report["dropped"]["boxes"], "unknown_class": 1, "outside_image": 1}
    assert report["dropped"]["images"]["missing_image"] == 1 and report["kept_with_notes"]["clipped"] == 1
    reasons = {r["reason"]: r for r in report["reasons"]}
    assert reasons["clipped"]["count"] == 1 and "clipped" in reasons["clipped"]["description"]
    assert report["problems_total"] == 4 == len(report["problems"])
    # The registered dataset: listed once, by its id or its name.
    listed = [d for d in client.get("/api/datasets").json() if d["name"] == "digits"]
    assert [d["status"] for d in listed] == ["ready"]
    assert listed[0]["id"] == body["id"] == client.get("/api/datasets/digits").json()["id"]
    assert client.get("/api/datasets").json()[0]["id"] == "mnist"
    assert not any((client.app.state.settings.data_dir / "uploads").iterdir())  # type: ignore[attr-defined]


def test_the_report_lists_each_problem_with_its_file_and_draws_it(client: TestClient, ready: dict[str, Any]) -> None:
    problems = {p["reason"]: p for p in ready["report"]["problems"]}
    assert problems["missing_image"]["file"] == "annotations/instances_train.json"
    assert problems["missing_image"]["viewable"] is False  # the image was dropped: nothing to draw
    clipped = problems["clipped"]
    assert clipped["viewable"] and clipped["drawable"] and clipped["box"] == [100, 100, 60, 60]
    page = client.get(f"/api/datasets/{ready['id']}/problems", params={"reason": "outside_image"}).json()
    assert page["total"] == 1 and page["items"][0]["reason"] == "outside_image"
    view = client.get(f"/api/datasets/{ready['id']}/problems/{clipped['index']}").json()
    assert view["box_xyxy"] == [100.0, 100.0, 160.0, 160.0]  # COCO [x, y, w, h] as pixel corners
    assert view["image"]["width"] == 128 and view["image"]["file"].endswith(".png")
    figure = go.Figure(view["figure"])  # validates every attribute
    assert figure.layout.xaxis.range[1] > 160  # the axes reach the part outside the image
    assert any("clipped" in (t.text or "") for t in figure.data if t.type == "scatter")
    dropped = client.get(f"/api/datasets/{ready['id']}/problems/{problems['missing_image']['index']}").json()
    assert dropped["figure"] is None and dropped["image"] is None
    assert client.get(f"/api/datasets/{ready['id']}/problems/99").status_code == 404
    assert client.get(f"/api/datasets/{ready['id']}/problems?reason=nonsense").status_code == 422
    assert client.get("/api/datasets/mnist").json()["report"] is None


@pytest.mark.parametrize("layout", LAYOUTS, ids=[layout.id for layout in LAYOUTS])
def test_each_real_layout_uploads_detected_and_named(client: TestClient, tmp_path: Path, layout: Layout) -> None:
    """A zip of each layout (VOC's lowercase annotations/, annots/, labelImg's XML beside the
    images; YOLO's Ultralytics, Roboflow, labelImg and Label Studio; Roboflow's COCO) is ready
    with the counts worked out in dataset_layouts.py, with its format detected and named."""
    layout.write(tmp_path / layout.id)
    data = zip_folder(tmp_path / layout.id)
    for fmt in ("auto", layout.format):
        answer = upload(client, data, filename=f"{layout.id}.zip", name=f"{layout.id}-{fmt}", format=fmt)
        assert answer.status_code == 202, answer.text
        body = wait(client, answer.json()["id"])
        assert body["status"] == "ready", body.get("error")
        assert body["format"] == layout.format and body["classes"] == layout.classes
        assert (body["counts"]["images"], body["counts"]["boxes"]) == (layout.images, layout.boxes)
        assert {r: n for r, n in body["report"]["dropped"]["images"].items() if n} == layout.dropped
        assert body["splits"] == layout.splits or (
            layout.splits is None and sum(body["splits"].values()) == layout.images
        )


def test_a_zip_climbing_out_fails_naming_the_member(client: TestClient, tmp_path: Path) -> None:
    folder = export_generator(tmp_path / "small", "coco", images=4, seed=1)
    answer = upload(client, zip_folder(folder, extra={"../evil.txt": b"x"}), filename="evil.zip")
    assert answer.status_code == 202
    body = wait(client, answer.json()["id"])
    assert body["status"] == "failed"
    assert "evil.zip" in body["error"] and "../evil.txt" in body["error"] and "'..'" in body["error"]
    # Listed as failed (this server only), never registered; deleting forgets it.
    assert [d["status"] for d in client.get("/api/datasets").json() if d["name"] == "evil"] == ["failed"]
    assert client.delete(f"/api/datasets/{body['id']}").status_code == 204
    assert client.get(f"/api/datasets/{body['id']}").status_code == 404
    assert not list((client.app.state.settings.data_dir / "datasets").glob(".tmp-*"))  # type: ignore[attr-defined]


def test_a_file_that_is_not_a_zip_is_415_and_leaves_nothing(client: TestClient) -> None:
    answer = upload(client, b"name,x,y\nseven,1,2\n" * 10, filename="labels.csv")
    assert answer.status_code == 415 and "not a .zip" in answer.json()["detail"]
    assert upload(client, b"PK").status_code == 415  # too short to be one
    assert not any((client.app.state.settings.data_dir / "uploads").iterdir())  # type: ignore[attr-defined]
    assert [d["id"] for d in client.get("/api/datasets").json()] == ["mnist"]


def test_an_upload_over_the_limit_is_413_on_that_route_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", max_dataset_bytes=100_000, max_upload_bytes=1000)
    with TestClient(create_app(settings)) as client:
        big = b"PK\x03\x04" + bytes(200_000)
        assert upload(client, big).status_code == 413  # by Content-Length, before the body is read
        # Within the form's framing allowance of the middleware, the upload itself counts the bytes.
        answer = upload(client, b"PK\x03\x04" + bytes(100_000))
        assert answer.status_code == 413 and "SSDBOARD_MAX_DATASET_BYTES" in answer.json()["detail"]
        assert not any((settings.data_dir / "uploads").iterdir())
        # 80 kB: over the image-upload limit (and its framing allowance), under the dataset limit.
        assert upload(client, b"PK\x03\x04" + bytes(80_000)).status_code == 202  # a broken zip: it fails later
        files = {"file": ("x.png", bytes(80_000), "image/png")}
        assert client.post("/api/jobs/abc/detections/upload", files=files).status_code == 413


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"name": "bad\x07name"}, ["body", "name"]),
        ({"name": "mnist"}, None),  # the built-in's name: 409 below
        ({"format": "pascal"}, ["body", "format"]),
        ({"val_fraction": "1.5"}, ["body", "val_fraction"]),
    ],
)
def test_bad_form_fields_name_the_field(client: TestClient, coco_zip: bytes, fields: dict[str, str], loc: Any) -> None:
    answer = upload(client, coco_zip, **fields)
    if loc is None:
        assert answer.status_code == 409 and "name" in answer.json()["detail"]
    else:
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == loc


def test_names_are_unique_and_a_file_is_required(client: TestClient, coco_zip: bytes, ready: dict[str, Any]) -> None:
    answer = upload(client, coco_zip, name="digits")
    assert answer.status_code == 409 and answer.json()["detail"].startswith("name: a dataset named 'digits'")
    assert upload(client, coco_zip).status_code == 409  # the default name is the zip's: digits
    missing = client.post("/api/datasets", data={"name": "x"}, files={"other": ("a.txt", b"x", "text/plain")})
    assert missing.status_code == 422
    assert client.post("/api/datasets", json={"name": "x"}).status_code == 415  # multipart only


def test_delete_refuses_mnist_and_a_dataset_a_queued_job_uses(client: TestClient, ready: dict[str, Any]) -> None:
    assert client.delete("/api/datasets/mnist").status_code == 409
    assert client.delete("/api/datasets/nosuchdataset").status_code == 404
    job = client.post("/api/jobs", json={"data": {"dataset": "digits"}, "train": {"steps": 2}}).json()
    assert job["status"] == "queued" and job["config"]["data"]["dataset"] == ready["id"]
    answer = client.delete("/api/datasets/digits")
    assert answer.status_code == 409 and job["id"] in answer.json()["detail"]
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 200
    assert client.delete("/api/datasets/digits").status_code == 204
    assert client.get(f"/api/datasets/{ready['id']}").status_code == 404
    assert client.get("/api/datasets/val/images", params={"dataset": ready["id"]}).status_code == 404


def test_the_browser_shows_an_imported_dataset(client: TestClient, ready: dict[str, Any]) -> None:
    dataset = ready["id"]
    page = client.get("/api/datasets/val/images", params={"dataset": "digits", "limit": 3}).json()
    assert (page["dataset"], page["dataset_name"], page["total"], page["image_size"]) == (dataset, "digits", 5, 128)
    assert page["classes"] == [str(d) for d in range(10)]
    item = page["items"][0]
    assert item["url"] == f"/api/datasets/val/images/0.png?dataset={dataset}"
    assert item["file"].startswith("images/val/") and item["boxes"][0]["name"] == str(item["boxes"][0]["label"])
    png = client.get(item["url"])
    assert png.status_code == 200 and png.content.startswith(PNG_MAGIC)
    assert Image.open(io.BytesIO(png.content)).size == (128, 128)
    detail = client.get("/api/datasets/val/images/0", params={"dataset": dataset}).json()
    go.Figure(detail["figure"])
    assert detail["boxes"] == item["boxes"] and detail["width"] == 128
    stats = client.get("/api/datasets/train/stats", params={"dataset": dataset}).json()
    assert stats["num_images"] == 15 and sum(stats["class_counts"]) == stats["num_boxes"]
    assert list(go.Figure(stats["figures"]["classes"]).data[0].x) == [str(d) for d in range(10)]
    for url, code in [
        ("/api/datasets/val/images/5", 404),  # past the 5 validation images
        ("/api/datasets/val/images?dataset=nosuch", 404),
        ("/dataset/val/0?dataset=nosuch", 200),  # the page shell: its script shows the 404
    ]:
        assert client.get(url, params={"dataset": dataset} if "?" not in url else None).status_code == code, url


def test_statistics_and_coverage_follow_a_jobs_letterboxed_dataset(client: TestClient, ready: dict[str, Any]) -> None:
    """Boxes counted from the index (nothing decoded) equal the decoded samples' boxes, and the
    prior explorer's coverage runs on the job's imported dataset."""
    config = {"data": {"dataset": "digits", "image_size": 96, "resize": "letterbox"}, "train": {"steps": 2}}
    job = client.post("/api/jobs", json=config).json()
    service = client.app.state.dataset_browser  # type: ignore[attr-defined]
    resolved = service.config_of(job["id"])
    boxes = service.boxes(resolved, "train", 15)
    for i in range(15):
        sample = service.sample(resolved, "train", i)
        np.testing.assert_allclose(boxes.boxes[i, : boxes.counts[i]], sample.boxes, atol=1e-4)
    coverage = client.post("/api/priors/coverage", json={"job": job["id"], "n": 300}).json()
    assert coverage["num_images"] == 5 and coverage["num_gt"] == sum(len(i["boxes"]) for i in ready_val(client, job))
    explore = client.post("/api/priors/explore", json={"job": job["id"], "index": 4}).json()
    assert explore["image_size"] == 96
    assert client.post("/api/priors/explore", json={"job": job["id"], "index": 5}).status_code == 404
    mismatch = client.get("/api/datasets/val/images", params={"job": job["id"], "dataset": "mnist"})
    assert mismatch.status_code == 422 and mismatch.json()["detail"][0]["loc"] == ["query", "dataset"]


def test_the_prior_explorer_drafts_on_an_imported_dataset(client: TestClient, ready: dict[str, Any]) -> None:
    """No job: the draft's ``data.dataset`` (by name) picks the images, the class names and the
    coverage set; ``model.num_classes`` follows the dataset."""
    draft = {"preset": "default", "data": {"dataset": "digits"}}
    explore = client.post("/api/priors/explore", json={"config": draft, "index": 2}).json()
    item = client.get("/api/datasets/val/images", params={"dataset": "digits"}).json()["items"][2]
    assert explore["dataset"] == ready["id"] and explore["dataset_name"] == "digits"
    assert explore["image_url"].endswith(f"/api/datasets/val/images/2.png?dataset={ready['id']}")
    assert [gt["name"] for gt in explore["ground_truths"]] == [b["name"] for b in item["boxes"]]
    assert [gt["box"] for gt in explore["ground_truths"]] == [b["box"] for b in item["boxes"]]
    coverage = client.post("/api/priors/coverage", json={"config": draft, "n": 300}).json()
    assert coverage["num_images"] == 5  # the import's 5 validation images, not 300 generated ones
    assert client.post("/api/priors/explore", json={"config": draft, "index": 5}).status_code == 404
    unknown = client.post("/api/priors/coverage", json={"config": {"data": {"dataset": "nosuch"}}})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "config", "data", "dataset"]
    mnist = client.post("/api/priors/explore", json={"config": {"preset": "default"}, "index": 0}).json()
    assert mnist["dataset"] == "mnist" and mnist["ground_truths"][0]["name"] == str(mnist["ground_truths"][0]["label"])


def ready_val(client: TestClient, job: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/api/datasets/val/images", params={"job": job["id"]}).json()["items"]
    return items


def test_a_restart_sweeps_what_an_unfinished_upload_left(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    leftover = data_dir / "uploads" / "upload-abc123"
    leftover.mkdir(parents=True)
    (leftover / "big.zip").write_bytes(b"PK\x03\x04")
    half = data_dir / "datasets" / ".tmp-0123456789ab"
    half.mkdir(parents=True)
    (half / "index.json").write_text("{}")
    old = time.time() - 3600
    os.utime(half, (old, old))
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        assert [d["id"] for d in client.get("/api/datasets").json()] == ["mnist"]
    assert not leftover.exists() and not half.exists()


def test_the_pages_of_a_dataset(client: TestClient, ready: dict[str, Any]) -> None:
    for url in (
        "/datasets",
        f"/datasets/{ready['id']}",
        "/datasets/digits",
        "/datasets/mnist",
        "/datasets/x/problems/0",
    ):
        answer = client.get(url)
        expected = 404 if url.startswith("/datasets/x") else 200
        assert answer.status_code == expected, url
    html = client.get("/datasets").text
    assert 'href="/datasets" id="nav-datasets" aria-current="page"' in html and "2 GiB" in html
    assert '<script type="module" src="/static/js/pages/datasets.js"></script>' in html
    assert "pages/dataset_problem.js" in client.get(f"/datasets/{ready['id']}/problems/0").text


def test_a_chunked_upload_is_streamed_to_the_data_dir_and_cut_at_the_limit(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", max_dataset_bytes=200_000)
    boundary = "xyzzy"

    def body(size: int) -> Iterator[bytes]:  # no Content-Length: the bytes are counted as they come
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nstreamed\r\n'.encode()
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="s.zip"\r\n\r\n'.encode()
        yield b"PK\x03\x04"
        for _ in range(size // 10_000):
            yield bytes(10_000)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    with TestClient(create_app(settings)) as client:
        service = client.app.state.datasets  # type: ignore[attr-defined]
        opened = service.begin_upload("../../x.zip", {})
        assert opened.path.parent.parent == settings.data_dir / "uploads" and opened.path.name == "x.zip"
        opened.discard()
        assert client.post("/api/datasets", content=body(400_000), headers=headers).status_code == 413
        assert not any((settings.data_dir / "uploads").iterdir())
        answer = client.post("/api/datasets", content=body(50_000), headers=headers)
        assert answer.status_code == 202 and answer.json()["name"] == "streamed"
        assert answer.json()["bytes"] == 50_004


def test_imports_and_the_browser_never_load_tensorflow(tmp_path: Path, coco_zip: bytes) -> None:
    """In a fresh interpreter: an upload, its import, the report, a problem and the browser."""
    (tmp_path / "d.zip").write_bytes(coco_zip)
    script = f"""
import sys, time
from pathlib import Path
from fastapi.testclient import TestClient
from app.main import create_app
from app.settings import Settings
with TestClient(create_app(Settings(data_dir=Path({str(tmp_path / "data")!r})))) as c:
    files = {{"file": ("d.zip", Path({str(tmp_path / "d.zip")!r}).read_bytes(), "application/zip")}}
    upload_id = c.post("/api/datasets", files=files).json()["id"]
    while (d := c.get(f"/api/datasets/{{upload_id}}").json())["status"] == "importing":
        time.sleep(0.05)
    assert d["status"] == "ready", d
    for url in (f"/api/datasets/{{d['id']}}/problems/0", "/api/datasets/val/images/0?dataset=d",
                "/api/datasets/train/stats?dataset=d"):
        assert c.get(url).status_code == 200, url
assert "tensorflow" not in sys.modules
"""
    env = {**os.environ, "SSDBOARD_ALLOWED_HOSTS": "testserver"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
