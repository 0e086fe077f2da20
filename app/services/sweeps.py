"""Sweeps: many jobs from one base config and the values of a few keys, validated all at once.

:func:`plan` expands a request (:mod:`app.services.sweep_spec`) and resolves every resulting
config through :func:`app.services.configs.resolve`, the same check as ``POST /api/jobs``, before
anything is queued: one refused config refuses the sweep with a 422 naming the swept key and its
value. :class:`SweepService` then queues the jobs in order, each tagged with the sweep's id, and
answers a sweep with its progress, a row per run (the swept values and the best mAP) and the best
run. Cancelling a sweep cancels its queued jobs at once and its running ones after their step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.domain import ACTIVE, Conflict, Invalid, Job, JobStatus, NotFound
from app.services import sweep_spec
from app.services.configs import check_start
from app.services.jobs import JobService
from app.services.sweep_spec import Spec, show
from ssd.config import Config
from ssd.recipe import Choice

COMPARE_LIMIT = 10  # the compare page takes up to this many jobs


@dataclass(frozen=True)
class Plan:
    """A checked sweep: its spec, every job's swept values and resolved config, in queue order."""

    name: str
    base: dict[str, Any]
    spec: Spec
    values: list[dict[str, Any]]
    configs: list[Config]
    choices: list[list[Choice]]  # each job's data-fitted recipe (ssd.recipe)


def plan(
    jobs: JobService,
    *,
    name: str,
    base: Mapping[str, Any],
    grid: Mapping[str, Any] | None = None,
    random: Mapping[str, Any] | None = None,
    samples: int | None = None,
    seed: int = 0,
    max_jobs: int = 20,
) -> Plan:
    """Expand a sweep request and resolve every config it makes; nothing is queued.

    Raises:
        Invalid: a bad request (:func:`sweep_spec.parse`) or a refused config: ``loc`` is
            ``("body", "grid" | "random", KEY)`` with the value and the config's reason, or
            ``("body", "base", ...)`` when the base alone is refused.
    """
    spec = sweep_spec.parse(
        grid=grid, random=random, samples=samples, seed=seed, max_jobs=max_jobs, defaults=_types(jobs, base)
    )
    values = sweep_spec.expand(spec)
    configs, choices = [], []
    for i, assignment in enumerate(values):
        data = sweep_spec.apply(base, assignment)
        if "name" not in assignment:
            data["name"] = f"{name} #{i + 1}"
        try:
            config, chosen = jobs.resolve_fitted(data)
        except Invalid as exc:
            raise _blame(jobs, exc, base, spec, assignment, i, len(values)) from exc
        where = ("body", "grid") if "model.init" in assignment else ("body", "base")
        check_start(config, jobs.settings, loc=where)
        configs.append(config)
        choices.append(chosen)
    return Plan(name=name, base=dict(base), spec=spec, values=values, configs=configs, choices=choices)


def _types(jobs: JobService, base: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved config whose values give the swept keys' types: the base's, or the default's
    when the base alone is refused (a swept value may be what makes it valid)."""
    try:
        return jobs.resolve(base).to_dict()
    except Invalid:
        return jobs.resolve({}).to_dict()


def _blame(
    jobs: JobService, exc: Invalid, base: Mapping[str, Any], spec: Spec, assignment: Mapping[str, Any], i: int, n: int
) -> Invalid:
    """The refusal of job ``i`` as a 422 on the swept key to blame (or the base, or the combination)."""
    field = ".".join(str(part) for part in exc.loc[1:])
    where = f"job {i + 1} of {n}"
    if field in assignment:
        return Invalid(
            ("body", spec.section_of(field), field), f"{field} = {show(assignment[field])} ({where}): {exc.message}"
        )
    try:
        jobs.resolve(base, loc=("body", "base"))
    except Invalid as refused:
        return refused
    for key, value in assignment.items():  # a value that fails on the base alone, e.g. source layers vs strides
        try:
            jobs.resolve(sweep_spec.apply(base, {key: value}))
        except Invalid:
            return Invalid(
                ("body", spec.section_of(key), key), f"{key} = {show(value)} ({where}): {field}: {exc.message}"
            )
    combo = ", ".join(f"{k} = {show(v)}" for k, v in assignment.items())
    first = next(iter(assignment))
    return Invalid(("body", spec.section_of(first)), f"{combo} ({where}): {field}: {exc.message}")


def sweep_status(counts: Mapping[str, int], cancel_requested: bool) -> str:
    """``queued`` | ``running`` | ``cancelling`` | ``cancelled`` | ``finished`` from the jobs' counts."""
    active = sum(counts.get(s.value, 0) for s in ACTIVE)
    if not active:
        return "cancelled" if cancel_requested else "finished"
    if cancel_requested:
        return "cancelling"
    started = sum(counts.values()) - counts.get(JobStatus.queued.value, 0)
    return "running" if started else "queued"


def best_of(job: Job) -> dict[str, float | int | None] | None:
    """A job's best validation mAP@.5 and mAP with their steps, or None before its first evaluation."""
    return job.best.to_dict() if job.best.map50 is not None else None


def _rank(run: Mapping[str, Any]) -> tuple[float, float, int]:
    best = run["best"] or {}
    return (-(best.get("map50") or 0.0), -(best.get("map") or 0.0), run["index"])


class SweepService:
    """The dashboard's sweeps over its jobs (one per app, built in the lifespan)."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.store = jobs.store

    def create(self, *, name: str, base: Mapping[str, Any], **request: Any) -> dict[str, Any]:
        """Validate every config, then queue the jobs in order; returns the sweep."""
        checked = plan(self.jobs, name=name, base=base, **request)
        spec = {**checked.spec.to_dict(), "values": checked.values}
        sweep = self.store.create_sweep(name=name, base=checked.base, spec=spec, job_ids=[])
        job_ids: list[str] = []
        try:
            for config, chosen in zip(checked.configs, checked.choices, strict=True):
                job_ids.append(self.jobs.submit_config(config, sweep_id=sweep["id"], choices=chosen).id)
        finally:  # jobs queued before a failure (the database) still belong to the sweep, to cancel
            self.store.add_sweep_jobs(sweep["id"], job_ids)
        return self.get(sweep["id"])

    def list(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Sweeps, newest first, with their progress and best run (no run rows)."""
        out = []
        for sweep in self.store.list_sweeps(limit=limit):
            summary = self._summary(sweep)
            del summary["runs"]
            out.append(summary)
        return out

    def get(self, sweep_id: str) -> dict[str, Any]:
        """One sweep with its runs; :class:`NotFound`."""
        return self._summary(self._sweep(sweep_id))

    def cancel(self, sweep_id: str) -> dict[str, Any]:
        """Cancel the sweep's queued jobs (first, so none starts) and then its running ones; idempotent."""
        sweep = self._sweep(sweep_id)
        self.store.set_sweep_cancel(sweep_id)
        jobs = [self.store.get_job(job_id) for job_id in sweep["job_ids"]]
        for status in (JobStatus.queued, JobStatus.running):
            for job in jobs:
                if job is not None and job.status == status:
                    try:
                        self.jobs.cancel(job.id)
                    except (Conflict, NotFound):  # it ended (or was deleted) meanwhile
                        pass
        return self.get(sweep_id)

    # ------------------------------------------------------------------ internals
    def _sweep(self, sweep_id: str) -> dict[str, Any]:
        sweep = self.store.get_sweep(sweep_id)
        if sweep is None:
            raise NotFound(f"no sweep {sweep_id}")
        return sweep

    def _summary(self, sweep: Mapping[str, Any]) -> dict[str, Any]:
        spec = dict(sweep["spec"])
        values: list[dict[str, Any]] = spec.pop("values", [])
        keys = [*spec.get("grid", {}), *spec.get("random", {})]
        runs = []
        counts = {s.value: 0 for s in JobStatus}
        steps = total_steps = 0
        # One query for the sweep's jobs (a get_job per job cost 40 ms for 200 jobs).
        found = {job.id: job for job in self.store.list_jobs(sweep_id=sweep["id"], limit=None)}
        for i, job_id in enumerate(sweep["job_ids"]):
            job = found.get(job_id)
            row: dict[str, Any] = {"index": i, "job_id": job_id, "values": values[i] if i < len(values) else {}}
            if job is None:  # deleted since
                row.update(name=None, status="deleted", step=0, total_steps=0, best=None, error=None)
            else:
                counts[job.status] += 1
                steps += job.step
                total_steps += job.total_steps
                row.update(
                    name=job.name,
                    status=job.status.value,
                    step=job.step,
                    total_steps=job.total_steps,
                    best=best_of(job),
                    error=job.error,
                )
            runs.append(row)
        ranked = sorted((r for r in runs if r["best"]), key=_rank)
        picks = ranked[:COMPARE_LIMIT] if ranked else runs[:COMPARE_LIMIT]
        cancel_requested = bool(sweep.get("cancel_requested"))
        return {
            "id": sweep["id"],
            "name": sweep["name"],
            "created_at": sweep["created_at"],
            "base": sweep["base"],
            "spec": spec,
            "keys": keys,
            "job_ids": list(sweep["job_ids"]),
            "status": sweep_status(counts, cancel_requested),
            "cancel_requested": cancel_requested,
            "progress": {
                "jobs": len(runs),
                "counts": counts,
                "done": len(runs) - counts["queued"] - counts["running"],
                "steps": steps,
                "total_steps": total_steps,
                "fraction": steps / total_steps if total_steps else 0.0,
            },
            "runs": runs,
            "best": ranked[0] if ranked else None,
            "compare_url": "/compare?jobs=" + ",".join(r["job_id"] for r in picks if r["status"] != "deleted"),
        }
