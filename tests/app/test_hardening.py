"""What an outside probe found (the hardening issue), each refused now: cross-site writes and DNS
rebinding, wrong content types, unbounded evaluations, lone surrogates and NUL, bad tokens,
decompression bombs, Python reprs in messages, HEAD answered 405."""

from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError
from test_detections import fake_data

import app.services.detections as inference
from app.main import create_app
from app.settings import Settings
from ssd.config import from_dict
from ssd.data import Sample
from ssd.datasets.source import no_regions

TINY = {"train": {"steps": 2}}


def _settings(tmp_path: Path, **kwargs: Any) -> Settings:
    # max_concurrent_jobs=0: submitted jobs stay queued, nothing trains.
    return Settings(data_dir=tmp_path / "data", max_concurrent_jobs=0, **kwargs)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path))) as test_client:
        yield test_client


def job_count(client: TestClient) -> int:
    return len(client.get("/api/jobs").json())


# ---------------------------------------------------------------------------- 1. cross-site writes


def test_a_foreign_pages_form_post_creates_nothing(client: TestClient) -> None:
    """The probe's attack: a form POST from another site with an empty urlencoded body."""
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"}
    response = client.post("/api/jobs", content=b"", headers=form)
    assert response.status_code == 403 and "evil.example" in response.json()["detail"]
    # The same form without Origin (an old browser, a proxy that strips it): the content type alone refuses it.
    response = client.post("/api/jobs", content=b"", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415 and "application/json" in response.json()["detail"]
    for media in ("text/plain", "multipart/form-data; boundary=x"):
        assert client.post("/api/jobs", content=b"{}", headers={"Content-Type": media}).status_code == 415
    assert job_count(client) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},  # another local server's page: another origin
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_state_changes_are_403_on_every_write(client: TestClient, headers: dict[str, str]) -> None:
    job = client.post("/api/jobs", json=TINY).json()
    for method, path in [
        ("POST", "/api/jobs"),
        ("POST", f"/api/jobs/{job['id']}/cancel"),
        ("DELETE", f"/api/jobs/{job['id']}"),
    ]:
        response = client.request(method, path, json=TINY if method == "POST" else None, headers=headers)
        assert response.status_code == 403, (method, path, response.text)
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "queued"  # reads stay open
    assert job_count(client) == 1


def test_the_dashboards_own_pages_and_scripts_still_write(client: TestClient, tmp_path: Path) -> None:
    same = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/jobs", json=TINY, headers=same).status_code == 201
    assert client.post("/api/jobs", json=TINY).status_code == 201  # curl, httpx: no Origin at all
    job = client.post("/api/jobs", json=TINY, headers={"Content-Type": "application/json; charset=utf-8"}).json()
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 200  # no body, no content type: fine
    settings = _settings(tmp_path / "cors", cors_origins=["https://team.example"])
    with TestClient(create_app(settings)) as cors:
        assert cors.post("/api/jobs", json=TINY, headers={"Origin": "https://team.example"}).status_code == 201
        assert cors.post("/api/jobs", json=TINY, headers={"Origin": "https://evil.example"}).status_code == 403


def test_a_body_without_content_type_is_415(client: TestClient) -> None:
    response = client.post("/api/jobs", content=json.dumps(TINY).encode(), headers={"Content-Type": ""})
    assert response.status_code == 415
    assert job_count(client) == 0


def test_dns_rebinding_host_names_are_refused(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/api/jobs", headers={"Host": "rebind.evil.example"}).status_code == 400
    assert client.post("/api/jobs", json=TINY, headers={"Host": "rebind.evil.example:8000"}).status_code == 400
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "127.0.0.1"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    named = _settings(tmp_path / "named", allowed_hosts=["ssdboard.example.org"])
    with TestClient(create_app(named), base_url="http://ssdboard.example.org") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"Host": "other.example.org"}).status_code == 400
    # Bound to every interface with names listed (a deployment): those names, and the loopback
    # names still (a container's health check asks for 127.0.0.1); nothing else.
    deployed = Settings(
        data_dir=tmp_path / "dep", host="0.0.0.0", allowed_hosts=["ssdboard.example.org"], token="t" * 16
    )
    with TestClient(create_app(deployed), base_url="http://127.0.0.1:8000") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"Host": "ssdboard.example.org"}).status_code == 200
        assert c.get("/healthz", headers={"Host": "rebind.evil.example"}).status_code == 400
    # Bound to every interface with no names given (the Docker image): any Host, the token guards writes.
    anywhere = Settings(data_dir=tmp_path / "any", host="0.0.0.0", allowed_hosts=[], token="t0ken" * 4)
    with TestClient(create_app(anywhere), base_url="http://10.1.2.3:8000") as c:
        assert c.get("/healthz").status_code == 200


# ---------------------------------------------------------------------------- 3. bounded evaluations


@dataclass(frozen=True, eq=False)
class _Dets:
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


class _Recorder:
    """A predictor that records how many images each call got, at 1024 px."""

    def __init__(self, size: int) -> None:
        self.config = from_dict({"data": {"image_size": size, "val_images": 64}})
        self.calls: list[int] = []

    def predict(self, images: np.ndarray, batch_size: int = 32) -> list[_Dets]:
        self.calls.append(len(images))
        assert len(images) <= batch_size  # the model never sees more than one bounded batch
        empty = np.zeros((0, 4), np.float32)
        return [_Dets(empty, np.zeros(0, np.float32), np.zeros(0, np.int32)) for _ in images]


class _Blank:
    def __init__(self, size: int) -> None:
        self.size = size

    def __getitem__(self, index: int) -> Sample:
        return Sample(
            np.zeros((self.size, self.size, 3), np.uint8), np.zeros((0, 4), np.float32), np.zeros(0, np.int32)
        )

    def ignore_regions(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return no_regions()


@pytest.mark.parametrize(("size", "per_call"), [(1024, 1), (512, 2), (128, 32)])
def test_evaluation_predicts_in_bounded_batches(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, size: int, per_call: int
) -> None:
    """n=64 at 1024 px was one 64-image stack and one call (21 GiB); now a pixel budget per call."""
    recorder = _Recorder(size)
    monkeypatch.setattr(inference, "load_detector", lambda directory, weights="best": recorder)
    monkeypatch.setattr(inference, "resolve", fake_data(_Blank(size)))
    job_id = _job_with_checkpoint(client, recorder.config.to_dict())
    response = client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 64})
    assert response.status_code == 200, response.text
    assert sum(recorder.calls) == 64 and max(recorder.calls) == per_call
    assert inference.batch_size(size * size) == per_call


def test_evaluation_n_is_bounded_by_a_setting(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, max_eval_images=50))) as c:
        job_id = _job_with_checkpoint(c, from_dict({}).to_dict())
        response = c.get(f"/api/jobs/{job_id}/evaluation", params={"n": 51})
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["loc"] == ["query", "n"] and "SSDBOARD_MAX_EVAL_IMAGES" in error["msg"]


def _job_with_checkpoint(client: TestClient, config: dict[str, Any]) -> str:
    store = client.app.state.store  # type: ignore[attr-defined]
    job, _ = store.create_job(name="eval", config=config, total_steps=2)
    store.set_status(job.id, "succeeded")
    job_dir = Path(client.app.state.settings.jobs_dir) / job.id  # type: ignore[attr-defined]
    job_dir.mkdir(parents=True)
    (job_dir / "model.weights.h5").write_bytes(b"stub")
    return job.id


# ---------------------------------------------------------------------------- 5. surrogates and NUL


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ('{"preset": "\\ud800"}', ["body", "preset"]),
        ('{"name": "\\ud800"}', ["body", "name"]),
        ('{"name": "a\\u0000b"}', ["body", "name"]),
        ('{"name": "two\\nlines"}', ["body", "name"]),
        ('{"name": "gpj.\\u202eexe"}', ["body", "name"]),  # a right-to-left override: reads as "exe.jpg"
        ('{"train": {"schedule": "\\udfff"}}', ["body", "train", "schedule"]),
        ('{"model": {"source_layers": ["\\ud800"]}}', ["body", "model", "source_layers"]),
        ('{"\\ud800": 1}', ["body"]),
    ],
)
def test_lone_surrogates_and_control_characters_are_422(client: TestClient, body: str, loc: list[str]) -> None:
    response = client.post("/api/jobs", content=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert job_count(client) == 0


# ---------------------------------------------------------------------------- 6. settings that say one thing


@pytest.mark.parametrize("token", ["   ", "\t", " abc", "abc def", "abc\n", "short-token"])
def test_a_token_nobody_can_send_refuses_to_start(token: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="token"):
        Settings(token=token)
    env = {"SSDBOARD_TOKEN": token, "SSDBOARD_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "SSDBOARD_TOKEN" in run.stderr and "Traceback" not in run.stderr


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels (Pillow reads the header before any pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture
def upload(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(inference, "load_detector", lambda directory, weights="best": _Recorder(32))
    job_id = _job_with_checkpoint(client, from_dict({}).to_dict())

    def post(content: bytes) -> Any:
        return client.post(f"/api/jobs/{job_id}/detections/upload", files={"file": ("x.png", content, "image/png")})

    return post


@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (5_000, 5_000)])
def test_too_many_pixels_is_413_whoever_notices(upload: Any, width: int, height: int) -> None:
    """20000^2 trips Pillow's own bomb guard (was 422); 5000^2 the server's 16-megapixel limit."""
    response = upload(_png_header(width, height))
    assert response.status_code == 413, response.text
    assert "pixels" in response.json()["detail"]


def test_upload_errors_show_no_python_object_addresses(upload: Any) -> None:
    for content in (b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, b"\xff\xd8\xff" + b"garbage" * 10):
        response = upload(content)
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert not re.search(r"0x[0-9a-fA-F]{6,}|<_io\.|object at", detail), detail


@pytest.mark.parametrize("path", ["/healthz", "/api/jobs", "/", "/api/config/schema", "/static/vendor/plotly.min.js"])
def test_head_answers_every_get_route(client: TestClient, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code == 200, path
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_head_on_an_event_stream_ends(client: TestClient) -> None:
    job = client.post("/api/jobs", json=TINY).json()
    head = client.head(f"/api/jobs/{job['id']}/events")
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")
    assert head.content == b""


# ---------------------------------------------------------------------------- second round: anonymous GETs


def _cancelled_job(client: TestClient) -> str:
    """A job that ended (queued, then cancelled): its event stream ends after its status."""
    job_id = str(client.post("/api/jobs", json=TINY).json()["id"])
    assert client.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    return job_id


E23 = "1" + "0" * 23  # 1e23 written out (an integer query parameter does not parse "1e23")


@pytest.mark.parametrize(
    "query",
    [
        f"metrics?after_step={E23}",
        f"metrics?after_step={2**63}",
        f"events?after_step={E23}",
        f"events?last_event_id={E23}",
    ],
)
def test_integer_queries_past_the_stores_64_bits_are_422(client: TestClient, query: str) -> None:
    """They were a 500 (SQLite cannot bind the integer) or a stream with an empty body."""
    response = client.get(f"/api/jobs/{_cancelled_job(client)}/{query}")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", query.split("?")[1].split("=")[0]]


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("", {"Last-Event-ID": E23}),
        ("", {"Last-Event-ID": "99"}),
        ("?last_event_id=99", {}),
        (f"?after_step={2**63 - 1}", {}),
    ],
)
def test_a_stream_resumed_after_everything_still_tells_the_status(
    client: TestClient, query: str, headers: dict[str, str]
) -> None:
    """An id or step past the job's log means the client has everything: it still learns the status."""
    text = client.get(f"/api/jobs/{_cancelled_job(client)}/events{query}", headers=headers).text
    assert text.count("event: ") == 1 and "event: status" in text and '"status":"cancelled"' in text, text


@pytest.mark.parametrize("view", ["detections", "evaluation"])
def test_the_views_of_a_job_whose_dataset_was_deleted_are_409(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, view: str
) -> None:
    predictor = _Recorder(128)
    predictor.config = from_dict({"data": {"dataset": "d0123456789a"}})  # no longer in the registry
    monkeypatch.setattr(inference, "load_detector", lambda directory, weights="best": predictor)
    job_id = _job_with_checkpoint(client, predictor.config.to_dict())
    response = client.get(f"/api/jobs/{job_id}/{view}")
    assert response.status_code == 409, response.text
    assert "d0123456789a" in response.json()["detail"] and "deleted" in response.json()["detail"]


# ---------------------------------------------------------------------------- second round: smaller


@pytest.mark.parametrize("notes", ["a\u0000b", "bell\u0007", "\u001b[31mred", "\ud800"])
def test_notes_with_control_characters_are_422(client: TestClient, notes: str) -> None:
    job_id = _cancelled_job(client)
    body = json.dumps({"notes": notes}).encode()
    response = client.patch(f"/api/jobs/{job_id}", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "notes"]
    assert client.patch(f"/api/jobs/{job_id}", json={"notes": "one\r\n\ttwo"}).json()["notes"] == "one\r\n\ttwo"


@pytest.mark.parametrize("query", ["q=%00", "q=a%1Bb", "tag=%00", "dataset=%07"])
def test_job_filters_with_control_characters_are_422(client: TestClient, query: str) -> None:
    """``?q=%00`` matched every job (SQLite's LIKE stops at NUL)."""
    _cancelled_job(client)
    response = client.get(f"/api/jobs?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", query.split("=")[0]]


def test_a_token_shorter_than_16_characters_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(token="fifteen-chars-x")
    assert Settings(token="sixteen-chars-xy").token is not None


# ---------------------------------------------------------------------------- dataset imports


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _png(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def _imported(client: TestClient, data: bytes, name: str = "probe") -> dict[str, Any]:
    """Upload ``data`` as a dataset zip and wait until its import is no longer ``importing``."""
    answer = client.post("/api/datasets", files={"file": (f"{name}.zip", data, "application/zip")}, data={"name": name})
    assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 60
    while (body := client.get(f"/api/datasets/{answer.json()['id']}").json())["status"] == "importing":
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return dict(body)


def test_a_yaml_alias_bomb_fails_its_import_at_once_and_briefly(client: TestClient) -> None:
    """The probe's 388-byte data.yaml (nine levels of nine aliases) cost 12.5 s of CPU and made
    GET /api/datasets 312 MB: its error quoted the expansion."""
    levels = ["a: &a [" + ",".join(["lol"] * 9) + "]"]
    levels += [f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    bomb = "\n".join([*levels, "names: *i", "train: images", "val: images", ""]).encode()
    body = _imported(client, _zip({"data.yaml": bomb, "images/a.png": _png()}))
    assert body["status"] == "failed" and "alias" in body["error"] and len(body["error"]) < 500
    assert len(client.get("/api/datasets").content) < 10_000


def _coco(files: list[str], classes: list[str], sizes: dict[str, int] | None = None) -> bytes:
    """A COCO file naming ``files`` (40x30, or square of ``sizes[file]``; one box on the first) and ``classes``."""
    side = sizes or {}
    return json.dumps(
        {
            "images": [
                {"id": k + 1, "file_name": f, "width": side.get(f, 40), "height": side.get(f, 30)}
                for k, f in enumerate(files)
            ],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "iscrowd": 0}],
            "categories": [{"id": k + 1, "name": name} for k, name in enumerate(classes)],
        }
    ).encode()  # json.dumps escapes the lone surrogate: "\ud800" is valid JSON


def _every_view_answers(client: TestClient, dataset_id: str) -> None:
    for path in ("", "/problems", "/problems/0"):
        response = client.get(f"/api/datasets/{dataset_id}{path}")
        assert response.status_code == 200, (path, response.text)
    assert client.get("/api/datasets/train/images", params={"dataset": dataset_id}).status_code == 200
    assert client.get("/api/datasets").status_code == 200


def test_a_lone_surrogate_in_a_coco_file_name_drops_that_image_and_every_view_answers(client: TestClient) -> None:
    """The probe's import was ready, then the dataset, its problems and problem 0 were 500s for good."""
    data = _zip({"ann.json": _coco(["ok.png", "\ud800.png"], ["cat"]), "ok.png": _png()})
    body = _imported(client, data)
    assert body["status"] == "ready" and body["counts"]["images"] == 1
    problem = client.get(f"/api/datasets/{body['id']}/problems/0").json()["problem"]
    assert (problem["reason"], problem["image"]) == ("bad_file_name", "\\ud800.png")
    _every_view_answers(client, body["id"])


def test_an_import_from_before_the_name_rule_still_answers(client: TestClient, tmp_path: Path) -> None:
    """What an older import wrote (a lone surrogate in its report and its index) cannot 500 the API."""
    body = _imported(client, _zip({"ann.json": _coco(["ok.png", "gone.png"], ["cat"]), "ok.png": _png()}))
    folder = next((tmp_path / "data").rglob(f"datasets/{body['id']}"))
    for name, old, new in [("report.json", '"gone.png"', '"\\ud800.png"'), ("index.json", '"cat"', '"c\\ud800t"')]:
        text = (folder / name).read_text()
        assert old in text
        (folder / name).write_text(text.replace(old, new))
    with TestClient(create_app(_settings(tmp_path))) as fresh:  # nothing of it cached
        _every_view_answers(fresh, body["id"])
        page = fresh.get("/api/datasets/train/images", params={"dataset": body["id"]}).json()
        assert page["classes"] == ["c\\ud800t"]


def test_a_class_name_with_nul_and_rlo_fails_the_import_naming_it(client: TestClient) -> None:
    data = _zip({"ann.json": _coco(["ok.png"], ["c\x00a\u202et"]), "ok.png": _png()})
    body = _imported(client, data)
    assert body["status"] == "failed"
    assert body["error"].startswith("ann.json: class 0 'c\\x00a\\u202et' holds a control character (\\x00)")


def test_images_over_the_pixel_bound_are_dropped_at_import(client: TestClient) -> None:
    """The probe's COCO zip: two 12000x12000 PNGs (17 KB each) imported ready, and one anonymous
    page of the browser took the server from 127 MB to 1.5 GB."""
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, format="PNG")
    bomb = buffer.getvalue()
    files = ["ok.png", "bomb1.png", "bomb2.png"]
    ann = _coco(files, ["cat"], {"bomb1.png": 12000, "bomb2.png": 12000})
    members = {"ann.json": ann, "ok.png": _png(), "bomb1.png": bomb, "bomb2.png": bomb}
    body = _imported(client, _zip(members))
    assert body["status"] == "ready" and body["counts"]["images"] == 1, body
    assert body["report"]["dropped"]["images"]["too_large_image"] == 2
    reasons = {r["reason"]: r for r in body["report"]["reasons"]}
    assert "image dropped" in reasons["too_large_image"]["description"]
    assert client.get("/api/datasets/train/images", params={"dataset": body["id"]}).status_code == 200
