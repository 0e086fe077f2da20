"""A job on an imported dataset, through a real server started with --data-dir: the worker reads
the dataset from the server's registry, and the config records the dataset's id and classes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from live_server import TERMINAL, ServerProcess, tiny, wait_for

from ssd.datasets.export import export_generator
from ssd.datasets.registry import Registry


@pytest.mark.slow
def test_a_job_trains_on_an_imported_dataset(tmp_path: Path, make_server: Callable[[Path], ServerProcess]) -> None:
    data_dir = tmp_path / "server-data"  # not ./data and not SSDBOARD_DATA_DIR: only --data-dir says where
    export_generator(tmp_path / "export", "yolo", images=24)  # 128 px; the job resizes to 32
    dataset = Registry(data_dir).import_dataset(tmp_path / "export", name="digits")
    server = make_server(data_dir)
    config = tiny(steps=4)
    config["data"] = {**config["data"], "dataset": "digits"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        bad = http.post("/api/jobs", json={**config, "model": {**config["model"], "num_classes": 3}})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "model", "num_classes"]
        job = http.post("/api/jobs", json=config).json()
        assert job["config"]["data"]["dataset"] == dataset["id"] and job["config"]["model"]["num_classes"] == 10
        done = wait_for(http, job["id"], lambda j: j["status"] in TERMINAL, timeout=120)
        assert done["status"] == "succeeded", done.get("error")
        assert http.get(f"/api/jobs/{job['id']}/metrics").json()["metrics"][-1]["step"] == 4
        # The dataset is in use only while the job is queued or running: now it can go.
        assert http.delete(f"/api/datasets/{dataset['id']}").status_code == 204


def test_the_viewer_names_an_imported_datasets_classes(tmp_path: Path) -> None:
    import json

    from PIL import Image

    from app.services.detections import DetectionService
    from ssd.config import from_dict
    from ssd.datasets.resolve import apply_dataset

    src = tmp_path / "pets"
    src.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32)).save(src / f"{i}.png")
    coco = {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 32, "height": 32} for i in range(4)],
        "annotations": [
            {"id": i + 1, "image_id": i, "category_id": 7 + i % 2, "bbox": [2, 2, 10, 10]} for i in range(4)
        ],
        "categories": [{"id": 7, "name": "cat"}, {"id": 8, "name": "dog"}],
    }
    (src / "instances.json").write_text(json.dumps(coco))
    data = tmp_path / "data"
    Registry(data).import_dataset(src / "instances.json", name="pets")
    service = DetectionService(data / "jobs", max_upload_bytes=1 << 20, data_dir=data)
    config = from_dict(apply_dataset({"data": {"dataset": "pets"}}, data))
    assert config.model.num_classes == 2 and service.class_names(config) == ["cat", "dog"]
    assert service.class_names(from_dict({"model": {"num_classes": 3}})) == ["0", "1", "2"]  # the generator
    Registry(data).remove("pets")
    assert service.class_names(config) == ["0", "1"]  # removed since: indices are all there is
