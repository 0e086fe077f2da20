"""Pydantic models of the sweeps API (``/api/sweeps``): the request and the sweep as answered.

Kept beside :mod:`app.api.schemas` (the jobs' and configs' models) so each module stays a readable
size. Pydantic checks shapes only: which keys exist, what a range holds and whether every
resulting config is valid is :mod:`app.services.sweep_spec` and :mod:`app.services.sweeps`'s
business, so their 422s name the swept key and its value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import CONFIG_EXAMPLE, BestOut, ConfigIn
from app.services.sweep_spec import MAX_JOBS
from app.worker.text import PrintableText

SWEEP_EXAMPLE: dict[str, Any] = {
    "name": "lr-and-ratios",
    "base": CONFIG_EXAMPLE,
    "grid": {"train.learning_rate": [1e-3, 3e-3], "priors.ratios": [[0.5, 1], [0.35, 0.6, 1]]},
    "max_jobs": 10,
}
RANDOM_EXAMPLE: dict[str, Any] = {
    "name": "random-lr",
    "base": CONFIG_EXAMPLE,
    "random": {"train.learning_rate": {"min": 1e-4, "max": 1e-2, "log": True}, "train.batch_size": [2, 4]},
    "samples": 4,
    "seed": 7,
    "max_jobs": 10,
}


class SweepIn(BaseModel):
    """A sweep: a base config and the values of dotted config keys, as a grid and/or random draws."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SWEEP_EXAMPLE, RANDOM_EXAMPLE]})

    name: PrintableText = Field("sweep", min_length=1, max_length=180, description="A label; job i is named 'NAME #i'.")
    base: ConfigIn | None = Field(None, description="The config every job starts from (as POST /api/jobs takes).")
    grid: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted key -> list of values; every combination runs, in itertools.product order over the "
        "keys as given (the last key changes fastest).",
    )
    random: dict[str, Any] = Field(
        default_factory=dict,
        description='Dotted key -> a list to draw from, or a range {"min": 1e-4, "max": 1e-2, "log": true} '
        "(whole numbers for integer keys); drawn `samples` times, seeded by `seed`.",
    )
    samples: int | None = Field(
        None, ge=1, le=MAX_JOBS, description="Random draws (each grid point runs with each); default: fill max_jobs."
    )
    seed: int = Field(0, ge=0, lt=2**31, description="Seed of the random draws: the same request draws the same.")
    max_jobs: int = Field(20, ge=1, le=MAX_JOBS, description="The most jobs this sweep may queue.")


class SweepRunOut(BaseModel):
    """One job of a sweep: its swept values and how far it got."""

    index: int = Field(description="Queue order, from 0.")
    job_id: str
    name: str | None = Field(description="The job's name; null when the job was deleted.")
    status: str = Field(description="The job's status, or 'deleted'.")
    step: int
    total_steps: int
    values: dict[str, Any] = Field(description="Swept key -> the value this job runs with.")
    best: BestOut | None = Field(description="Best validation mAP so far; null before the first evaluation.")
    error: str | None = None


class SweepProgressOut(BaseModel):
    """How far a sweep is: jobs per status and steps done."""

    jobs: int
    counts: dict[str, int] = Field(description="Jobs per status (queued, running, succeeded, ...).")
    done: int = Field(description="Jobs that are neither queued nor running.")
    steps: int = Field(description="Steps done over all jobs.")
    total_steps: int
    fraction: float = Field(description="steps / total_steps.")


class SweepOut(BaseModel):
    """A sweep with its progress, its runs and its best run."""

    id: str
    name: str
    created_at: datetime
    base: dict[str, Any] = Field(description="The base config as posted.")
    spec: dict[str, Any] = Field(description="grid, random (as posted), samples, seed, max_jobs.")
    keys: list[str] = Field(description="The swept keys: grid's, then random's.")
    job_ids: list[str] = Field(description="The sweep's jobs in queue order.")
    status: str = Field(description="queued | running | cancelling | cancelled | finished.")
    cancel_requested: bool
    progress: SweepProgressOut
    runs: list[SweepRunOut] = Field(description="One row per job, in queue order.")
    best: SweepRunOut | None = Field(description="The run with the best mAP@.5 (then mAP, then queue order).")
    compare_url: str = Field(description="The compare page of the best 10 runs (the first 10 before any evaluation).")


class SweepSummaryOut(SweepOut):
    """A sweep in the list: no run rows."""

    runs: list[SweepRunOut] = Field(default_factory=list, exclude=True)
