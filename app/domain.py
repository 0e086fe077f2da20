"""Domain types and errors of the dashboard, free of HTTP and pydantic.

Services, the runner and the event broadcaster speak in these terms; ``app.api.errors`` is the
one place that turns a :class:`DomainError` into an HTTP answer (404, 409, 413, 415, 422, 499, 500,
501, 503).
Each error's message is written for the person who sent the request: it says what is wrong and,
where there is one, what to change.

A training job travels as a :class:`Job` from the store (:meth:`app.store.jobs.JobStore.get_job`)
through the runner and its executors to the services; :meth:`Job.to_dict` is the one place it
becomes the API's JSON object (``JobOut`` of ``app.api.schemas``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Life cycle: queued -> running -> succeeded | failed | cancelled; interrupted by a server stop."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"


TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.interrupted})
RESUMABLE = frozenset({JobStatus.failed, JobStatus.cancelled, JobStatus.interrupted})
ACTIVE = frozenset({JobStatus.queued, JobStatus.running})


@dataclass(frozen=True)
class Best:
    """A job's best validation mAP@.5 and mAP@[.5:.95] and the first step that reached each
    (all None before its first evaluation)."""

    map50: float | None = None
    map50_step: int | None = None
    map: float | None = None
    map_step: int | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        """``{"map50", "map50_step", "map", "map_step"}``, in that order."""
        return {"map50": self.map50, "map50_step": self.map50_step, "map": self.map, "map_step": self.map_step}


@dataclass(frozen=True)
class Job:
    """A training job as the store keeps it (the columns of ``app.store.tables.jobs`` the API shows).

    ``config`` is the resolved config as stored (:meth:`ssd.config.Config.to_dict`); ``last_metrics``
    and ``last_eval`` the latest step's and evaluation's records as the worker sent them.
    ``duration_s`` is live while the job runs. ``run`` (how the job computes, once it started) is
    read from the job's directory, only for a single job's answer (:meth:`with_run`).
    """

    id: str
    name: str
    config: dict[str, Any]
    status: JobStatus
    created_at: datetime
    step: int
    total_steps: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    checkpoint_step: int | None = None
    cancel_requested: bool = False
    last_metrics: dict[str, Any] | None = None
    last_eval: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()
    notes: str = ""
    sweep_id: str | None = None
    duration_s: float = 0.0
    best: Best = Best()
    run: dict[str, str] | None = None
    waiting: str | None = None

    def with_run(self, run: dict[str, str] | None) -> Job:
        """This job with its ``run`` read from its directory."""
        return dataclasses.replace(self, run=run)

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON object of the job (``JobOut``): every field, ``best`` as an object."""
        return {
            "id": self.id,
            "name": self.name,
            "config": self.config,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "step": self.step,
            "total_steps": self.total_steps,
            "error": self.error,
            "checkpoint_step": self.checkpoint_step,
            "cancel_requested": self.cancel_requested,
            "last_metrics": self.last_metrics,
            "last_eval": self.last_eval,
            "tags": list(self.tags),
            "notes": self.notes,
            "sweep_id": self.sweep_id,
            "duration_s": self.duration_s,
            "best": self.best.to_dict(),
            "run": self.run,
            "waiting": self.waiting,
        }


class DomainError(Exception):
    """A request the dashboard cannot carry out, with a message for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError, LookupError):
    """No such job, image or checkpoint."""


class Conflict(DomainError):
    """The thing exists but its state does not allow the operation (e.g. deleting a running job)."""


class Invalid(DomainError, ValueError):
    """A value the dashboard refuses; ``loc`` says where it sits in the request.

    ``loc`` follows FastAPI's validation errors: ``("body", "priors", "strides")`` or
    ``("query", "job")``, so clients read one format for pydantic's and the services' refusals.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class TooLarge(DomainError):
    """An upload over a size or pixel limit."""


class UnsupportedMedia(DomainError):
    """An upload of a type the server does not decode."""


class Undecodable(DomainError):
    """An upload of a supported type whose content does not decode (truncated, corrupt)."""


class Broken(DomainError):
    """A stored artifact (a checkpoint) exists but cannot be used; the message names the file."""


class Busy(DomainError):
    """The server already runs as much heavy work (model runs, exports) as it allows; the client
    may try again after ``retry_after`` seconds (503 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClientGone(DomainError):
    """The client closed its connection, so the work done for it was stopped (nobody reads the answer)."""


class Unavailable(DomainError):
    """A feature that needs an optional package this server lacks; the message names it and how to install it."""
