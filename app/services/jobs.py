"""Training jobs: submit, look up, cancel, resume, delete, their metrics, checkpoint and live events.

A thin layer over the runner (life cycle), the store (history) and the broadcaster (live events):
it validates configs against the server's limits, answers in :class:`~app.domain.Job` objects and plain
dicts and raises the domain errors of :mod:`app.domain`.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from anyio.to_thread import run_sync

from app.domain import Invalid, Job, NotFound
from app.execution.events import Broadcaster, event_stream
from app.execution.runner import JobRunner
from app.services import configs
from app.settings import Settings
from app.store import query as job_query
from app.store.jobs import JobStore
from ssd.checkpoint import (
    CHECKPOINT_FILES,
    TRACEBACK_FILE,
    has_checkpoint,
    read_recipe,
    read_run_info,
    write_recipe,
)
from ssd.config import Config
from ssd.recipe import Choice

# One page of the runs table and how many jobs match in all.
JobPage = tuple[list[Job], int]


def downsample(rows: list[dict[str, Any]], max_points: int | None) -> list[dict[str, Any]]:
    """At most ``max_points`` rows evenly spread over ``rows``, always with the first and the last."""
    if max_points is None or len(rows) <= max_points:
        return rows
    if max_points == 1:
        return rows[-1:]
    n = len(rows) - 1
    picks = sorted({round(i * n / (max_points - 1)) for i in range(max_points)})
    return [rows[i] for i in picks]


class JobService:
    """The dashboard's jobs (one per app, built in the lifespan)."""

    def __init__(self, *, runner: JobRunner, store: JobStore, broadcaster: Broadcaster, settings: Settings) -> None:
        self.runner = runner
        self.store = store
        self.broadcaster = broadcaster
        self.settings = settings

    # ------------------------------------------------------------------ configs
    def resolve(self, data: Mapping[str, Any], *, loc: tuple[str, ...] = ("body",)) -> Config:
        """A client's config within the server's limits (:func:`app.services.configs.resolve`)."""
        return configs.resolve(data, self.settings, loc=loc)

    def config_of(self, job_id: str, *, loc: tuple[str, ...] = ("query", "job")) -> Config:
        """The config a job was submitted with; :class:`NotFound` for an unknown job."""
        return self.resolve(self.get(job_id).config, loc=loc)

    # ------------------------------------------------------------------ life cycle
    def submit(self, data: Mapping[str, Any]) -> Job:
        """Queue a job for a client's config (every key optional); returns the job."""
        config, choices = self.resolve_fitted(data)
        configs.check_start(config, self.settings)
        return self.submit_config(config, choices=choices)

    def resolve_fitted(
        self, data: Mapping[str, Any], *, loc: tuple[str, ...] = ("body",)
    ) -> tuple[Config, list[Choice]]:
        """A new job's config with the data-fitted recipe's choices (:func:`app.services.configs.resolve_fitted`)."""
        return configs.resolve_fitted(data, self.settings, loc=loc)

    def submit_config(self, config: Config, *, sweep_id: str | None = None, choices: Sequence[Choice] = ()) -> Job:
        """Queue a job for a config already resolved (:meth:`resolve`), one of sweep ``sweep_id``;
        ``choices``, what the recipe chose, are kept in its directory (``recipe.json``)."""
        job = self.runner.submit(
            name=config.name, config=config.to_dict(), total_steps=config.train.steps, sweep_id=sweep_id
        )
        if choices:  # the job's directory, which its worker writes too (not this file)
            write_recipe(self.settings.jobs_dir / job.id, [c.to_dict() for c in choices])
        return job

    def list(self, *, status: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs, newest first."""
        return self.store.list_jobs(status=status, limit=limit)

    def page(
        self,
        *,
        status: str | None = None,
        tag: str | None = None,
        dataset: str | None = None,
        sweep: str | None = None,
        q: str | None = None,
        sort: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> JobPage:
        """A page of the jobs matching every given filter, in ``sort`` order, and how many match in all.

        ``sort``: a key of :data:`app.store.query.SORT_KEYS`, ``-`` first for descending (default
        ``-created_at``, newest first); an unknown key is :class:`~app.domain.Invalid` at ``sort``.
        """
        try:
            job_query.parse_sort(sort)
        except ValueError as exc:
            raise Invalid(("query", "sort"), str(exc)) from None
        filters = {"status": status, "tag": tag, "dataset": dataset, "sweep_id": sweep, "name": q}
        items = self.store.list_jobs(**filters, sort=sort, limit=limit, offset=offset)
        # A short page that is not past the end holds the last jobs: no second query needed.
        short = len(items) < limit and (items or not offset)
        total = offset + len(items) if short else self.store.count_jobs(**filters)
        return items, total

    def update_meta(
        self, job_id: str, *, name: str | None = None, tags: Sequence[str] | None = None, notes: str | None = None
    ) -> Job:
        """Rename a job, replace its tags, or its notes (None: unchanged); :class:`NotFound`."""
        if self.store.update_job_meta(job_id, name=name, tags=tags, notes=notes) is None:
            raise NotFound(f"no job {job_id}")
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """One job, with how it computes once it started (``run``); :class:`NotFound`."""
        job = self.runner.get(job_id)  # an unknown id (any text a client sends) ends here, before a path
        directory = self.settings.jobs_dir / job.id
        run = read_run_info(directory)
        recipe = read_recipe(directory)
        if recipe:  # chosen at submission, shown before the run starts too
            run = {**(run or {}), "recipe": "\n".join(recipe)}
        try:  # a failed run's whole traceback, under its one-line error
            trace = (directory / TRACEBACK_FILE).read_text(errors="replace")
            run = {**(run or {}), "traceback": trace}
        except (OSError, ValueError):
            pass
        return job.with_run(run)

    def cancel(self, job_id: str) -> Job:
        """A queued job at once, a running one after its current step; :class:`~app.domain.Conflict` otherwise."""
        return self.runner.cancel(job_id)

    def resume(self, job_id: str) -> Job:
        """Queue a failed, cancelled or interrupted job again from its last checkpoint."""
        return self.runner.resume(job_id)

    def delete(self, job_id: str) -> None:
        """Remove a job that is not queued or running, with its rows and files."""
        self.runner.delete(job_id)

    # ------------------------------------------------------------------ results
    def metrics(self, job_id: str, *, after_step: int = 0, max_points: int | None = None) -> dict[str, Any]:
        """Every step's losses after ``after_step`` (evenly downsampled to ``max_points``) and every evaluation."""
        self.get(job_id)
        rows = self.store.metrics(job_id, after_step=after_step)
        return {
            "job_id": job_id,
            "metrics": downsample(rows, max_points),
            "evals": self.store.evals(job_id, after_step=after_step),
        }

    def checkpoint_zip(self, job_id: str) -> bytes:
        """The latest checkpoint's files as a zip; :class:`NotFound` before the first checkpoint."""
        self.get(job_id)
        job_dir = self.settings.jobs_dir / job_id
        if not has_checkpoint(job_dir):
            raise NotFound(f"job {job_id} has no checkpoint yet")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in CHECKPOINT_FILES:
                archive.writestr(name, (job_dir / name).read_bytes())  # read once: files are replaced atomically
        return buffer.getvalue()

    async def events(
        self, job_id: str, *, after_seq: int = 0, after_step: int | None = None, live_only: bool = False
    ) -> AsyncIterator[bytes]:
        """The job's Server-Sent Events stream (:func:`app.execution.events.event_stream`); :class:`NotFound`
        at once."""
        async with self.broadcaster.reads:  # a turn among the streams' reads of the store
            found = await run_sync(self.store.replay_head, job_id)
        if found is None:
            raise NotFound(f"no job {job_id}")
        return event_stream(
            self.store, self.broadcaster, job_id, after_seq=after_seq, after_step=after_step, live_only=live_only
        )
