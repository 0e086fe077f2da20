"""What a training worker tells the server: one typed message per kind, over a multiprocessing queue.

A worker (:func:`app.worker.run_job`) puts these, in this order, on the queue its runner gave it;
the runner's pump (:class:`app.runner.JobRunner`) reads them in batches:

- :class:`Started` once training can continue from ``step`` (its checkpoint is loaded), with
  ``history``: the ``metrics.jsonl`` records after the last step the server has, up to ``step``
  (steps the server never persisted, e.g. because the worker was killed);
- :class:`Record` per training step (``kind="step"``) and per evaluation (``kind="eval"``): the
  trainer's metrics dict;
- :class:`CheckpointSaved` after every checkpoint written;
- :class:`Done` last, whatever happened (``step`` is None when the job failed before its trainer
  existed).

They are frozen dataclasses: they pickle across the process boundary and the runner matches on
their type, so a misspelt kind is a type error rather than a message silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RecordKind = Literal["step", "eval"]
Outcome = Literal["succeeded", "cancelled", "failed"]


@dataclass(frozen=True)
class Started:
    """Training continues from ``step``; ``history`` holds steps the server may not have."""

    job_id: str
    step: int
    pid: int
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Record:
    """One training step's or one evaluation's metrics, as :class:`ssd.train.Trainer` reports them."""

    job_id: str
    kind: RecordKind
    data: dict[str, Any]


@dataclass(frozen=True)
class CheckpointSaved:
    """A checkpoint of ``step`` is on disk."""

    job_id: str
    step: int


@dataclass(frozen=True)
class Done:
    """The worker's last message: how the job ended and at which step."""

    job_id: str
    status: Outcome
    step: int | None
    error: str | None = None


Message = Started | Record | CheckpointSaved | Done
