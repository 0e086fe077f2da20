"""Many live-stream clients of a long job: ``python -m benchmarks.sse_clients`` (``make bench`` runs it).

Starts ``ssdboard serve`` (:mod:`benchmarks.server`, default settings) and trains a tiny job until
its log holds ``--history`` steps (about 100 steps/s on two cores), then connects ``--clients``
Server-Sent Events clients at once, a mix (``--mix``) of ``from=live`` clients, ``after_step``
clients (a page that drew ``/metrics`` up to ten steps ago) and plain ones (the whole history
first), while ``GET /healthz`` and ``GET /api/jobs`` are polled ``--poll-hz`` times a second each
over keep-alive connections. Two phases: the **storm**, from the first connect until every client
has caught up (headers in; a plain client has the history, an ``after_step`` one its first
event), and the **steady** state, ``--steady`` seconds after it with every client following the
job live. Then the job is cancelled and each client must see the stream end with the job's status.

Reported: p50, p95 and max latency of both polled routes in each phase, the clients' time to
their response headers and to catching up, 503s and other failures, and the server process's
peak memory (``VmHWM``; the worker is another process), its RSS before the clients and the CPU
it used in each phase. Targets:
p95 <= 200 ms for both routes in both phases, every client served (no 503) and ended cleanly.
Results go to ``.bench/sse_clients.json``; the exit status is 1 when a target is missed.

The clients are asyncio protocols on uvloop that count bytes and ``event:`` lines without parsing
anything, so that 1,000 of them cost this machine little; the benchmark raises its own open-files
limit (a client is a file descriptor here too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx

from app.http.server import raise_open_files_limit
from benchmarks.clients import KeepAliveGet, run_on_uvloop
from benchmarks.load import cpu_seconds, rss_bytes
from benchmarks.server import free_port, start_server, stop_server
from benchmarks.sse import TINY_MODEL, percentile

P95_TARGET_S = 0.200
STEPS_PER_S = 100  # the tiny job's speed on two cores, to size it; measured, not assumed, below
KINDS = ("live", "after_step", "plain")


@dataclass
class Client:
    """What one stream client saw (times are ``time.monotonic()``)."""

    kind: str
    started: float = 0.0
    headers_at: float | None = None
    caught_up_at: float | None = None
    status: int | None = None
    events: int = 0
    received: int = 0  # bytes
    ended: bool = False  # the server ended the response (the job's terminal status)
    error: str | None = None
    expect_events: int = 0  # events that make it caught up (0: its headers do)
    tail: bytes = field(default=b"", repr=False)


_STATUS = re.compile(rb"HTTP/1\.1 (\d{3})")


class CountingStream(asyncio.Protocol):
    """One SSE client: its status code, bytes and ``event:`` lines, and the end of the response."""

    def __init__(self, request: bytes, client: Client, done: asyncio.Future[None]) -> None:
        self.request, self.client, self.done = request, client, done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        c = self.client
        now = time.monotonic()
        if c.status is None:
            if b"\r\n" not in c.tail + data:  # the status line is not complete yet
                c.tail += data
                return
            data, c.tail = c.tail + data, b""
            match = _STATUS.match(data)
            c.status = int(match.group(1)) if match else -1
            c.headers_at = now
            if c.status != 200:
                self._finish(None)
                return
            if c.expect_events == 0:
                c.caught_up_at = now
        c.received += len(data)
        joined = c.tail + data
        c.events += joined.count(b"\nevent: ") - c.tail.count(b"\nevent: ")
        c.tail = joined[-16:]
        if c.caught_up_at is None and c.events >= c.expect_events:
            c.caught_up_at = now
        if c.tail.endswith(b"\r\n0\r\n\r\n"):  # the last chunk: the stream ended
            c.ended = True
            self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection lost: {exc}" if exc else None)

    def _finish(self, error: str | None) -> None:
        if not self.done.done():
            self.client.error = self.client.error or error
            self.done.set_result(None)
            self.transport.close()


async def stream(host: str, port: int, path: str, client: Client) -> Client:
    """Open one stream and follow it until the server ends it or closes the connection."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    client.started = time.monotonic()
    try:
        await loop.create_connection(lambda: CountingStream(request, client, done), host, port)
        await done
    except OSError as exc:
        client.error = f"{type(exc).__name__}: {exc}"
    return client


async def poll(host: str, port: int, path: str, hz: float, stop: asyncio.Event) -> list[tuple[float, float, int]]:
    """``GET path`` ``hz`` times a second until ``stop``: ``(sent at, seconds, status)`` each (0: failed)."""
    http = KeepAliveGet(host, port)
    out: list[tuple[float, float, int]] = []
    while not stop.is_set():
        started = time.monotonic()
        try:
            code, _ = await asyncio.wait_for(http.get(path), 30)
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
            code = 0
        out.append((started, time.monotonic() - started, code))
        await asyncio.sleep(max(0.0, 1 / hz - (time.monotonic() - started)))
    http.close()
    return out


async def memory(pid: int, stop: asyncio.Event) -> list[tuple[float, int]]:
    """The server's RSS twice a second until ``stop``."""
    out = []
    while not stop.is_set():
        out.append((time.monotonic(), rss_bytes(pid)["VmRSS"]))
        await asyncio.sleep(0.5)
    return out


async def get_json(http: KeepAliveGet, path: str) -> Any:
    """``GET path`` as JSON, once more on a fresh connection if the kept-alive one was closed."""
    try:
        _, body = await http.get(path)
    except (OSError, asyncio.IncompleteReadError):
        _, body = await http.get(path)
    return json.loads(body)


def mix_counts(clients: int, mix: Sequence[float]) -> dict[str, int]:
    """How many clients of each kind (``live``, ``after_step``, ``plain``) for the weights ``mix``."""
    total = sum(mix)
    counts = [int(clients * w / total) for w in mix]
    counts[0] += clients - sum(counts)
    return dict(zip(KINDS, counts, strict=True))


async def run(
    url: str,
    pid: int,
    *,
    clients: int,
    history: int,
    mix: Sequence[float],
    poll_hz: float,
    steady_s: float,
    max_storm_s: float = 300.0,
) -> dict[str, Any]:
    """Train to ``history`` steps, then the storm and the steady state; the raw measurements."""
    host, port_text = url.removeprefix("http://").split(":")
    port = int(port_text)
    http = KeepAliveGet(host, port)
    steps = history + int(STEPS_PER_S * (steady_s + 600))  # cancelled when done
    config = {**TINY_MODEL, "name": "bench-sse-clients"}
    config["train"] = {"steps": steps, "batch_size": 2, "eval_images": 4, "eval_every": 1000, "checkpoint_every": 0}
    config["data"] = {**TINY_MODEL["data"], "val_images": 8}
    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        job_id = (await api.post("/api/jobs", json=config)).raise_for_status().json()["id"]
    print(f"job {job_id}: training to step {history} ...", flush=True)
    building = time.monotonic()
    while True:
        job = await get_json(http, f"/api/jobs/{job_id}")
        if job["status"] not in ("queued", "running"):
            raise RuntimeError(f"the job stopped before the benchmark: {job['status']} {job.get('error')}")
        if job["step"] >= history:
            break
        await asyncio.sleep(1.0)
    build_s = time.monotonic() - building
    idle_rss = rss_bytes(pid)["VmRSS"]

    stop = asyncio.Event()
    pollers = {path: asyncio.create_task(poll(host, port, path, poll_hz, stop)) for path in ("/healthz", "/api/jobs")}
    sampler = asyncio.create_task(memory(pid, stop))
    await asyncio.sleep(2.0)  # a baseline before the storm
    counts = mix_counts(clients, mix)
    at_step = job["step"]
    print(f"storm: {clients} clients {counts} at step {at_step} ...", flush=True)
    paths = {
        "live": f"/api/jobs/{job_id}/events?from=live",
        "after_step": f"/api/jobs/{job_id}/events?after_step={max(at_step - 10, 0)}",
        "plain": f"/api/jobs/{job_id}/events",
    }
    expect = {"live": 0, "after_step": 1, "plain": at_step}
    storm_start = time.monotonic()
    cpu = [cpu_seconds(pid)[0]]
    kinds = [kind for kind in KINDS for _ in range(counts[kind])]
    everyone = [Client(kind, expect_events=expect[kind]) for kind in kinds[::2] + kinds[1::2]]  # interleaved
    tasks = [asyncio.create_task(stream(host, port, paths[c.kind], c)) for c in everyone]
    deadline = storm_start + max_storm_s
    while time.monotonic() < deadline and not all(c.caught_up_at or c.error or c.ended for c in everyone):
        await asyncio.sleep(0.1)
    storm_end = time.monotonic()
    cpu.append(cpu_seconds(pid)[0])
    print(f"storm over in {storm_end - storm_start:.1f} s; steady state for {steady_s:g} s ...", flush=True)
    await asyncio.sleep(steady_s)
    steady_end = time.monotonic()
    cpu.append(cpu_seconds(pid)[0])
    peak = rss_bytes(pid)["VmHWM"]

    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as api:
            (await api.post(f"/api/jobs/{job_id}/cancel")).raise_for_status()
    except httpx.HTTPError as exc:  # a server that cannot keep up: report it, do not crash
        print(f"cancelling the job failed: {type(exc).__name__} {exc}", flush=True)
    await asyncio.wait(tasks, timeout=60)
    for task in tasks:
        task.cancel()
    stop.set()
    polled = {path: await task for path, task in pollers.items()}
    rss = await sampler
    try:
        final = await asyncio.wait_for(get_json(http, f"/api/jobs/{job_id}"), 60)
    except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
        final = {"status": f"unknown ({type(exc).__name__})"}
    http.close()
    return {
        "job": final,
        "history_steps_at_storm": at_step,
        "history_build_s": build_s,
        "clients": everyone,
        "counts": counts,
        "polled": polled,
        "rss": rss,
        "idle_rss": idle_rss,
        "peak_rss": peak,
        "phases": {"storm": (storm_start, storm_end), "steady": (storm_end, steady_end)},
        "server_cpu_s": {"storm": cpu[1] - cpu[0], "steady": cpu[2] - cpu[1]},
    }


def _ms(values: Sequence[float]) -> dict[str, float | int]:
    return {
        "p50": round(1000 * percentile(values, 0.50), 1),
        "p95": round(1000 * percentile(values, 0.95), 1),
        "max": round(1000 * max(values), 1) if values else float("nan"),
        "n": len(values),
    }


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """Latencies per phase and route, the clients' figures, memory, and the verdict."""
    everyone: list[Client] = raw["clients"]
    phases = raw["phases"]
    routes: dict[str, Any] = {}
    for path, samples in raw["polled"].items():
        routes[path] = {
            name: {
                **_ms([s for t, s, _ in samples if start <= t < end]),
                "not_200": sum(1 for t, _, code in samples if start <= t < end and code != 200),
            }
            for name, (start, end) in phases.items()
        }
    storm_start = phases["storm"][0]
    headers = [c.headers_at - c.started for c in everyone if c.headers_at is not None]
    caught = [c.caught_up_at - storm_start for c in everyone if c.caught_up_at is not None]
    final_status = raw["job"]["status"]
    by_kind = {
        kind: {
            "clients": sum(c.kind == kind for c in everyone),
            "mib_received_mean": round(
                sum(c.received for c in everyone if c.kind == kind)
                / max(1, sum(c.kind == kind for c in everyone))
                / 2**20,
                3,
            ),
        }
        for kind in KINDS
    }
    summary: dict[str, Any] = {
        "clients": len(everyone),
        "mix": raw["counts"],
        "history_steps_at_storm": raw["history_steps_at_storm"],
        "history_build_s": round(raw["history_build_s"], 1),
        "storm_s": round(phases["storm"][1] - phases["storm"][0], 2),
        "steady_s": round(phases["steady"][1] - phases["steady"][0], 2),
        "routes_ms": routes,
        "client_headers_ms": _ms(headers),
        "client_caught_up_s": {k: round(v / 1000, 2) for k, v in _ms(caught).items() if k != "n"},
        "clients_by_kind": by_kind,
        "clients_503": sum(c.status == 503 for c in everyone),
        "clients_other_status": sum(c.status not in (200, 503) for c in everyone),
        "clients_not_caught_up": sum(c.caught_up_at is None for c in everyone),
        "clients_ended_cleanly": sum(c.ended for c in everyone),
        "client_errors": [c.error for c in everyone if c.error][:10],
        "server_rss_before_clients_mib": round(raw["idle_rss"] / 2**20, 1),
        "server_rss_max_sampled_mib": round(max((r for _, r in raw["rss"]), default=0) / 2**20, 1),
        "server_peak_rss_mib": round(raw["peak_rss"] / 2**20, 1),
        "server_cpu_cores": {
            name: round(raw["server_cpu_s"][name] / max(end - start, 1e-9), 2) for name, (start, end) in phases.items()
        },
        "job_status": final_status,
    }
    summary["targets_met"] = bool(
        all(r[phase]["p95"] <= 1000 * P95_TARGET_S and r[phase]["not_200"] == 0 for r in routes.values() for phase in r)
        and summary["clients_503"] == 0
        and summary["clients_other_status"] == 0
        and summary["clients_not_caught_up"] == 0
        and summary["clients_ended_cleanly"] == len(everyone)
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print and save the figures; 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sse_clients", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="SSE clients connecting at once (default 1000)")
    parser.add_argument("--history", type=int, default=10_000, help="steps in the job's log first (default 10000)")
    parser.add_argument(
        "--mix",
        default="1:1:1",
        help="weights of from=live : after_step : plain (whole history) clients (default 1:1:1)",
    )
    parser.add_argument("--poll-hz", type=float, default=5.0, help="GETs a second of each polled route (default 5)")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of steady state (default 20)")
    parser.add_argument(
        "--max-storm", type=float, default=300.0, help="seconds the storm may last before it counts as failed (300)"
    )
    parser.add_argument("--out", default=".bench/sse_clients.json", help="where the JSON results go")
    args = parser.parse_args(argv)
    mix = [float(w) for w in args.mix.split(":")]
    if len(mix) != 3 or min(mix) < 0 or sum(mix) <= 0:
        parser.error("--mix takes three weights, e.g. 1:1:1")

    soft, hard = raise_open_files_limit()
    if soft < args.clients + 100:
        parser.error(f"the open-files limit ({soft}, hard {hard}) is too low for {args.clients} clients")
    with tempfile.TemporaryDirectory(prefix="ssdboard-clients-") as tmp:
        port = free_port()
        server = start_server(Path(tmp) / "data", port, Path(tmp) / "server.log")
        try:
            raw = run_on_uvloop(
                run(
                    f"http://127.0.0.1:{port}",
                    server.pid,
                    clients=args.clients,
                    history=args.history,
                    mix=mix,
                    poll_hz=args.poll_hz,
                    steady_s=args.steady,
                    max_storm_s=args.max_storm,
                )
            )
        finally:
            stop_server(server)
    summary = summarize(raw)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{summary['clients']} clients {summary['mix']} on a job with {summary['history_steps_at_storm']} steps "
        f"logged; storm {summary['storm_s']:.1f} s, steady {summary['steady_s']:.0f} s"
    )
    for path, phases in summary["routes_ms"].items():
        for name, ms in phases.items():
            print(
                f"  GET {path:10} {name:6}: p50 {ms['p50']:6.1f} ms  p95 {ms['p95']:6.1f} ms  max {ms['max']:6.1f} ms"
                f"  ({ms['n']} requests, {ms['not_200']} not 200; target p95 <= {1000 * P95_TARGET_S:.0f})"
            )
    h, c = summary["client_headers_ms"], summary["client_caught_up_s"]
    print(
        f"  clients: headers p50 {h['p50']:.0f} ms p95 {h['p95']:.0f} ms max {h['max']:.0f} ms; caught up p50 "
        f"{c['p50']:.1f} s p95 {c['p95']:.1f} s max {c['max']:.1f} s after the storm began"
    )
    print(
        f"  503: {summary['clients_503']}, other statuses {summary['clients_other_status']}, not caught up "
        f"{summary['clients_not_caught_up']}, ended cleanly {summary['clients_ended_cleanly']}/{summary['clients']}"
    )
    cores = summary["server_cpu_cores"]
    print(
        f"  server RSS: {summary['server_rss_before_clients_mib']:.0f} MiB before the clients, peak "
        f"{summary['server_peak_rss_mib']:.0f} MiB; server CPU cores: storm {cores['storm']:.2f}, "
        f"steady {cores['steady']:.2f}"
    )
    print(f"{'targets met' if summary['targets_met'] else 'TARGETS MISSED'}; results in {out}")
    return 0 if summary["targets_met"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
