"""The server's peak memory for the heaviest evaluation request: a 1024 px job, ``n`` images.

A real server trains a 1024 px job of the default width for a couple of steps (a real
checkpoint), then answers ``GET /api/jobs/{id}/evaluation?n=N`` and ``.../detections?limit=48``;
the benchmark reads the server's resident peak (``VmHWM``) before and after. The hardening issue
measured +21 GiB for ``n=64`` when the 64 images went to the model in one batch.

    python -m benchmarks.eval_memory [--n 64] [--image-size 1024]

Writes ``.bench/eval_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.flops import cpu_description
from benchmarks.load import rss_bytes
from benchmarks.server import free_port, start_server, stop_server

GIB = 2**30


def job_config(image_size: int) -> dict[str, Any]:
    """The default model at ``image_size`` px, two steps, evaluated only by the request."""
    return {
        "name": f"eval-memory-{image_size}",
        "data": {"image_size": image_size, "val_images": 100},
        "train": {"steps": 2, "batch_size": 1, "eval_every": 0, "eval_images": 1, "checkpoint_every": 0},
    }


def wait_done(http: httpx.Client, job_id: str, timeout: float = 900) -> dict[str, Any]:
    """Poll a job until it ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/api/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(1)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Train, evaluate, report the server's memory; 1 when the peak passes ``--limit-gib``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eval_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=64, help="validation images evaluated (default 64)")
    parser.add_argument("--image-size", type=int, default=1024, help="the job's image size (default 1024)")
    parser.add_argument("--limit-gib", type=float, default=4.0, help="the stated bound on the server's peak")
    parser.add_argument("--out", default=".bench/eval_memory.json")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        process = start_server(Path(tmp) / "data", port, Path(tmp) / "server.log", timeout=60)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=1800) as http:
                job = http.post("/api/jobs", json=job_config(args.image_size)).raise_for_status().json()
                done = wait_done(http, job["id"])
                if done["status"] != "succeeded":
                    print(f"the job {done['status']}: {done.get('error')}", file=sys.stderr)
                    return 1
                before = rss_bytes(process.pid)
                started = time.perf_counter()
                evaluation = http.get(f"/api/jobs/{job['id']}/evaluation", params={"n": args.n})
                seconds = time.perf_counter() - started
                after_eval = rss_bytes(process.pid)
                detections = http.get(f"/api/jobs/{job['id']}/detections", params={"limit": 48})
                after = rss_bytes(process.pid)
        finally:
            stop_server(process)
    result = {
        "cpu": cpu_description(),
        "image_size": args.image_size,
        "n": args.n,
        "evaluation_status": evaluation.status_code,
        "detections_status": detections.status_code,
        "evaluation_seconds": round(seconds, 1),
        "server_peak_before_gib": round(before["VmHWM"] / GIB, 2),
        "server_peak_after_evaluation_gib": round(after_eval["VmHWM"] / GIB, 2),
        "server_peak_after_detections_gib": round(after["VmHWM"] / GIB, 2),
        "limit_gib": args.limit_gib,
    }
    ok = evaluation.status_code == 200 and detections.status_code == 200 and after["VmHWM"] / GIB <= args.limit_gib
    result["ok"] = ok
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
