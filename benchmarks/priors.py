"""Benchmark of the prior explorer: ``python -m benchmarks.priors`` (``make bench`` runs it).

Times ``POST /api/priors/explore`` for a 128x128 validation image with the notebook's priors
(4032) over ``--requests`` requests, and ``POST /api/priors/coverage`` over 300 validation
images (first call: generating the images; then cached), in-process with TestClient (so the
figures include request parsing, validation and JSON encoding, not network). Prints p50/p95
and writes ``.bench/priors.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


def _times(client: TestClient, url: str, bodies: list[dict[str, Any]]) -> list[float]:
    """Milliseconds of ``POST url`` for each of ``bodies``, one after the other."""
    out = []
    for body in bodies:
        started = time.perf_counter()
        response = client.post(url, json=body)
        out.append(1000 * (time.perf_counter() - started))
        response.raise_for_status()
    return out


def _summary(ms: list[float]) -> dict[str, float]:
    """Count, median, p95 (nearest rank) and maximum of ``ms``, rounded to 0.01 ms."""
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(p95, 2),
        "max_ms": round(max(ms), 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.priors", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--coverage-images", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path(".bench/priors.json"))
    args = parser.parse_args(argv)
    notebook = {"preset": "notebook"}
    with tempfile.TemporaryDirectory() as tmp, TestClient(create_app(Settings(data_dir=Path(tmp)))) as client:
        # Warm-up: imports, the first image, the prior layout.
        _times(client, "/api/priors/explore", [{"config": notebook}])
        # What the page sends on a pointer pin: each request its own image and cell.
        bodies = [
            {"config": notebook, "split": "val", "index": i, "layer": i % 3, "cell": [i % 8, (3 * i) % 8]}
            for i in range(args.requests)
        ]
        explore = _times(client, "/api/priors/explore", bodies)
        body = {"config": notebook, "split": "val", "n": args.coverage_images}
        cold = _times(client, "/api/priors/coverage", [body])
        # A settings change: new scales each time, the same (cached) images.
        warm_bodies = [{**body, "config": {**notebook, "priors": {"scales": [10 + i % 5, 25, 40]}}} for i in range(10)]
        warm = _times(client, "/api/priors/coverage", warm_bodies)
    result = {
        "explore": {"image": "128x128, notebook priors (4032)", **_summary(explore)},
        "coverage_first": {"images": args.coverage_images, **_summary(cold)},
        "coverage_settings_change": {"images": args.coverage_images, **_summary(warm)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    e, c, w = result["explore"], result["coverage_first"], result["coverage_settings_change"]
    lines = [
        f"explore   ({e['n']} requests, 128x128, 4032 priors): p50 {e['p50_ms']} ms, p95 {e['p95_ms']} ms",
        f"coverage  ({args.coverage_images} images, first call, generates them): {c['p50_ms']} ms",
        f"coverage  ({args.coverage_images} images, settings change): p50 {w['p50_ms']} ms, p95 {w['p95_ms']} ms",
        f"written to {args.out}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
