"""Benchmark of the runs table: ``python -m benchmarks.jobs_list`` (``make bench`` runs it).

Fills a fresh data dir with ``--jobs`` finished jobs (1,000) written straight into the store,
each with ``--steps`` step metrics and ``--evals`` evaluations (so every job has a best mAP, a
duration and final losses), tags, a few datasets and sweeps; then starts a real ``ssdboard
serve`` on it and times, over HTTP, one request after another:

- ``GET /api/jobs`` as the jobs page first asks for it (newest first, 50 a page) and with the
  API's default page (100);
- ``GET /api/jobs?sort=-best_map50&dataset=...&limit=50``: sorted by best mAP@.5 with a filter;
- ``GET /api/jobs?sort=-best_map50&tag=...&offset=...``: a later page of a tag filter;
- ``GET /``: the jobs page's HTML.

``--database-url`` fills and serves an empty database of another kind instead of a SQLite
file (PostgreSQL). Prints p50/p95 (ms) per request, the CPU (``lscpu``'s "Model name") and the load average (the
machine may be training at the same time), and writes ``.bench/jobs_list.json``. Target (issue
13, part 5): p95 <= 100 ms with 1,000 jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from app.store.jobs import JobStore, utcnow
from benchmarks.server import free_port, start_server, stop_server
from ssd.config import from_dict
from ssd.precision import cpu_info

DATASETS = ("mnist", "trees", "digits-coco")
TAGS = ("baseline", "wide-priors", "lr-sweep", "paper-loss", "bf16", "keep")


def fill_store(db_url: str, *, jobs: int, steps: int, evals: int, seed: int = 0) -> list[str]:
    """Write ``jobs`` finished jobs with metrics and evaluations into the store at ``db_url``; their ids.

    Jobs go through the store's own methods (``create_job``, ``set_status``, ``record``), so
    their best mAP and duration columns are what a real run leaves behind.
    """
    rng = random.Random(seed)
    store = JobStore(db_url)
    config = from_dict({}).to_dict()
    ids: list[str] = []
    try:
        for i in range(jobs):
            dataset = DATASETS[i % len(DATASETS)]
            job_config = {**config, "name": f"run-{i:04d}", "data": {**config["data"], "dataset": dataset}}
            tags = rng.sample(TAGS, rng.randint(0, 3))
            sweep_id = f"sweep{i // 50:03d}" if i % 3 == 0 else None
            job, _ = store.create_job(
                name=job_config["name"], config=job_config, total_steps=steps, tags=tags, sweep_id=sweep_id
            )
            started = utcnow() - timedelta(seconds=rng.uniform(60, 900))
            store.set_status(job.id, "running", started_at=started)
            t0 = started.timestamp()
            ceiling = rng.uniform(0.6, 0.98)
            items: list[tuple[str, dict[str, Any]]] = []
            for step in range(1, steps + 1):
                loss = 3.0 / (1 + 0.02 * step) + rng.uniform(0, 0.05)
                parts = {"pos_clf": loss * 0.5, "neg_clf": loss * 0.3, "loc": loss * 0.2, "total": loss}
                speed = rng.uniform(80, 100)
                items.append(("step", {"step": step, **parts, "images_per_sec": speed, "time": t0 + step}))
                if step % max(steps // evals, 1) == 0:
                    map50 = ceiling * (1 - 1 / (1 + 0.05 * step)) + rng.uniform(-0.02, 0.02)
                    items.append(("eval", {"step": step, "map50": map50, "map": map50 * 0.6, "val_total": loss}))
            store.record(job.id, items)
            status = "succeeded" if i % 10 else rng.choice(["failed", "cancelled"])
            store.set_status(job.id, status, finished_at=started + timedelta(seconds=steps))
            ids.append(job.id)
    finally:
        store.close()
    return ids


def _summary(ms: list[float]) -> dict[str, float]:
    """Count, median, p95 (nearest rank) and maximum of ``ms``, rounded to 0.01 ms."""
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    median = statistics.median(ms)
    return {"n": len(ms), "p50_ms": round(median, 2), "p95_ms": round(p95, 2), "max_ms": round(max(ms), 2)}


def time_get(http: httpx.Client, url: str, repeats: int) -> dict[str, Any]:
    """Milliseconds of ``GET url`` ``repeats`` times (after 3 warm-ups), with the answer's size."""
    for _ in range(3):
        http.get(url).raise_for_status()
    ms = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = http.get(url)
        ms.append(1000 * (time.perf_counter() - started))
        response.raise_for_status()
    summary: dict[str, Any] = _summary(ms)
    summary["bytes"] = len(response.content)
    if "X-Total-Count" in response.headers:
        summary["total"] = int(response.headers["X-Total-Count"])
        summary["items"] = len(response.json())
    return summary


REQUESTS = {
    "jobs page's first list (50, newest first)": "/api/jobs?limit=50",
    "API default (100, newest first)": "/api/jobs",
    "sorted by best mAP@.5, dataset filter (50)": "/api/jobs?sort=-best_map50&dataset=trees&limit=50",
    "sorted by best mAP@.5, tag filter, page 3": "/api/jobs?sort=-best_map50&tag=baseline&limit=50&offset=100",
    "sorted by total loss, name filter": "/api/jobs?sort=total&q=run-01&limit=50",
    "jobs page HTML": "/",
}


def main(argv: list[str] | None = None) -> int:
    """Fill a store, serve it, time the requests; print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.jobs_list", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100, help="step metrics per job")
    parser.add_argument("--evals", type=int, default=5, help="evaluations per job")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(".bench/jobs_list.json"))
    parser.add_argument(
        "--database-url",
        help="an empty database to fill and serve instead of a fresh SQLite file, e.g. "
        "postgresql+psycopg://USER@127.0.0.1:5432/bench (its jobs are left there)",
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"cpu": cpu_info()[0], "jobs": args.jobs, "steps_per_job": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        db_url = args.database_url or f"sqlite:///{data_dir / 'ssdboard.db'}"
        results["database"] = sa.make_url(db_url).get_backend_name()
        started = time.perf_counter()
        fill_store(db_url, jobs=args.jobs, steps=args.steps, evals=args.evals)
        results["fill_s"] = round(time.perf_counter() - started, 1)
        print(f"{args.jobs} jobs of {args.steps} steps and {args.evals} evals written in {results['fill_s']} s")
        port = free_port()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SSDBOARD_DATABASE_URL": db_url}
        server = start_server(data_dir, port, Path(tmp) / "server.log", env=env)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                for label, url in REQUESTS.items():
                    figures = time_get(http, url, args.repeats)
                    results[label] = {"url": url, **figures}
                    print(f"{label:46s} p50 {figures['p50_ms']:6.1f} ms  p95 {figures['p95_ms']:6.1f} ms  {url}")
        finally:
            stop_server(server)
    results["loadavg"] = os.getloadavg()
    print(f"CPU: {results['cpu']}; load average {' '.join(f'{x:.2f}' for x in results['loadavg'])}")
    worst = max(v["p95_ms"] for v in results.values() if isinstance(v, dict))
    print(f"worst p95 {worst:.1f} ms (target <= 100 ms)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
