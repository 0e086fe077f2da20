"""Benchmark of suggested priors: ``python -m benchmarks.suggest`` (``make bench`` runs it).

On ``mnist`` (the notebook's source layers norm3_2, norm4_2, norm5_2 at 128 px; 2000 training
images) and, when ``--data-dir`` holds it, an imported dataset (``--dataset``, default ``trees``:
``python tools/deepforest_tiles.py --out /tmp/trees && ssdboard datasets import /tmp/trees --name
trees``), with at most ``--per-cell`` priors a cell: coverage at the matching threshold (IoU 0.5)
of the notebook's priors, the default preset's, the clusters' alone (k-means) and the suggestion's,
on the boxes fitted to and on held-out validation images, all measured with ``make_priors`` and
``ssd.coverage``; the search's time and the whole fit's (median of ``--repeats``); and the REST
call the prior explorer's button makes (``POST /api/priors/suggest``, 1000 training images),
first (boxes read or generated) and second. Prints a table; writes ``.bench/suggest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from ssd.config import Config, PriorConfig, from_dict
from ssd.datasets.registry import DatasetNotFound, Registry
from ssd.datasets.resolve import apply_dataset, split_boxes
from ssd.suggest import fit, measure

NOTEBOOK: dict[str, Any] = {"preset": "notebook"}


def _share(report: Any) -> float:
    return round(report.matched / report.num_gt, 4) if report.num_gt else 0.0


def _rest_ms(data_dir: Path, draft: dict[str, Any], per_cell: int) -> list[float]:
    """Milliseconds of the page's request, twice (the second finds the boxes cached)."""
    out = []
    with TestClient(create_app(Settings(data_dir=data_dir)), base_url="http://127.0.0.1") as client:
        for _ in range(2):
            started = time.perf_counter()
            response = client.post("/api/priors/suggest", json={"config": draft, "per_cell": per_cell, "n": 1000})
            out.append(round(1000 * (time.perf_counter() - started), 1))
            response.raise_for_status()
    return out


def run(
    name: str, draft: dict[str, Any], data_dir: Path, *, per_cell: int, images: int, val_images: int, repeats: int
) -> dict[str, Any]:
    """The figures of one dataset (see the module docstring)."""
    config: Config = from_dict(apply_dataset(draft, data_dir))
    started = time.perf_counter()
    data = split_boxes(config, "train", images, data_dir)
    boxes_s = time.perf_counter() - started
    val = split_boxes(config, "val", val_images, data_dir)
    search, whole = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        fitted = fit(data, config, per_cell=per_cell)
        whole.append(time.perf_counter() - started)
        search.append(fitted.suggestion.elapsed_s)
    s = fitted.suggestion
    default = from_dict({}).priors  # the hand-tuned recipe: 10/16, 25/36, 48/64 px x 0.35/0.6/1.0
    rows: dict[str, PriorConfig] = {
        "notebook": config.priors,
        "default preset": default,
        "k-means alone": s.kmeans,
        "suggested": s.priors,
    }
    coverage = {
        label: {
            "priors_per_cell": list(priors.priors_per_cell),
            "fit": _share(measure(data, priors, config)),
            "val": _share(measure(val, priors, config)),
        }
        for label, priors in rows.items()
    }
    return {
        "dataset": name,
        "images": int(data.counts.size),
        "boxes": int(data.valid.sum()),
        "val_images": int(val.counts.size),
        "val_boxes": int(val.valid.sum()),
        "per_cell": per_cell,
        "iou_threshold": config.matching.iou_threshold,
        "priors": {"scales": [list(g) for g in s.priors.scales], "ratios": list(s.priors.ratios)},
        "coverage": coverage,
        "boxes_s": round(boxes_s, 3),
        "search_s": round(statistics.median(search), 3),
        "fit_s": round(statistics.median(whole), 3),
        "rest_ms": _rest_ms(data_dir, draft, per_cell),
    }


def _lines(r: dict[str, Any]) -> list[str]:
    head = (
        f"{r['dataset']}: {r['images']} train images ({r['boxes']} boxes) fitted, {r['val_images']} val images "
        f"({r['val_boxes']} boxes) held out; IoU >= {r['iou_threshold']:g}, at most {r['per_cell']} priors a cell"
    )
    lines = [head, f"  {'priors':<16} {'per cell':<10} {'fit set':>8} {'val':>8}"]
    for label, c in r["coverage"].items():
        per_cell = "/".join(str(k) for k in c["priors_per_cell"])
        lines.append(f"  {label:<16} {per_cell:<10} {100 * c['fit']:>7.1f}% {100 * c['val']:>7.1f}%")
    lines.append(f"  suggested: scales {r['priors']['scales']}, ratios {r['priors']['ratios']}")
    lines.append(
        f"  search {r['search_s']:.2f} s, fit with coverage before/after {r['fit_s']:.2f} s (medians), boxes "
        f"{r['boxes_s']:.2f} s; POST /api/priors/suggest (1000 images) {r['rest_ms'][0]:.0f} ms, "
        f"then {r['rest_ms'][1]:.0f} ms"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suggest", description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=6)
    parser.add_argument("--images", type=int, default=2000, help="training images fitted to")
    parser.add_argument("--val-images", type=int, default=500, help="held-out validation images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dataset", default="trees", help="an imported dataset in --data-dir, if there")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("SSDBOARD_DATA_DIR", "data")))
    parser.add_argument("--out", type=Path, default=Path(".bench/suggest.json"))
    args = parser.parse_args(argv)
    common = {"per_cell": args.per_cell, "images": args.images, "val_images": args.val_images, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        results = [run("mnist", NOTEBOOK, Path(tmp), **common)]
    try:
        Registry(args.data_dir).get(args.dataset)
    except DatasetNotFound:
        sys.stdout.write(f"(no dataset {args.dataset!r} in {args.data_dir}: mnist only)\n")
    else:
        results.append(run(args.dataset, {**NOTEBOOK, "data": {"dataset": args.dataset}}, args.data_dir, **common))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write("\n".join(line for r in results for line in _lines(r)) + f"\nwritten to {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
