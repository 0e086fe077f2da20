"""The server's memory while it imports uploaded datasets, and the import process's own.

A real ``ssdboard serve``, started afresh for each, receives an upload (``POST /api/datasets``)
and imports it until it is ready:

- **coco**: a COCO JSON of ``--coco-boxes`` annotations (500,000) over ``--coco-images`` small
  images (10,000): 58 MiB of JSON (the hardening issue measured a 52 MiB one), zipped with its images;
- **photos**: ``--photos`` JPEG photos (1,000) of ``--photo-size`` pixels (4032x3024, a phone's
  12 megapixels), one box each.

While each uploads and imports, a thread reads ``/proc`` every 10 ms: the server's resident
memory (``VmRSS``, its peak ``VmHWM``) and that of its import process (``python -m
app.worker.dataset_import``: ``VmHWM``, and ``VmPeak``, the address space that its limit
``SSDBOARD_IMPORT_MEMORY_GIB`` bounds). The server's memory at rest is read before each upload;
once the import is ready, the server's memory after the dataset's first ``GET`` (its validation
report, read from the stored index) is read too, apart from the import's figures.
``--coco-polygon N`` gives every annotation an N-point polygon (COCO's own files are mostly
polygons: with 118,287 images, 860,001 boxes and 30 points the JSON is train2017's 448 MB).

    python -m benchmarks.import_memory [--cases coco photos] [--photos 1000] [--coco-boxes 500000]

Prints a table and writes ``.bench/import_memory.json``; exits 1 when an import fails or the
server's peak grows by more than ``--limit-mib`` (64) over its memory at rest.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from benchmarks.server import free_port, start_server, stop_server
from ssd.precision import cpu_info

MIB = 2**20
CHILD = b"app.worker.dataset_import"
SAMPLE_S = 0.01
STATUS_KEYS = ("VmRSS", "VmHWM", "VmPeak")


def proc_memory(pid: int) -> dict[str, int]:
    """``VmRSS``, ``VmHWM`` (peak resident) and ``VmPeak`` (peak address space) of a process, in
    bytes; empty once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_KEYS:
            out[key] = int(value.split()[0]) * 1024
    return out


def import_processes(pid: int) -> list[int]:
    """The import processes (``python -m app.worker.dataset_import``) that ``pid`` started."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                if CHILD in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
            except OSError:
                continue
    return found


class Sampler:
    """Reads the server's and its import processes' memory every ``SAMPLE_S`` seconds, keeping
    the largest of each figure per process, until :meth:`stop`."""

    def __init__(self, server: int) -> None:
        self.server = server
        self.peaks: dict[int, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        """One reading of the server and its import processes."""
        for pid in (self.server, *import_processes(self.server)):
            peak = self.peaks.setdefault(pid, {})
            for key, value in proc_memory(pid).items():
                peak[key] = max(peak.get(key, 0), value)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(SAMPLE_S)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def children(self) -> dict[int, dict[str, int]]:
        """The peaks of the import processes seen."""
        return {pid: peak for pid, peak in self.peaks.items() if pid != self.server}


def coco_annotation(k: int, image_id: int, rng: random.Random, polygon: int) -> dict[str, Any]:
    """One COCO annotation with a 40x30 box in a 64x48 image, and a ``polygon``-point outline."""
    x, y = round(rng.uniform(0, 20), 2), round(rng.uniform(0, 15), 2)
    annotation: dict[str, Any] = {
        "id": k + 1,
        "image_id": image_id,
        "category_id": 1 + k % 80,
        "bbox": [x, y, 40.5, 30.25],
        "area": 1225.13,
        "iscrowd": 0,
    }
    if polygon:
        annotation["segmentation"] = [[round(rng.uniform(0, 60), 2) for _ in range(2 * polygon)]]
    return annotation


def coco_json(images: int, boxes: int, polygon: int = 0, size: tuple[int, int] = (64, 48)) -> Iterator[bytes]:
    """A COCO instances file in pieces (it may not fit in memory whole): ``images`` images named
    ``{i:06d}.jpg`` of ``size``, ``boxes`` annotations spread over them, 80 categories."""
    rng = random.Random(0)
    width, height = size
    yield b'{"info": {"description": "benchmarks.import_memory"}, "licenses": [], "images": ['
    for i in range(images):
        entry = {"id": i + 1, "file_name": f"{i:06d}.jpg", "width": width, "height": height}
        yield (b"," if i else b"") + json.dumps(entry).encode()
    yield b'], "annotations": ['
    for k in range(boxes):
        yield (b"," if k else b"") + json.dumps(coco_annotation(k, 1 + k % images, rng, polygon)).encode()
    yield b'], "categories": ['
    yield b",".join(json.dumps({"id": c, "name": f"class{c}"}).encode() for c in range(1, 81))
    yield b"]}"


def jpeg(size: tuple[int, int], quality: int = 85) -> bytes:
    """A photo-like JPEG: smooth gradients with sensor-like noise (its decoded size is what counts)."""
    width, height = size
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(0, 1, width, dtype=np.float32), np.linspace(0, 1, height, dtype=np.float32))
    channels = [128 + 100 * np.sin(6 * x + 3 * c) * np.cos(4 * y - c) for c in range(3)]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_zip(path: Path, json_name: str, document: Iterator[bytes], image: bytes, images: int) -> int:
    """Zip a COCO file (deflated, streamed) and ``images`` copies of ``image`` (stored) under
    ``images/``; returns the JSON's size."""
    size = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open(json_name, "w", force_zip64=True) as out:
            for piece in document:
                out.write(piece)
                size += len(piece)
        for i in range(images):
            archive.writestr(f"images/{i:06d}.jpg", image, compress_type=zipfile.ZIP_STORED)
    return size


def upload(http: httpx.Client, path: Path, name: str, timeout: float) -> tuple[dict[str, Any], float]:
    """Upload a zip and poll the list until its import ends; its entry and the seconds it all took.

    The list, not ``GET /api/datasets/{id}``: a ready dataset's own answer carries its validation
    report, which the server reads from the stored index (:func:`measure` measures that apart)."""
    started = time.perf_counter()
    with path.open("rb") as handle:
        answer = http.post("/api/datasets", files={"file": (path.name, handle, "application/zip")}, data={"name": name})
    answer.raise_for_status()
    dataset_id = answer.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        listed: list[dict[str, Any]] = http.get("/api/datasets").json()
        body = next(d for d in listed if d["id"] == dataset_id)
        if body["status"] != "importing" or time.monotonic() > deadline:
            return body, time.perf_counter() - started
        time.sleep(0.2)


def measure(http: httpx.Client, server: int, path: Path, name: str, timeout: float) -> dict[str, Any]:
    """One upload and import with the memory read around it."""
    rest = proc_memory(server)
    with Sampler(server) as sampler:
        body, seconds = upload(http, path, name, timeout)
        sampler.sample()
    after = proc_memory(server)
    report = http.get(f"/api/datasets/{body['id']}")  # the report page's data: the server reads the index
    viewed = proc_memory(server)
    children = sampler.children()
    child = max(children.values(), key=lambda peak: peak.get("VmHWM", 0), default={})
    return {
        "status": body["status"],
        "error": body.get("error"),
        "images": (body.get("counts") or {}).get("images"),
        "boxes": (body.get("counts") or {}).get("boxes"),
        "zip_mib": round(path.stat().st_size / MIB, 1),
        "seconds": round(seconds, 1),
        "server_rest_mib": round(rest["VmRSS"] / MIB, 1),
        "server_peak_mib": round(sampler.peaks[server].get("VmRSS", 0) / MIB, 1),
        "server_growth_mib": round((sampler.peaks[server].get("VmRSS", 0) - rest["VmRSS"]) / MIB, 1),
        "server_hwm_before_mib": round(rest["VmHWM"] / MIB, 1),
        "server_hwm_after_mib": round(after["VmHWM"] / MIB, 1),
        "import_processes": len(children),
        "import_peak_rss_mib": round(child.get("VmHWM", 0) / MIB, 1),
        "import_peak_address_space_mib": round(child.get("VmPeak", 0) / MIB, 1),
        "report_status": report.status_code,
        "server_after_report_mib": round(viewed["VmRSS"] / MIB, 1),
    }


def build_cases(args: argparse.Namespace, tmp: Path) -> dict[str, Path]:
    """The zips of the chosen cases, written under ``tmp``."""
    zips: dict[str, Path] = {}
    if "coco" in args.cases:
        document = coco_json(args.coco_images, args.coco_boxes, args.coco_polygon)
        path = tmp / "coco.zip"
        json_bytes = write_zip(path, "annotations/instances_train.json", document, jpeg((64, 48)), args.coco_images)
        print(f"coco: {json_bytes / MIB:.1f} MiB of JSON, zip {path.stat().st_size / MIB:.1f} MiB", file=sys.stderr)
        zips["coco"] = path
    if "photos" in args.cases:
        width, height = (int(v) for v in args.photo_size.lower().split("x"))
        photo = jpeg((width, height))
        document = coco_json(args.photos, args.photos, 0, (width, height))
        path = tmp / "photos.zip"
        write_zip(path, "annotations/instances_train.json", document, photo, args.photos)
        print(f"photos: {len(photo) / MIB:.2f} MiB each, zip {path.stat().st_size / MIB:.1f} MiB", file=sys.stderr)
        zips["photos"] = path
    return zips


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen cases on one server; print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.import_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=["coco", "photos"], choices=["coco", "photos"])
    parser.add_argument("--coco-images", type=int, default=10_000)
    parser.add_argument("--coco-boxes", type=int, default=500_000)
    parser.add_argument("--coco-polygon", type=int, default=0, help="points of each annotation's polygon (0)")
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--photo-size", default="4032x3024", help="WIDTHxHEIGHT of each photo")
    parser.add_argument("--limit-mib", type=float, default=64.0, help="the server's allowed growth over its rest")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds an import may take")
    parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE", help="settings for the server")
    parser.add_argument("--out", default=".bench/import_memory.json")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-import-memory-") as name:
        tmp = Path(name)
        zips = build_cases(args, tmp)
        env = dict(item.split("=", 1) for item in args.env)
        for case, path in zips.items():  # a fresh server each: its memory at rest is its own
            port = free_port()
            data = tmp / f"data-{case}"
            process = start_server(data, port, tmp / f"server-{case}.log", env={**os.environ, **env}, timeout=60)
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
                    results[case] = measure(http, process.pid, path, case, args.timeout)
                    print(f"{case}: {json.dumps(results[case])}", file=sys.stderr)
            finally:
                stop_server(process)
    result = {"cpu": cpu_info()[0], "settings": env, "args": vars(args), "cases": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"dataset imports, {result['cpu']}")
    print("MiB of memory: the server at rest and at its peak while importing, the import process's peak")
    print("resident and address space, and the server after the ready dataset's first GET (its report)")
    header = f"{'case':<8}{'zip MiB':>9}{'s':>7}{'server rest':>13}{'peak':>8}{'import RSS':>12}{'address':>9}"
    print(f"{header}{'after GET':>11}  status")
    for case, r in results.items():
        print(
            f"{case:<8}{r['zip_mib']:>9}{r['seconds']:>7}{r['server_rest_mib']:>13}{r['server_peak_mib']:>8}"
            f"{r['import_peak_rss_mib']:>12}{r['import_peak_address_space_mib']:>9}{r['server_after_report_mib']:>11}"
            f"  {r['status']}"
        )
    print(f"written to {args.out}")
    ok = all(r["status"] == "ready" and r["server_growth_mib"] <= args.limit_mib for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
