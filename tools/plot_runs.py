"""Draw the validation curves of training runs as a PNG, for the README.

    python tools/plot_runs.py --run "SSD augmentation=runs/trees-aug" --run "none=runs/trees-noaug" \
        --out docs/trees-augmentation.png [--title TEXT]
    python tools/plot_runs.py --tta .bench/time_to_accuracy.json --out docs/time-to-accuracy.png

Each ``--run LABEL=DIR`` reads ``DIR/evals.jsonl`` (``ssdboard train``'s evaluations) and draws
validation mAP@.5 and the validation loss against the step, one colour per run. The figure is
Plotly's, rendered by headless Chromium (Debian's ``chromium``, driven by Playwright): no
plotting library beyond the project's own, and plotly.js comes from the installed package.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

COLORS = ("#1f5fd6", "#d9730d", "#0f9d58", "#b8336a")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def read_evals(directory: Path) -> list[dict[str, float]]:
    """The evaluations of a run directory, in step order."""
    rows = [json.loads(line) for line in (directory / "evals.jsonl").read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["step"])


def figure(runs: list[tuple[str, Path]], title: str) -> go.Figure:
    """Validation mAP@.5 (left) and validation loss (right) of each run against the step."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("validation mAP@.5", "validation loss (total)"))
    for i, (label, directory) in enumerate(runs):
        evals = read_evals(directory)
        steps = [r["step"] for r in evals]
        color = COLORS[i % len(COLORS)]
        style = {"color": color, "width": 2}
        fig.add_trace(go.Scatter(x=steps, y=[r["map50"] for r in evals], name=label, line=style), row=1, col=1)
        fig.add_trace(
            go.Scatter(x=steps, y=[r["val_total"] for r in evals], name=label, line=style, showlegend=False),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="step")
    fig.update_layout(
        title=title, width=1100, height=420, template="plotly_white", legend={"orientation": "h", "y": -0.2}
    )
    return fig


def time_to_accuracy_figure(results: list[dict[str, Any]], title: str = "") -> go.Figure:
    """Validation mAP@.5 against training wall time of :mod:`benchmarks.time_to_accuracy` results."""
    fig = go.Figure()
    for i, result in enumerate(results):
        points = result["points"]
        name = f"{result.get('label', 'run')} ({result['cpu']}, {result['precision']})"
        fig.add_trace(
            go.Scatter(
                x=[p["seconds"] for p in points],
                y=[p["map50"] for p in points],
                name=name,
                mode="lines+markers",
                line={"color": COLORS[i % len(COLORS)], "width": 2},
            )
        )
    for level, dash in ((0.95, "dash"), (0.90, "dot")):
        fig.add_hline(
            y=level,
            line={"color": "#888", "dash": dash, "width": 1},
            annotation_text=f"mAP@.5 {level:.2f}",
            annotation_position="bottom left" if level < 0.95 else "top left",
        )
    fig.add_vline(
        x=360,
        line={"color": "#c00", "dash": "dash", "width": 1},
        annotation_text="6 minutes",
        annotation_position="bottom left",
    )
    longest = max((p["seconds"] for r in results for p in r["points"]), default=0.0)
    fig.update_xaxes(title_text="wall time of the run, evaluations excluded (s)", range=[0, max(390.0, longest + 20)])
    fig.update_yaxes(title_text="validation mAP@.5 (500 images)", range=[0, 1])
    fig.update_layout(
        title=title or "Time to accuracy: the default config on two CPU cores",
        width=900,
        height=460,
        template="plotly_white",
        showlegend=True,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def render_time_to_accuracy(results: list[dict[str, Any]], out: Path, title: str = "") -> None:
    """Draw :func:`time_to_accuracy_figure` into ``out`` (a PNG)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    render_png(time_to_accuracy_figure(results, title), out)


def render_png(fig: go.Figure, out: Path) -> None:
    """Screenshot the figure in headless Chromium (the page holds plotly.js inline: no network)."""
    from playwright.sync_api import sync_playwright

    html = (
        f"<html><head><script>{get_plotlyjs()}</script></head><body style='margin:0'>"
        f"<div id='fig'></div><script>Plotly.newPlot('fig', {fig.to_json()}.data, {fig.to_json()}.layout)"
        ".then(() => document.body.dataset.ready = '1');</script></body></html>"
    )
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        page_file = Path(tmp) / "figure.html"
        page_file.write_text(html)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": fig.layout.width, "height": fig.layout.height})
        page.goto(page_file.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.locator("#fig").screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], help="LABEL=DIR (repeat)")
    parser.add_argument(
        "--tta", action="append", default=[], help="a benchmarks.time_to_accuracy result JSON (repeat): mAP vs. time"
    )
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    if args.tta:
        results = [json.loads(Path(f).read_text()) for f in args.tta]
        render_time_to_accuracy(results, Path(args.out), args.title)
        print(f"wrote {args.out}")
        return
    if not args.run:
        parser.error("give --run LABEL=DIR or --tta FILE")
    runs = []
    for item in args.run:
        label, sep, directory = item.partition("=")
        if not sep:
            parser.error(f"--run takes LABEL=DIR, got {item!r}")
        runs.append((label, Path(directory)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    render_png(figure(runs, args.title), out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
