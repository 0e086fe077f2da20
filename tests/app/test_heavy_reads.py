"""What an anonymous reader can make the server compute: model runs and export conversions are
bounded (503 with Retry-After beyond ``max_heavy_reads``), stop when their client leaves, are
cached by what determines them, and a HEAD runs none of them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from test_detections import (
    CONFIG,
    EVAL_GTS,
    Dets,
    FakeDataset,
    StubPredictor,
    eval_by_image,
    fake_data,
    jobs_dir,
    make_job,
)

import app.services.detections as detections_module
from app.domain import ClientGone
from app.main import create_app
from app.services.heavy import HeavyWork
from app.settings import Settings


def by_image(image: np.ndarray) -> Dets:
    """The evaluation stub's detections, for the 8 images that repeat the 4 hand-made ones."""
    first = image.copy()
    first[0, 0, 0] %= len(EVAL_GTS)
    return eval_by_image(first)


class SlowPredictor(StubPredictor):
    """The evaluation stub, ``seconds`` a call."""

    def __init__(self, seconds: float) -> None:
        super().__init__(CONFIG, by_image)
        self.seconds = seconds

    def predict(self, images: np.ndarray, batch_size: int = 32) -> list:  # type: ignore[type-arg]
        time.sleep(self.seconds)
        return super().predict(images, batch_size)


@pytest.fixture
def one_image_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The viewer's data is the four hand-made images (repeated up to val_images = 8), one per model call."""
    monkeypatch.setattr(detections_module, "resolve", fake_data(FakeDataset(EVAL_GTS)))
    monkeypatch.setattr(detections_module, "batch_size", lambda pixels: 1)


def use(monkeypatch: pytest.MonkeyPatch, predictor: StubPredictor) -> StubPredictor:
    monkeypatch.setattr(detections_module, "load_detector", lambda directory, weights="best": predictor)
    return predictor


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", max_heavy_reads=1))) as test_client:
        yield test_client


def heavy(client: TestClient) -> HeavyWork:
    return client.app.state.detections.heavy  # type: ignore[attr-defined, no-any-return]


def test_the_limit_counts_slots_and_frees_them() -> None:
    gate = HeavyWork(2, retry_after=7)
    with gate.slot("a"), gate.slot("b"):
        assert gate.active == 2
        with pytest.raises(Exception) as refused, gate.slot("c"):
            pass
        assert refused.value.retry_after == 7 and "c was not started" in str(refused.value)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError), gate.slot("d"):
        raise RuntimeError("work that fails frees its slot")
    assert gate.active == 0 and gate.refused == 1
    with pytest.raises(ValueError):
        HeavyWork(0)


def test_a_model_run_stops_between_batches_and_keeps_what_it_predicted(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, one_image_batches: None
) -> None:
    stop = threading.Event()
    predictor = use(monkeypatch, StubPredictor(CONFIG, lambda image: (stop.set(), by_image(image))[1]))
    service = client.app.state.detections  # type: ignore[attr-defined]
    job = client.app.state.store.get_job(make_job(client))  # type: ignore[attr-defined]
    with pytest.raises(ClientGone):
        service.evaluation(job, n=8, stop=stop)  # the first image's call sets stop: the second batch never runs
    assert predictor.calls == 1 and heavy(client).active == 0
    service.evaluation(job, n=8)
    assert predictor.calls == 8 and predictor.images == 8  # image 0 came from the cache


def test_beyond_the_limit_a_heavy_read_is_503_and_cached_answers_still_come(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, one_image_batches: None
) -> None:
    predictor = use(monkeypatch, StubPredictor(CONFIG, by_image))
    job_id = make_job(client)
    assert client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 2}).status_code == 200
    with heavy(client).slot("another client's evaluation"):
        busy = client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 3})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
        assert "SSDBOARD_MAX_HEAVY_READS" in busy.json()["detail"]
        assert client.get(f"/api/jobs/{job_id}/detections", params={"limit": 3}).status_code == 503
        # What needs no model run is answered: the cached images, at any score.
        assert client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 2, "score": 0.9}).status_code == 200
        assert client.get(f"/api/jobs/{job_id}/detections", params={"limit": 2}).status_code == 200
    assert predictor.images == 2 and heavy(client).refused == 2
    assert client.get(f"/api/jobs/{job_id}/evaluation", params={"n": 3}).status_code == 200


def test_head_checks_the_job_and_runs_no_model(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    predictor = use(monkeypatch, StubPredictor(CONFIG, by_image))
    job_id = make_job(client)
    for route in ("detections", "evaluation"):
        head = client.head(f"/api/jobs/{job_id}/{route}", params={"n": 8})
        assert head.status_code == 200 and head.headers["content-type"] == "application/json"
        assert client.head(f"/api/jobs/nope/{route}").status_code == 404
        running = make_job(client, "running", weights=None)
        assert client.head(f"/api/jobs/{running}/{route}").status_code == 409
    assert predictor.calls == 0


def test_export_head_converts_nothing_and_a_converted_file_needs_no_slot(client: TestClient) -> None:
    exports = client.app.state.exports  # type: ignore[attr-defined]
    exports.python = "/bin/false"  # a conversion would fail: none may start
    job_id = make_job(client)
    url = f"/api/jobs/{job_id}/export"
    head = client.head(url, params={"format": "tflite"})
    assert head.status_code == 200 and exports.conversions == 0
    assert (
        "content-length" not in head.headers
        and f"ssdboard-{job_id}-viewer.tflite" in head.headers["content-disposition"]
    )
    weights = jobs_dir(client) / job_id / "model.weights.h5"
    stat = weights.stat()
    converted = jobs_dir(client) / job_id / "exports" / f"tflite-last-{stat.st_mtime_ns}-{stat.st_size}.tflite"
    converted.parent.mkdir()
    converted.write_bytes(b"x" * 1234)
    with exports.heavy.slot("another conversion"):
        assert client.head(url, params={"format": "tflite"}).headers["content-length"] == "1234"
        assert client.get(url, params={"format": "tflite"}).content == b"x" * 1234
        busy = client.get(url, params={"format": "savedmodel"})  # this one would convert
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
    assert exports.conversions == 0 and exports.heavy is heavy(client)  # one bound for both kinds of work


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` on a real uvicorn server in a thread (so the stubs apply), on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_work_for_a_client_that_disconnects_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_image_batches: None
) -> None:
    predictor = use(monkeypatch, SlowPredictor(0.2))  # 8 images: 1.6 s
    app = create_app(Settings(data_dir=tmp_path / "data"))
    with serve(app) as url:
        client = TestClient(app)  # for the store only: the requests go over the socket
        job_id = make_job(client)
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
            httpx.get(f"{url}/api/jobs/{job_id}/evaluation", params={"n": 8}, timeout=0.5)
        deadline = time.monotonic() + 5
        while app.state.detections.heavy.active and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped_at = predictor.calls
        assert app.state.detections.heavy.active == 0 and 1 <= stopped_at < 8
        time.sleep(0.5)
        assert predictor.calls == stopped_at  # nothing ran after the stop
        done = httpx.get(f"{url}/api/jobs/{job_id}/evaluation", params={"n": 8}, timeout=30)
        assert done.status_code == 200 and done.json()["num_images"] == 8
        assert predictor.images == 8  # the images predicted before the stop were kept
