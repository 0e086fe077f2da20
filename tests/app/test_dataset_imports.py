"""Imports outside the server's process (issue 21, items 2 and 7): a child process per import
with its own memory limit, whose running out of memory or death is the import's ``failed`` with
a reason; the import limits as settings; the queue's slot reserved before the file streams."""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from live_server import ServerProcess

from app.main import create_app
from app.settings import Settings
from benchmarks.import_memory import import_processes
from ssd.datasets.export import export_generator

# The dataset tests' writers (tests/ssd/datasets), as test_datasets_api.py reaches its layouts.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ssd" / "datasets"))
from dataset_writers import zip_folder  # noqa: E402


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Four generated images as COCO."""
    folder = export_generator(tmp_path_factory.mktemp("small") / "d", "coco", images=4, seed=1)
    return zip_folder(folder, folder.parent / "d.zip").read_bytes()


@pytest.fixture(scope="module")
def greedy_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 40 KB zip of a 30 MB COCO file whose one annotation holds 10 million empty lists: about
    640 MB once parsed (a list is 56 bytes and its pointer 8, its text 3)."""
    folder = tmp_path_factory.mktemp("greedy")
    polygons = b"[" + b"[]," * 10_000_000 + b"[]]"
    text = b'{"images": [], "categories": [], "annotations": [{"image_id": 1, "segmentation": ' + polygons + b"}]}"
    (folder / "d").mkdir()
    (folder / "d" / "instances.json").write_bytes(text)
    return zip_folder(folder / "d", folder / "d.zip").read_bytes()


def post(client: TestClient, data: bytes, name: str) -> dict[str, Any]:
    answer = client.post("/api/datasets", files={"file": (f"{name}.zip", data, "application/zip")}, data={"name": name})
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


def wait(client: TestClient, dataset_id: str, timeout: float = 60) -> tuple[dict[str, Any], set[str]]:
    """Poll until the import ends; its last state and the stages seen on the way."""
    deadline = time.monotonic() + timeout
    stages: set[str] = set()
    while True:
        body: dict[str, Any] = client.get(f"/api/datasets/{dataset_id}").json()
        if body["status"] != "importing":
            return body, stages
        stages.add(body["progress"]["stage"])
        assert time.monotonic() < deadline, body
        time.sleep(0.01)


def first_child(pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while not (found := import_processes(pid)):
        assert time.monotonic() < deadline, "no import process started"
        time.sleep(0.005)
    return found[0]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=data_dir, max_concurrent_jobs=0, import_memory_gib=0.5)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_an_import_past_its_memory_limit_fails_and_the_server_goes_on(
    client: TestClient, data_dir: Path, greedy_zip: bytes, small_zip: bytes
) -> None:
    started = post(client, greedy_zip, "greedy")
    body, stages = wait(client, started["id"])
    assert body["status"] == "failed"
    assert "ran out of its 0.5 GiB memory limit (SSDBOARD_IMPORT_MEMORY_GIB) while reading" in body["error"]
    assert "read" in stages  # the child's progress reaches the API
    assert client.get("/healthz").status_code == 200
    assert not list((data_dir / "datasets").glob(".tmp-*")) and not any((data_dir / "uploads").iterdir())
    assert not import_processes(os.getpid())  # no import process is left
    ok, _ = wait(client, post(client, small_zip, "small")["id"])
    assert ok["status"] == "ready" and ok["counts"]["images"] == 4


def test_an_import_process_killed_is_a_failed_import_with_the_reason(
    client: TestClient, data_dir: Path, small_zip: bytes
) -> None:
    started = post(client, small_zip, "killed")
    child = first_child(os.getpid())
    os.kill(child, signal.SIGKILL)
    body, _ = wait(client, started["id"])
    assert body["status"] == "failed"
    assert "the import process was killed (signal 9, SIGKILL)" in body["error"]
    assert "SSDBOARD_IMPORT_MEMORY_GIB" in body["error"]
    assert not list((data_dir / "datasets").glob(".tmp-*")) and not any((data_dir / "uploads").iterdir())
    assert wait(client, post(client, small_zip, "again")["id"])[0]["status"] == "ready"


def test_a_stopping_server_ends_its_import(data_dir: Path, greedy_zip: bytes) -> None:
    settings = Settings(data_dir=data_dir, max_concurrent_jobs=0, import_memory_gib=8)
    with TestClient(create_app(settings)) as client:
        post(client, greedy_zip, "long")
        child = first_child(os.getpid())
        time.sleep(0.5)
    assert not Path(f"/proc/{child}").exists() or b"Z" in Path(f"/proc/{child}/stat").read_bytes().split(b")")[1][:3]
    assert not import_processes(os.getpid())
    assert not list((data_dir / "datasets").glob(".tmp-*"))


def test_the_import_limits_are_settings_named_in_the_error(data_dir: Path, small_zip: bytes) -> None:
    for setting, value, message in (
        ("max_dataset_boxes", 1, "the limit of one import (SSDBOARD_MAX_DATASET_BOXES)"),
        ("max_dataset_images", 2, "the limit of one import (SSDBOARD_MAX_DATASET_IMAGES)"),
        ("max_dataset_annotation_bytes", 100, "for one annotation file (SSDBOARD_MAX_DATASET_ANNOTATION_BYTES)"),
    ):
        settings = Settings(data_dir=data_dir, max_concurrent_jobs=0, **{setting: value})
        with TestClient(create_app(settings)) as client:
            body, _ = wait(client, post(client, small_zip, setting)["id"])
        assert body["status"] == "failed" and message in body["error"], body


# -- item 7: the queue's slots -------------------------------------------------------------------------


def multipart(name: str, data: bytes, boundary: str = "bound4ry") -> tuple[bytes, bytes]:
    """A request's head and body for POST /api/datasets."""
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /api/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


def status_of(sock: socket.socket) -> int:
    answer = b""
    while b"\r\n" not in answer and (chunk := sock.recv(4096)):
        answer += chunk
    return int(answer.split(b" ")[1])


def test_concurrent_uploads_reserve_their_slot_before_streaming(tmp_path: Path, small_zip: bytes) -> None:
    """Ten uploads whose file parts have begun before any ends: 8 get their slot, 2 a 409 at once."""
    server = ServerProcess(tmp_path / "data").start()
    release = threading.Event()
    early: list[int] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def upload(k: int) -> None:
        head, body = multipart(f"d{k}", small_zip)
        split = body.index(b"PK\x03\x04") + 100  # the file part's headers and its first bytes
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(head + body[:split])
            while not release.is_set():
                if select.select([sock], [], [], 0.05)[0]:  # answered before the file was sent
                    status = status_of(sock)
                    with lock:
                        early.append(status)
                        statuses.append(status)
                    return
            try:
                sock.sendall(body[split:])
            except (BrokenPipeError, ConnectionResetError):
                pass
            status = status_of(sock)
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=upload, args=(k,)) for k in range(10)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while len(early) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        release.set()
        for thread in threads:
            thread.join(60)
        assert sorted(statuses) == [202] * 8 + [409] * 2, statuses
        assert early == [409, 409]
        listed = httpx.get(f"{server.url}/api/datasets", timeout=30).json()
        assert len([d for d in listed if d["name"].startswith("d")]) == 8
    finally:
        release.set()
        server.stop()
