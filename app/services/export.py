"""Downloads of a job's detector for deployment: SavedModel (zipped), ONNX or TFLite.

The conversion (:mod:`ssd.export`) needs TensorFlow, which the server process never imports:
it runs ``python -m ssd.cli export`` in a child process, awaited with asyncio so the event loop
keeps serving, on a snapshot of the checkpoint (its config and weights copied, so a training
job that saves meanwhile cannot hand the converter half a file). The weights are the job's best
(``best.weights.h5``, the evaluation with the highest mAP@.5) where training kept them, else the
last (:func:`ssd.checkpoint.weights_path`); the snapshot holds that file under its own name, so
the converter's default ``--weights best`` loads it. The result is kept as
``jobs/{id}/exports/{format}-{best|last}-{mtime_ns}-{size}.{ext}``, named after the weights file it
came from: a newer checkpoint (or a new best) misses the cache and is converted, and a second download of the same
checkpoint is the file (older exports of that format are then deleted). One conversion runs at a
time: each is a TensorFlow process beside the training workers, and a big one (measured peak
resident: 0.55-0.65 GiB for a 4-unit 64 px notebook network, 7.0 GiB for a resnet50 ONNX
export at 128 px). A request for a job and format being converted waits
for that conversion and gets its file. A conversion holds a slot of the server's heavy work
(:class:`app.services.heavy.HeavyWork`): beyond its limit a request that would convert is
:class:`~app.domain.Busy` at once, while a download of a converted file never is. ``head``
answers a HEAD from what is on disk, converting nothing.

Errors are the domain errors of :mod:`app.domain`: an unknown job (:class:`NotFound`), no
checkpoint yet (:class:`Conflict`), a server without the optional package a format needs
(:class:`Unavailable`, naming it and ``pip install 'ssdboard[export]'``), a conversion that
fails (:class:`Broken`, with the converter's message).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from anyio.to_thread import run_sync

from app.domain import Broken, Conflict, Job, Unavailable
from app.services.heavy import HeavyWork
from app.services.jobs import JobService
from ssd.checkpoint import BEST_WEIGHTS_FILE, CONFIG_FILE, read_best, weights_path

EXPORTS_DIR = "exports"
CONVERT_TIMEOUT_S = 600.0  # measured here: resnet50 at 128 px 11-30 s a format, so 20x headroom
INSTALL_HINT = "pip install 'ssdboard[export]'"  # the converter's own words for a missing package
# The packages ssd.export requires per format (it imports TensorFlow, which the server does not).
NEEDS: dict[str, tuple[str, ...]] = {"onnx": ("tf2onnx", "onnx")}


@dataclass(frozen=True)
class Format:
    """How one export format is stored and served."""

    extension: str
    media_type: str


FORMATS: dict[str, Format] = {
    "savedmodel": Format("zip", "application/zip"),  # the SavedModel directory, zipped
    "onnx": Format("onnx", "application/octet-stream"),
    "tflite": Format("tflite", "application/octet-stream"),
}


@dataclass(frozen=True)
class ExportFile:
    """A cached export, ready to send."""

    path: Path
    media_type: str
    filename: str  # what the browser saves it as


class ExportService:
    """Exports of the checkpoints of the jobs under ``jobs.settings.jobs_dir`` (one per app)."""

    def __init__(self, jobs: JobService, *, python: str = sys.executable, heavy: HeavyWork | None = None) -> None:
        self.jobs = jobs
        self.python = python
        self.heavy = heavy or HeavyWork(2)
        self.conversions = 0  # child processes started (a cached download starts none)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._one_at_a_time = asyncio.Lock()

    async def export(self, job_id: str, fmt: str) -> ExportFile:
        """The export of the job's latest checkpoint as ``fmt`` (a key of :data:`FORMATS`), converted once."""
        job = await run_sync(self.jobs.get, job_id)  # a store read
        spec = FORMATS[fmt]  # the route only passes known formats
        job_dir = self.jobs.settings.jobs_dir / job_id
        lock = self._locks.setdefault((job_id, fmt), asyncio.Lock())
        async with lock:
            key = checkpoint_key(job_dir, job, "nothing to export")
            target = job_dir / EXPORTS_DIR / f"{fmt}-{key}.{spec.extension}"
            if not target.is_file():
                with self.heavy.slot(f"the {fmt} export of job {job_id}"):
                    await self._convert(job_dir, fmt, key, target)
        return ExportFile(target, spec.media_type, _filename(job, fmt))

    async def head(self, job_id: str, fmt: str) -> ExportFile:
        """What :meth:`export` would answer, from what is on disk: the errors it would raise for an
        unknown job, no checkpoint or a missing package, and the file's path if it is converted
        already (else a path that does not exist). Converts nothing."""
        job = await run_sync(self.jobs.get, job_id)
        job_dir = self.jobs.settings.jobs_dir / job_id
        key = checkpoint_key(job_dir, job, "nothing to export")
        missing = [m for m in NEEDS.get(fmt, ()) if importlib.util.find_spec(m) is None]
        if missing:
            raise Unavailable(f"{fmt} export needs the package {missing[0]}, which is not installed: {INSTALL_HINT}")
        spec = FORMATS[fmt]
        target = job_dir / EXPORTS_DIR / f"{fmt}-{key}.{spec.extension}"
        return ExportFile(target, spec.media_type, _filename(job, fmt))

    async def _convert(self, job_dir: Path, fmt: str, key: str, target: Path) -> None:
        target.parent.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{fmt}-", dir=target.parent) as tmp:
            snapshot = Path(tmp) / "checkpoint"
            await run_sync(snapshot_checkpoint, job_dir, snapshot, key)
            out = Path(tmp) / ("savedmodel" if fmt == "savedmodel" else f"model.{FORMATS[fmt].extension}")
            async with self._one_at_a_time:
                self.conversions += 1
                await self._run_converter(snapshot, fmt, out)
            staged = Path(tmp) / target.name
            if fmt == "savedmodel":
                await run_sync(_zip_directory, out, staged)
            else:
                out.rename(staged)
            os.replace(staged, target)
        for old in target.parent.glob(f"{fmt}-*"):  # exports of earlier checkpoints
            if old != target:
                old.unlink(missing_ok=True)

    async def _run_converter(self, checkpoint: Path, fmt: str, out: Path) -> None:
        argv = ["-m", "ssd.cli", "export", "--checkpoint", str(checkpoint), "--format", fmt, "--out", str(out)]
        await run_command(self.python, argv, checkpoint, timeout=CONVERT_TIMEOUT_S, what=f"the {fmt} export")


async def run_command(python: str, argv: list[str], checkpoint: Path, *, timeout: float, what: str) -> None:
    """Run ``python *argv`` (an ``ssdboard`` command on a checkpoint snapshot) in a child process,
    awaited so the event loop keeps serving; killed past ``timeout`` seconds or when the request is
    cancelled. A failure is :class:`Broken` with the command's error line (:class:`Unavailable`
    when it names a missing optional package), ``what`` saying what ran."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = await asyncio.create_subprocess_exec(
        python, *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise Broken(f"{what} took longer than {timeout:.0f} s and was stopped") from None
    except asyncio.CancelledError:  # the client went away: do not leave the process running
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        message = error_line(stderr.decode("utf-8", "replace"), str(checkpoint))
        if INSTALL_HINT in message:
            raise Unavailable(message)
        raise Broken(f"{what} failed: {message}")


def _key(path: Path) -> str:
    """``{best|last}-{mtime_ns}-{size}`` of a weights file (raises ``OSError`` when it is missing)."""
    stat = path.stat()
    which = "best" if path.name == BEST_WEIGHTS_FILE else "last"
    return f"{which}-{stat.st_mtime_ns}-{stat.st_size}"


def checkpoint_step(job_dir: Path, job: Job) -> int | None:
    """The step of the weights :func:`checkpoint_key` names: the best's (``best.json``) or the last checkpoint's."""
    if weights_path(job_dir, "best").name == BEST_WEIGHTS_FILE:
        best = read_best(job_dir)
        return best["step"] if best is not None else None
    return job.checkpoint_step


def checkpoint_key(job_dir: Path, job: Job, nothing: str) -> str:
    """``{best|last}-{mtime_ns}-{size}`` of the weights file used (the best where there is one,
    else the last), which names what is made from it; :class:`Conflict` when there is no
    checkpoint (``nothing`` says what that means for the request)."""
    try:
        return _key(weights_path(job_dir, "best"))
    except OSError:
        raise Conflict(
            f"job {job.id} is {job.status} and has no checkpoint yet: {nothing}; "
            "a job saves one every train.checkpoint_every steps and when it stops"
        ) from None


def _filename(job: Job, fmt: str) -> str:
    """What the browser saves an export as: ``ssdboard-{id}-{name}.{ext}``, the name made safe."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", job.name or "ssd").strip("-.") or "ssd"
    return f"ssdboard-{job.id}-{name}.{FORMATS[fmt].extension}"


def snapshot_checkpoint(job_dir: Path, snapshot: Path, key: str) -> None:
    """Copy the checkpoint's config and the weights file :func:`checkpoint_key` names, under its own
    name (the CLI's default ``--weights best`` then loads it); :class:`Conflict` if the weights
    changed meanwhile."""
    snapshot.mkdir()
    weights = weights_path(job_dir, "best")
    try:
        for name in (CONFIG_FILE, weights.name):
            shutil.copyfile(job_dir / name, snapshot / name)
        copied = _key(weights)
    except FileNotFoundError as exc:
        raise Broken(f"the checkpoint of job {job_dir.name} lacks {Path(str(exc.filename)).name}") from None
    # The trainer replaces the file atomically, so the copy is one whole checkpoint, but it may be
    # a newer one than the key names: then the cache would file it under the wrong checkpoint.
    if copied != key:
        raise Conflict("the job saved a new checkpoint during the export: try again")


def _zip_directory(directory: Path, archive: Path) -> None:
    """``directory``'s files in a zip, paths relative to it (``saved_model.pb``, ``variables/...``)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(directory).as_posix())


def error_line(stderr: str, checkpoint: str) -> str:
    """The converter's ``ssdboard: error: ...`` line (else its last line), without the snapshot's path."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ssdboard: error: ")]
    line = errors[-1].removeprefix("ssdboard: error: ") if errors else (lines[-1] if lines else "no message")
    return line.replace(checkpoint, "the checkpoint")
