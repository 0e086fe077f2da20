"""A job's error analysis (why it misses), computed in a child process and kept per checkpoint.

The analysis (:mod:`ssd.analysis.report`: TIDE's error breakdown, AP by object size, every
ground truth's story with its priors) needs the model's detections, so TensorFlow: the server
never imports it for this. It runs ``python -m ssd.cli analyze`` in a child process, awaited
with asyncio so the event loop keeps serving, on a snapshot of the checkpoint (config and weights
copied, as :mod:`app.services.export` does, so a job saving meanwhile cannot hand it half a file).

The weights are the job's best where training kept them, else the last (as the export's). The
document is kept as ``jobs/{id}/analysis/{split}-{n}-{best|last}-{mtime_ns}-{size}.json``, named
after the weights file: a newer checkpoint misses the cache and is analyzed again, and a second request
for the same checkpoint reads the file (older analyses of that split and size are then deleted).
A request for an analysis being computed waits for it. One analysis runs at a time, holding a
slot of the server's heavy work (:class:`app.services.heavy.HeavyWork`): beyond its limit a
request that would compute is :class:`~app.domain.Busy` at once; a cached one never is.

Errors are :mod:`app.domain`'s: an unknown job (:class:`NotFound`), no checkpoint yet
(:class:`Conflict`), an analysis that fails (:class:`Broken`, with the command's message).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from anyio.to_thread import run_sync

from app.domain import Invalid
from app.figures.analysis import analysis_figures
from app.services.export import checkpoint_key, checkpoint_step, run_command, snapshot_checkpoint
from app.services.heavy import HeavyWork
from app.services.jobs import JobService
from app.services.lru import LRU
from ssd.checkpoint import EVALS_FILE, METRICS_FILE

ANALYSIS_DIR = "analysis"
ANALYZE_TIMEOUT_S = 1800.0  # a 5,000-image analysis of a large backbone on 2 CPU cores, with headroom


class AnalysisService:
    """Analyses of the checkpoints of the jobs under ``jobs.settings.jobs_dir`` (one per app)."""

    def __init__(
        self,
        jobs: JobService,
        *,
        max_images: int,
        python: str = sys.executable,
        heavy: HeavyWork | None = None,
    ) -> None:
        self.jobs = jobs
        self.max_images = max_images
        self.python = python
        self.heavy = heavy or HeavyWork(2)
        self.runs = 0  # child processes started (a cached answer starts none)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._one_at_a_time = asyncio.Lock()
        self._documents = LRU(8)  # parsed documents by file: a 500-image one is about 1 MB of JSON

    async def analysis(self, job_id: str, *, split: str = "val", n: int = 500) -> dict[str, Any]:
        """The analysis of the job's latest checkpoint on the first ``n`` images of ``split``
        (fewer where the split ends), computed once per checkpoint, with its figures."""
        if n > self.max_images:
            raise Invalid(("query", "n"), f"at most {self.max_images} images per analysis (SSDBOARD_MAX_EVAL_IMAGES)")
        job = await run_sync(self.jobs.get, job_id)
        job_dir = self.jobs.settings.jobs_dir / job_id
        key = checkpoint_key(job_dir, job, "nothing to analyze")
        target = job_dir / ANALYSIS_DIR / f"{split}-{n}-{key}.json"
        lock = self._locks.setdefault((job_id, f"{split}-{n}"), asyncio.Lock())
        async with lock:
            if not target.is_file():
                with self.heavy.slot(f"the analysis of job {job_id}"):
                    await self._compute(job_dir, key, target, split, n)
        document = await run_sync(self._read, target)
        threshold = (job.config.get("matching") or {}).get("iou_threshold")
        return {
            "job_id": job_id,
            "image_size": (job.config.get("data") or {}).get("image_size"),
            "checkpoint": {
                "step": checkpoint_step(job_dir, job),
                "key": key,
                "weights": key.split("-", 1)[0],
            },
            **document,
            "figures": analysis_figures(document, threshold),
        }

    def head(self, job_id: str) -> None:
        """What :meth:`analysis` would raise for an unknown job or one without a checkpoint; computes nothing."""
        job = self.jobs.get(job_id)
        checkpoint_key(self.jobs.settings.jobs_dir / job_id, job, "nothing to analyze")

    def _read(self, target: Path) -> dict[str, Any]:
        def load() -> dict[str, Any]:
            data: dict[str, Any] = json.loads(target.read_text())
            return data

        return self._documents.get_or_make(str(target), load)  # type: ignore[no-any-return]

    async def _compute(self, job_dir: Path, key: str, target: Path, split: str, n: int) -> None:
        target.parent.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".analysis-", dir=target.parent) as tmp:
            snapshot = Path(tmp) / "checkpoint"
            await run_sync(snapshot_checkpoint, job_dir, snapshot, key)
            await run_sync(_copy_records, job_dir, snapshot)
            out = Path(tmp) / target.name
            async with self._one_at_a_time:
                self.runs += 1
                await self._run(snapshot, split, n, out)
            os.replace(out, target)
        prefix = f"{split}-{n}-"
        for old in target.parent.glob(f"{prefix}*.json"):  # analyses of earlier checkpoints
            if old != target:
                old.unlink(missing_ok=True)

    async def _run(self, checkpoint: Path, split: str, n: int, out: Path) -> None:
        argv = ["-m", "ssd.cli", "analyze", "--checkpoint", str(checkpoint), "--split", split]
        argv += ["--images", str(n), "--json", str(out), "--data-dir", str(self.jobs.settings.artifact_root)]
        await run_command(self.python, argv, checkpoint, timeout=ANALYZE_TIMEOUT_S, what="the analysis")


def _copy_records(job_dir: Path, snapshot: Path) -> None:
    """The run's step and evaluation records beside the snapshot, for the health checks (a running
    job may be writing a line: the analysis skips a line it cannot read)."""
    for name in (METRICS_FILE, EVALS_FILE):
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(job_dir / name, snapshot / name)
