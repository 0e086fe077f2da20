"""Latency benchmark of the live stream: ``python -m benchmarks.sse`` (``make bench`` runs it).

Starts ``ssdboard serve`` (:mod:`benchmarks.server`) on a free port with a temporary data dir,
submits a job that keeps both cores busy (the default model, batch 8), connects ``--clients``
Server-Sent Events clients and, meanwhile, polls ``GET /api/jobs/{id}`` at ``--poll-hz``. For
every ``step`` event it records the arrival time minus the event's ``time`` (when the step ended
in the worker) and checks that every client received every step exactly once. Targets (issue 3):
median step latency <= 250 ms with 50 clients, every step delivered, and GET p99 <= 100 ms.
Results go to ``.bench/sse_latency.json``; the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.server import free_port, start_server, stop_server

TINY_MODEL: dict[str, Any] = {
    "preset": "notebook",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[8]], "ratios": [1.0]},
    "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2},
}
MEDIAN_TARGET_S = 0.250
GET_P99_TARGET_S = 0.100


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def sse_client(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """Read one stream to its terminal status; step numbers and latencies of the step events."""
    steps: list[int] = []
    latencies: list[float] = []
    status = None
    async with http.stream("GET", path, timeout=None) as response:
        kind = None
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind is not None:
                data = json.loads(line[5:])
                if kind == "step":
                    latencies.append(time.time() - data["time"])
                    steps.append(data["step"])
                elif kind == "status":
                    status = data["status"]
            elif not line:
                kind = None
    return {"steps": steps, "latencies": latencies, "status": status}


async def poller(http: httpx.AsyncClient, path: str, hz: float, done: asyncio.Event) -> list[float]:
    """``GET path`` at ``hz`` until ``done``; the response times in seconds."""
    times: list[float] = []
    while not done.is_set():
        started = time.perf_counter()
        response = await http.get(path)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
        await asyncio.sleep(max(0.0, 1 / hz - (time.perf_counter() - started)))
    return times


async def measure(base_url: str, config: dict[str, Any], clients: int, poll_hz: float) -> dict[str, Any]:
    """Submit ``config``, follow it with ``clients`` streams and a poller; the raw measurements."""
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
        job = (await http.post("/api/jobs", json=config)).raise_for_status().json()
        streams = [asyncio.create_task(sse_client(http, f"/api/jobs/{job['id']}/events")) for _ in range(clients)]
        done = asyncio.Event()
        poll = asyncio.create_task(poller(http, f"/api/jobs/{job['id']}", poll_hz, done))
        started = time.monotonic()
        results = await asyncio.gather(*streams)
        done.set()
        get_times = await poll
        final = (await http.get(f"/api/jobs/{job['id']}")).json()
    return {"job": final, "streams": results, "get_times": get_times, "wall_s": time.monotonic() - started}


def summarize(raw: dict[str, Any], steps: int, clients: int) -> dict[str, Any]:
    """Medians, tails, completeness and the verdict against the targets."""
    latencies = [x for s in raw["streams"] for x in s["latencies"]]
    complete = sum(s["steps"] == list(range(1, steps + 1)) for s in raw["streams"])
    metrics = raw["job"].get("last_metrics") or {}
    summary = {
        "model": raw["job"]["config"]["name"],
        "clients": clients,
        "steps": steps,
        "job_status": raw["job"]["status"],
        "images_per_sec_last": metrics.get("images_per_sec"),
        "step_latency_ms": {
            "median": 1000 * statistics.median(latencies) if latencies else None,
            "p95": 1000 * percentile(latencies, 0.95),
            "max": 1000 * max(latencies) if latencies else None,
            "events": len(latencies),
        },
        "clients_with_every_step_once": complete,
        "get_job_ms": {
            "p50": 1000 * percentile(raw["get_times"], 0.5),
            "p99": 1000 * percentile(raw["get_times"], 0.99),
            "max": 1000 * max(raw["get_times"]) if raw["get_times"] else None,
            "requests": len(raw["get_times"]),
        },
        "wall_s": raw["wall_s"],
        "load_avg_1min": os.getloadavg()[0],
    }
    summary["targets_met"] = bool(
        latencies
        and statistics.median(latencies) <= MEDIAN_TARGET_S
        and complete == clients
        and percentile(raw["get_times"], 0.99) <= GET_P99_TARGET_S
        and raw["job"]["status"] == "succeeded"
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print and save the summary; 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent SSE clients (default 50)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the job (default 300)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of the default model (default 8)")
    parser.add_argument("--poll-hz", type=float, default=20.0, help="GET /api/jobs/{id} rate (default 20)")
    parser.add_argument(
        "--model",
        choices=("default", "tiny"),
        default="default",
        help="default: the default recipe's model (a few steps/s, both cores busy); "
        "tiny: 2 units at 32 px (hundreds of steps/s: stresses the event rate)",
    )
    parser.add_argument("--out", default=".bench/sse_latency.json", help="where the JSON results go")
    args = parser.parse_args(argv)

    config: dict[str, Any] = {
        "name": f"bench-sse-{args.model}",
        "data": {"val_images": 16},
        "train": {"steps": args.steps, "batch_size": args.batch_size, "eval_images": 16, "checkpoint_every": 0},
    }
    if args.model == "tiny":
        config.update(TINY_MODEL)
        config["data"].update(TINY_MODEL["data"])
    with tempfile.TemporaryDirectory(prefix="ssdboard-bench-") as tmp:
        port = free_port()
        server = start_server(Path(tmp) / "data", port, Path(tmp) / "server.log")
        try:
            raw = asyncio.run(measure(f"http://127.0.0.1:{port}", config, args.clients, args.poll_hz))
        finally:
            stop_server(server)
    summary = summarize(raw, args.steps, args.clients)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    lat, get = summary["step_latency_ms"], summary["get_job_ms"]
    print(f"SSE step latency, {args.clients} clients x {args.steps} steps (job {summary['job_status']}):")
    print(f"  median {lat['median']:.1f} ms  p95 {lat['p95']:.1f} ms  max {lat['max']:.1f} ms  (target median <= 250)")
    print(f"  every step delivered once to {summary['clients_with_every_step_once']}/{args.clients} clients")
    print(
        f"GET /api/jobs/{{id}} at {args.poll_hz:g} Hz: p50 {get['p50']:.1f} ms  p99 {get['p99']:.1f} ms (target <= 100)"
    )
    print(f"{'targets met' if summary['targets_met'] else 'TARGETS MISSED'}; results in {out}")
    return 0 if summary["targets_met"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
