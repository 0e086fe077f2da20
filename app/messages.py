"""What a training worker tells the server: one typed message per kind.

A worker (:func:`app.worker.run_job`) puts these, in this order, on the queue its executor gave it:
a multiprocessing queue for a local worker, read by the runner's pump (:class:`app.runner.JobRunner`)
in batches; for a worker elsewhere, :class:`app.worker_client.HttpReporter`, which posts them in
batches as JSON (:func:`to_wire`, :func:`from_wire`) to ``POST /api/jobs/{id}/worker/events``:

- :class:`Started` once training can continue from ``step`` (its checkpoint is loaded), with
  ``history``: the ``metrics.jsonl`` records after the last step the server has, up to ``step``
  (steps the server never persisted, e.g. because the worker was killed);
- :class:`Record` per training step (``kind="step"``) and per evaluation (``kind="eval"``): the
  trainer's metrics dict;
- :class:`CheckpointSaved` after every checkpoint written;
- :class:`Done` last, whatever happened (``step`` is None when the job failed before its trainer
  existed).

They are frozen dataclasses: they pickle across the process boundary and the runner matches on
their type, so a misspelt kind is a type error rather than a message silently dropped. On the
wire each is a JSON object with ``type`` (``started``, ``step``, ``eval``, ``checkpoint``,
``done``) and its fields, without ``job_id`` (the URL names the job).
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


def to_wire(message: Message) -> dict[str, Any]:
    """A message as the JSON object a remote worker posts (no ``job_id``: the URL carries it)."""
    match message:
        case Started(step=step, pid=pid, history=history):
            return {"type": "started", "step": step, "pid": pid, "history": history}
        case Record(kind=kind, data=data):
            return {"type": kind, "data": data}
        case CheckpointSaved(step=step):
            return {"type": "checkpoint", "step": step}
        case Done(status=status, step=step, error=error):
            return {"type": "done", "status": status, "step": step, "error": error}
    raise TypeError(f"not a worker message: {message!r}")  # pragma: no cover - exhaustive match


def from_wire(job_id: str, obj: dict[str, Any]) -> Message:
    """The message of :func:`to_wire`'s object for ``job_id``; ValueError when it is not one."""
    kind = obj.get("type")
    try:
        if kind == "started":
            return Started(job_id, int(obj["step"]), int(obj.get("pid") or 0), list(obj.get("history") or []))
        if kind in ("step", "eval"):
            data = obj["data"]
            if not isinstance(data, dict) or not isinstance(data.get("step"), int):
                raise ValueError(f"a {kind} record needs data with an integer step")
            return Record(job_id, kind, data)
        if kind == "checkpoint":
            return CheckpointSaved(job_id, int(obj["step"]))
        if kind == "done":
            status = obj["status"]
            if status not in ("succeeded", "cancelled", "failed"):
                raise ValueError(f"unknown outcome {status!r}")
            step = obj.get("step")
            return Done(job_id, status, None if step is None else int(step), obj.get("error"))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"bad {kind} message: {exc}") from exc
    raise ValueError(f"unknown message type {kind!r}")
