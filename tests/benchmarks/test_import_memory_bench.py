"""benchmarks.import_memory: its COCO writer, its /proc readers, and a small run against a real
server (the full run is ``make bench``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from PIL import Image

from benchmarks.import_memory import Sampler, coco_json, import_processes, jpeg, main, proc_memory, write_zip


def test_the_coco_document_is_one_json_with_the_counts_asked() -> None:
    document = json.loads(b"".join(coco_json(3, 7, polygon=4)))
    assert [i["file_name"] for i in document["images"]] == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert len(document["annotations"]) == 7 and {a["image_id"] for a in document["annotations"]} == {1, 2, 3}
    assert all(len(a["segmentation"][0]) == 8 for a in document["annotations"])
    assert len(document["categories"]) == 80
    assert "segmentation" not in json.loads(b"".join(coco_json(1, 1)))["annotations"][0]


def test_the_zip_holds_the_json_deflated_and_the_photos_stored(tmp_path: Path) -> None:
    photo = jpeg((64, 48))
    assert Image.open(io.BytesIO(photo)).size == (64, 48)
    size = write_zip(tmp_path / "d.zip", "annotations/x.json", coco_json(2, 2), photo, 2)
    with zipfile.ZipFile(tmp_path / "d.zip") as archive:
        infos = {i.filename: i for i in archive.infolist()}
        assert infos["annotations/x.json"].file_size == size and infos["annotations/x.json"].compress_type == 8
        assert infos["images/000001.jpg"].compress_type == zipfile.ZIP_STORED
        assert archive.read("images/000001.jpg") == photo


def test_proc_readers_find_this_process_and_an_import_child() -> None:
    mine = proc_memory(os.getpid())
    assert set(mine) == {"VmRSS", "VmHWM", "VmPeak"} and 0 < mine["VmRSS"] <= mine["VmHWM"] <= mine["VmPeak"]
    assert proc_memory(2**22 + 1) == {}
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "app.worker.dataset_import"], stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10  # its command line is readable once its exec is complete
        while not import_processes(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert import_processes(os.getpid()) == [child.pid]
        sampler = Sampler(os.getpid())
        sampler.sample()
        assert set(sampler.children()) == {child.pid} and sampler.children()[child.pid]["VmHWM"] > 0
    finally:
        child.kill()
        child.wait()


def test_a_small_run_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["--coco-images", "20", "--coco-boxes", "50", "--photos", "3", "--photo-size", "320x240"]
    assert main([*argv, "--limit-mib", "1024", "--out", str(out)]) == 0
    cases = json.loads(out.read_text())["cases"]
    assert cases["coco"]["status"] == "ready" and cases["coco"]["images"] == 20 and cases["coco"]["boxes"] == 50
    assert cases["photos"]["images"] == 3 and cases["photos"]["import_processes"] == 1
    assert cases["photos"]["import_peak_rss_mib"] > 0 and cases["coco"]["server_rest_mib"] > 0
