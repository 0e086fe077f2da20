"""``GET /api/jobs/{id}/export``: real conversions in a child process, the files they give, the
cache keyed by the checkpoint, and the error answers."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.export import ExportService
from app.settings import Settings
from ssd.config import from_dict

TINY = {
    "preset": "notebook",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[12, 18]], "ratios": [0.7]},
    "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2, "val_images": 8},
    "train": {"steps": 2, "batch_size": 2, "eval_images": 4, "precision": "float32"},
}
CONFIG = from_dict(TINY)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ssd.train import train

    directory = tmp_path_factory.mktemp("export-api") / "run"
    train(CONFIG, directory)
    return directory


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as test_client:
        yield test_client


def service(client: TestClient) -> ExportService:
    return client.app.state.exports  # type: ignore[attr-defined, no-any-return]


def make_job(client: TestClient, checkpoint: Path | None, status: str = "succeeded") -> tuple[str, Path]:
    """A job straight in the store (the runner never sees it), with ``checkpoint``'s files if given."""
    store = client.app.state.store  # type: ignore[attr-defined]
    job, _ = store.create_job(name="tiny", config=CONFIG.to_dict(), total_steps=2)
    store.set_status(job.id, status)
    job_dir = Path(client.app.state.settings.jobs_dir) / job.id  # type: ignore[attr-defined]
    job_dir.mkdir(parents=True, exist_ok=True)
    if checkpoint is not None:
        for name in ("config.json", "model.weights.h5"):
            shutil.copy2(checkpoint / name, job_dir / name)
    return job.id, job_dir


def test_every_format_downloads_and_opens_and_the_second_download_is_cached(
    client: TestClient, checkpoint: Path
) -> None:
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    job_id, job_dir = make_job(client, checkpoint)
    images = np.zeros((2, 32, 32, 3), np.uint8)
    url = f"/api/jobs/{job_id}/export"

    saved = client.get(url, params={"format": "savedmodel"})
    assert saved.status_code == 200, saved.text
    assert saved.headers["content-type"] == "application/zip"
    assert f'filename="ssdboard-{job_id}-tiny.zip"' in saved.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(saved.content)).namelist()
    assert "saved_model.pb" in names and any(n.startswith("variables/") for n in names)

    onnx_file = client.get(url, params={"format": "onnx"})
    assert onnx_file.status_code == 200 and onnx_file.headers["content-type"] == "application/octet-stream"
    assert onnx_file.headers["content-disposition"].endswith('.onnx"')
    session = ort.InferenceSession(onnx_file.content, providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": images}), strict=True))
    assert outputs["boxes"].shape == (2, CONFIG.detect.max_detections, 4) and outputs["num_detections"].shape == (2,)

    tflite = client.get(url, params={"format": "tflite"})
    assert tflite.status_code == 200 and tflite.headers["content-disposition"].endswith('.tflite"')
    result = Interpreter(model_content=tflite.content).get_signature_runner("serving_default")(images=images)
    assert result["scores"].shape[::2] == (2, CONFIG.model.num_classes) and result["boxes"].shape[-1] == 4

    assert service(client).conversions == 3
    again = client.get(url, params={"format": "onnx"})
    assert again.status_code == 200 and again.content == onnx_file.content
    assert service(client).conversions == 3  # served from jobs/{id}/exports/
    cached = sorted(p.name for p in (job_dir / "exports").iterdir())
    assert [name.split("-")[0] for name in cached] == ["onnx", "savedmodel", "tflite"]

    # A newer checkpoint (the trainer replaces the weights file) is converted again; the old export goes.
    weights = job_dir / "model.weights.h5"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    newer = client.get(url, params={"format": "onnx"})
    assert newer.status_code == 200 and service(client).conversions == 4
    onnx_files = [p.name for p in (job_dir / "exports").iterdir() if p.name.startswith("onnx-")]
    assert onnx_files == [f"onnx-last-{stat.st_mtime_ns + 10**9}-{stat.st_size}.onnx"]


def test_unknown_job_no_checkpoint_and_bad_format(client: TestClient) -> None:
    assert client.get("/api/jobs/nope/export", params={"format": "onnx"}).status_code == 404
    job_id, _ = make_job(client, None, status="running")
    response = client.get(f"/api/jobs/{job_id}/export", params={"format": "onnx"})
    assert response.status_code == 409 and "no checkpoint yet" in response.json()["detail"]
    for params in ({"format": "keras"}, {}):
        response = client.get(f"/api/jobs/{job_id}/export", params=params)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "format"]
    assert service(client).conversions == 0


def fake_converter(tmp_path: Path, stderr: str) -> str:
    """An executable that stands in for the Python interpreter: it prints ``stderr`` and exits 2."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{stderr}\nEOF\nexit 2\n")
    script.chmod(0o755)
    return str(script)


def listing_converter(tmp_path: Path) -> str:
    """An executable that stands in for the Python interpreter: it writes the names of the
    ``--checkpoint`` snapshot's files to ``--out`` (or ``--json``) and exits 0."""
    script = tmp_path / "listing-python"
    script.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 0 ]; do case "$1" in --checkpoint) ck="$2"; shift;; --out|--json) out="$2"; shift;; esac; '
        "shift; done\n"
        'ls "$ck" > "$out"\n'
    )
    script.chmod(0o755)
    return str(script)


def test_the_export_converts_the_best_weights_and_follows_that_file(client: TestClient, tmp_path: Path) -> None:
    job_id, job_dir = make_job(client, None)
    (job_dir / "config.json").write_text(json.dumps(CONFIG.to_dict()))
    (job_dir / "model.weights.h5").write_bytes(b"last")
    service(client).python = listing_converter(tmp_path)
    url = f"/api/jobs/{job_id}/export"
    last = client.get(url, params={"format": "onnx"})
    assert last.status_code == 200 and last.text.split() == ["config.json", "model.weights.h5"]
    (job_dir / "best.weights.h5").write_bytes(b"the best")
    (job_dir / "best.json").write_text(json.dumps({"step": 3, "map50": 0.5, "map": 0.3}))
    best = client.get(url, params={"format": "onnx"})
    assert best.status_code == 200 and best.text.split() == ["best.weights.h5", "config.json"]
    stat = (job_dir / "best.weights.h5").stat()
    assert [p.name for p in (job_dir / "exports").iterdir()] == [f"onnx-best-{stat.st_mtime_ns}-{stat.st_size}.onnx"]
    assert service(client).conversions == 2
    (job_dir / "model.weights.h5").write_bytes(b"a newer last")  # not the file exported: still cached
    assert client.get(url, params={"format": "onnx"}).status_code == 200 and service(client).conversions == 2
    os.utime(job_dir / "best.weights.h5", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new best
    assert client.get(url, params={"format": "onnx"}).status_code == 200 and service(client).conversions == 3


def test_converter_errors_become_501_and_500_naming_the_cause(client: TestClient, tmp_path: Path) -> None:
    job_id, job_dir = make_job(client, None)
    (job_dir / "config.json").write_text(json.dumps(CONFIG.to_dict()))
    (job_dir / "model.weights.h5").write_bytes(b"stub")
    missing = (
        "usage: ssdboard [-h] ...\nssdboard: error: option --format: onnx export needs the package tf2onnx, "
        "which is not installed: pip install 'ssdboard[export]'"
    )
    service(client).python = fake_converter(tmp_path, missing)
    response = client.get(f"/api/jobs/{job_id}/export", params={"format": "onnx"})
    assert response.status_code == 501
    assert response.json()["detail"].startswith("option --format: onnx export needs the package tf2onnx")
    service(client).python = fake_converter(tmp_path, "Traceback ...\nRuntimeError: converter crashed")
    response = client.get(f"/api/jobs/{job_id}/export", params={"format": "tflite"})
    assert response.status_code == 500
    assert response.json()["detail"] == "the tflite export failed: RuntimeError: converter crashed"
    assert list((job_dir / "exports").iterdir()) == []  # nothing half-written is left or cached
    (job_dir / "config.json").unlink()
    response = client.get(f"/api/jobs/{job_id}/export", params={"format": "onnx"})
    assert response.status_code == 500
    assert response.json()["detail"] == f"the checkpoint of job {job_id} lacks config.json"


def test_the_export_route_keeps_tensorflow_out_of_the_server() -> None:
    code = (
        "import sys\nimport app.api.exports, app.services.export\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\nassert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
