"""Load benchmark: ``python -m benchmarks.load`` (``make bench`` runs it).

One server (``ssdboard serve``, a temporary data dir, one job at a time), three runs of the same
job (same config, seed and steps), side by side in the order A1, B, A2:

- **A1**, **A2**: the job alone, nobody watching (before and after B, so that a machine whose
  speed drifts during the benchmark does not decide the verdict);
- **B**: the job with ``--clients`` Server-Sent Events clients (200) following it from its
  first event to its last (at least ``--duration`` seconds: the job is sized for that), plus a
  steady stream of REST reads (``--rest-hz`` a second, ``GET /api/jobs`` and ``GET /api/jobs/{id}``
  in turn).

Reported: request errors, lost or repeated step events (every client must receive every step
exactly once), the server process's peak memory (``VmHWM`` of ``/proc/PID/status``; workers are
separate processes and not counted) and the training speed of each run (steps/s from the step
times the worker records, warm-up steps left out). Targets: no errors, no lost events, speed of B
at least 90 % of the mean speed of A1 and A2. Results go to ``.bench/load.json``; the exit status
is 1 when a target is missed.

The clients (:mod:`benchmarks.clients`) speak HTTP/1.1 as asyncio protocols (de-chunking and
splitting SSE events by hand) so that the benchmark's own CPU use, on the same machine as the
server and the worker, stays small.
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

from app.domain import TERMINAL
from benchmarks.clients import ClientResult, KeepAliveGet, run_on_uvloop, sse_client
from benchmarks.server import free_port, start_server, stop_server
from benchmarks.sse import percentile

SPEED_TARGET = 0.90
WARMUP_STEPS = 10


async def rest_reader(http: KeepAliveGet, paths: Sequence[str], hz: float, done: asyncio.Event) -> dict[str, Any]:
    """``hz`` GETs a second, taking ``paths`` in turn, until ``done``; latencies and errors."""
    times: list[float] = []
    errors: list[str] = []
    turn = 0
    while not done.is_set():
        path = paths[turn % len(paths)]
        turn += 1
        started = time.perf_counter()
        try:
            code, _ = await http.get(path)
            if code != 200:
                errors.append(f"GET {path}: {code}")
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors.append(f"GET {path}: {type(exc).__name__}")
        times.append(time.perf_counter() - started)
        await asyncio.sleep(max(0.0, 1 / hz - (time.perf_counter() - started)))
    return {"times": times, "errors": errors}


async def memory_sampler(pid: int, done: asyncio.Event) -> list[int]:
    """The server's resident set size in bytes, twice a second until ``done``."""
    samples = []
    while not done.is_set():
        samples.append(rss_bytes(pid)["VmRSS"])
        await asyncio.sleep(0.5)
    return samples


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of a process itself, and of its reaped children (workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick
    children = (int(fields[13]) + int(fields[14])) / tick
    return own, children


def rss_bytes(pid: int) -> dict[str, int]:
    """``VmRSS`` (now) and ``VmHWM`` (peak) of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


async def wait_done(http: KeepAliveGet, job_id: str) -> dict[str, Any]:
    """Poll the job until it ends; the final job."""
    while True:
        _, body = await http.get(f"/api/jobs/{job_id}")
        job: dict[str, Any] = json.loads(body)
        if job["status"] in TERMINAL:
            return job
        await asyncio.sleep(0.5)


def speed(metrics: list[dict[str, Any]]) -> float:
    """Steps per second between the end of the warm-up and the last step (the worker's clock)."""
    rows = [m for m in metrics if m["step"] > WARMUP_STEPS]
    if len(rows) < 2:
        return float("nan")
    return (rows[-1]["step"] - rows[0]["step"]) / (rows[-1]["time"] - rows[0]["time"])


async def run_job(
    base_url: str, config: dict[str, Any], *, clients: int, rest_hz: float, server_pid: int
) -> dict[str, Any]:
    """Submit ``config``; follow it with ``clients`` streams and ``rest_hz`` REST reads a second. Raw results."""
    host, port = base_url.removeprefix("http://").split(":")
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
        job = (await http.post("/api/jobs", json=config)).raise_for_status().json()
        done = asyncio.Event()
        memory = asyncio.create_task(memory_sampler(server_pid, done))
        streams = [
            asyncio.create_task(sse_client(host, int(port), f"/api/jobs/{job['id']}/events")) for _ in range(clients)
        ]
        reader, poller = KeepAliveGet(host, int(port)), KeepAliveGet(host, int(port))
        paths = ["/api/jobs", f"/api/jobs/{job['id']}"]
        reads = asyncio.create_task(rest_reader(reader, paths, rest_hz, done)) if rest_hz > 0 else None
        started = time.monotonic()
        server_cpu, worker_cpu = cpu_seconds(server_pid)
        bench_cpu = time.process_time()
        final = await wait_done(poller, job["id"])
        wall = time.monotonic() - started
        results = await asyncio.wait_for(asyncio.gather(*streams), timeout=120)
        done.set()
        rest = await reads if reads else {"times": [], "errors": []}
        reader.close()
        poller.close()
        rss = await memory
        metrics = (await http.get(f"/api/jobs/{job['id']}/metrics")).json()["metrics"]
        await asyncio.sleep(1.0)  # the runner reaps the worker: its CPU time moves to the server's children
    own, children = cpu_seconds(server_pid)
    cpu = {
        "server": (own - server_cpu) / wall,
        "worker": (children - worker_cpu) / wall,
        "bench_clients": (time.process_time() - bench_cpu) / wall,
    }
    load = os.getloadavg()[0]  # other work on the machine skews the comparison: report it
    return {
        "job": final,
        "streams": results,
        "rest": rest,
        "rss": rss,
        "metrics": metrics,
        "wall_s": wall,
        "load_avg_1min": load,
        "cpu_cores": cpu,
    }


def _run_figures(a: dict[str, Any]) -> dict[str, Any]:
    """Status, speed, wall time, load, CPU and memory of one run (A or B)."""
    return {
        "status": a["job"]["status"],
        "steps_per_s": speed(a["metrics"]),
        "wall_s": a["wall_s"],
        "load_avg_1min_at_end": a["load_avg_1min"],
        "cpu_cores_used": a["cpu_cores"],
        "server_rss_max_mib": max(a["rss"], default=0) / 2**20,
    }


def summarize(
    runs_a: Sequence[dict[str, Any]], b: dict[str, Any], *, steps: int, clients: int, peak: int
) -> dict[str, Any]:
    """Figures of the runs and the verdict: B against the mean speed of the A runs around it."""
    wanted = list(range(1, steps + 1))
    streams: list[ClientResult] = b["streams"]
    lost = sum(len(set(wanted) - set(s.steps)) for s in streams)
    repeated = sum(len(s.steps) - len(set(s.steps)) for s in streams)
    stream_errors = [s.error for s in streams if s.error] + [
        f"stream ended with {s.status}" for s in streams if not s.error and s.status != "succeeded"
    ]
    speed_a = statistics.mean(speed(a["metrics"]) for a in runs_a)
    speed_b = speed(b["metrics"])
    rest_times = b["rest"]["times"]
    summary = {
        "clients": clients,
        "steps": steps,
        "config": b["job"]["config"]["name"],
        "runs_a_no_clients": [_run_figures(a) for a in runs_a],
        "speed_a_mean_steps_per_s": speed_a,
        "run_b_with_clients": {
            **_run_figures(b),
            "clients_connected_s_min": min((s.connected_s for s in streams), default=0.0),
            "rest_requests": len(rest_times),
            "rest_ms": {"p50": 1000 * percentile(rest_times, 0.5), "p99": 1000 * percentile(rest_times, 0.99)},
        },
        "speed_ratio_b_over_a": speed_b / speed_a if speed_a else float("nan"),
        "errors": len(stream_errors) + len(b["rest"]["errors"]),
        "error_samples": (stream_errors + b["rest"]["errors"])[:10],
        "lost_step_events": lost,
        "repeated_step_events": repeated,
        "clients_with_every_step_once": sum(s.steps == wanted for s in streams),
        "server_peak_rss_mib": peak / 2**20,
        "median_images_per_sec": {
            "a": statistics.median(m["images_per_sec"] for a in runs_a for m in a["metrics"][WARMUP_STEPS:]),
            "b": statistics.median(m["images_per_sec"] for m in b["metrics"][WARMUP_STEPS:] or b["metrics"]),
        },
    }
    summary["targets_met"] = bool(
        all(run["job"]["status"] == "succeeded" for run in (*runs_a, b))
        and summary["errors"] == 0
        and lost == 0
        and repeated == 0
        and summary["speed_ratio_b_over_a"] >= SPEED_TARGET
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run A then B; print and save the figures; 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent SSE clients in run B (default 200)")
    parser.add_argument("--steps", type=int, default=700, help="steps of the job (default 700: ~70 s on 2 cores)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of the default model (default 8)")
    parser.add_argument(
        "--rest-hz", type=float, default=20.0, help="REST reads a second, both paths in turn (default 20)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="minimum seconds of load in run B (default 60)")
    parser.add_argument("--out", default=".bench/load.json", help="where the JSON results go")
    parser.add_argument(
        "--client-nice",
        type=int,
        default=0,
        help="niceness of this load generator (not of the server it starts): real clients are on other "
        "machines; 19 keeps the generator from taking CPU the trainer would get (default 0)",
    )
    args = parser.parse_args(argv)

    config: dict[str, Any] = {
        "name": "bench-load",
        "data": {"val_images": 16},
        "train": {"steps": args.steps, "batch_size": args.batch_size, "eval_images": 16, "checkpoint_every": 0},
    }
    with tempfile.TemporaryDirectory(prefix="ssdboard-load-") as tmp:
        port = free_port()
        server = start_server(Path(tmp) / "data", port, Path(tmp) / "server.log")
        if args.client_nice:
            os.nice(args.client_nice)  # after the server started, so it keeps its own priority
        url = f"http://127.0.0.1:{port}"
        try:
            runs_a = []
            print(f"run A1: {args.steps} steps, no clients ...", flush=True)
            runs_a.append(run_on_uvloop(run_job(url, config, clients=0, rest_hz=0, server_pid=server.pid)))
            print(f"run B: {args.steps} steps, {args.clients} SSE clients + REST reads ...", flush=True)
            b = run_on_uvloop(run_job(url, config, clients=args.clients, rest_hz=args.rest_hz, server_pid=server.pid))
            print(f"run A2: {args.steps} steps, no clients ...", flush=True)
            runs_a.append(run_on_uvloop(run_job(url, config, clients=0, rest_hz=0, server_pid=server.pid)))
            peak = rss_bytes(server.pid)["VmHWM"]
        finally:
            stop_server(server)
    summary = summarize(runs_a, b, steps=args.steps, clients=args.clients, peak=peak)
    summary["long_enough"] = summary["run_b_with_clients"]["clients_connected_s_min"] >= args.duration
    summary["targets_met"] = summary["targets_met"] and summary["long_enough"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    quiet, rb = summary["runs_a_no_clients"], summary["run_b_with_clients"]
    for name, run in (
        ("A1 (no clients)", quiet[0]),
        (f"B ({args.clients} clients)", rb),
        ("A2 (no clients)", quiet[1]),
    ):
        cores = run["cpu_cores_used"]
        print(
            f"{name:17} {run['steps_per_s']:.3f} steps/s, {run['wall_s']:.0f} s, job {run['status']}; CPU cores: "
            f"worker {cores['worker']:.2f}, server {cores['server']:.2f}, clients {cores['bench_clients']:.2f}"
        )
    print(f"B's clients connected >= {rb['clients_connected_s_min']:.0f} s")
    print(f"speed B / mean(A1, A2): {summary['speed_ratio_b_over_a']:.3f} (target >= {SPEED_TARGET})")
    print(
        f"errors {summary['errors']}, lost step events {summary['lost_step_events']}, repeated "
        f"{summary['repeated_step_events']}; every step once to {summary['clients_with_every_step_once']}/"
        f"{args.clients} clients"
    )
    print(
        f"REST reads: {rb['rest_requests']} (p50 {rb['rest_ms']['p50']:.1f} ms, p99 {rb['rest_ms']['p99']:.1f} ms); "
        f"server peak RSS {summary['server_peak_rss_mib']:.0f} MiB (A1 max {quiet[0]['server_rss_max_mib']:.0f}, "
        f"B max {rb['server_rss_max_mib']:.0f})"
    )
    print(f"{'targets met' if summary['targets_met'] else 'TARGETS MISSED'}; results in {out}")
    return 0 if summary["targets_met"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
