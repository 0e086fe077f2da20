"""What a training worker tells the server: one typed message per kind.

A worker (:func:`app.worker.job.run_job`) puts these, in this order, on the queue its executor gave it:
a multiprocessing queue for a local worker, read by the runner's pump (:class:`app.execution.runner.JobRunner`)
in batches; for a worker elsewhere, :class:`app.worker.reporter.HttpReporter`, which posts them in
batches as JSON (:func:`to_wire`, :func:`parse_batch`) to ``POST /api/jobs/{id}/worker/events``:

- :class:`Started` once training can continue from ``step`` (its checkpoint is loaded), with
  ``history``: the ``metrics.jsonl`` records after the last step the server has, up to ``step``
  (steps the server never persisted, e.g. because the worker was killed);
- :class:`Record` per training step (``kind="step"``) and per evaluation (``kind="eval"``): the
  trainer's metrics dict;
- :class:`CheckpointSaved` after every checkpoint written;
- :class:`Planned` when a run with ``train.time_budget`` fits its step count to the clock
  (``total_steps``, at most the config's ``train.steps``, and the reason);
- :class:`Waiting` while the run waits before it can train (a multi-worker job's chief waiting
  for the cluster to have room for its other workers): the reason, which the job page shows
  until training starts;
- :class:`Done` last, whatever happened (``step`` is None when the job failed before its trainer
  existed).

They are frozen dataclasses: they pickle across the process boundary and the runner matches on
their type, so a misspelt kind is a type error rather than a message silently dropped. On the
wire each is a JSON object with ``type`` (``started``, ``step``, ``eval``, ``checkpoint``,
``planned``, ``waiting``, ``done``) and its fields, without ``job_id`` (the URL names the job).

A posted batch is checked against the wire models below (:func:`parse_batch`) before anything of
it is applied: known keys only, integer steps (``true`` is not one) within the job's
``total_steps``, finite numbers or null. A worker's token opens its own job only, but what it posts
becomes the job's step (a step past 64 bits made every read of the job's metrics a 500 and hid
the real worker's later steps), numbers the store adds up, and text the pages show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from app.worker.text import MultilineText, scrub
from ssd.config import MAX_STEPS

RecordKind = Literal["step", "eval"]
Outcome = Literal["succeeded", "cancelled", "failed"]

# The largest legitimate batch bounds a posted body (MAX_REPORT_BYTES, checked before it is read,
# 13.4 MiB): MAX_MESSAGES messages, one of them a ``started`` whose history holds the steps between
# the server's checkpoint and the worker's (``train.checkpoint_every``, 200 by default, plus what
# a killed server never stored), each at most RECORD_BYTES of JSON (a trainer's step message is
# 265 bytes, 348 at most), and a ``done`` error of MAX_ERROR_CHARS (6 bytes each, escaped, at worst).
MAX_MESSAGES = 5000
MAX_HISTORY = 30_000
MAX_ERROR_CHARS = 10_000
RECORD_BYTES = 400
MAX_REPORT_BYTES = (MAX_MESSAGES + MAX_HISTORY) * RECORD_BYTES + 6 * MAX_ERROR_CHARS


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
class Planned:
    """A time budget's plan: the run will take ``total_steps`` steps (:mod:`ssd.budget`)."""

    job_id: str
    total_steps: int
    reason: str


@dataclass(frozen=True)
class Waiting:
    """The run waits before it can train (e.g. for the cluster's resources), and why."""

    job_id: str
    reason: str


@dataclass(frozen=True)
class Done:
    """The worker's last message: how the job ended and at which step."""

    job_id: str
    status: Outcome
    step: int | None
    error: str | None = None


Message = Started | Record | CheckpointSaved | Planned | Waiting | Done


def to_wire(message: Message) -> dict[str, Any]:
    """A message as the JSON object a remote worker posts (no ``job_id``: the URL carries it).

    Non-finite numbers become null (JSON has none; an evaluation's mAP is NaN when no image holds
    a box) and an error is scrubbed of control characters and cut to ``MAX_ERROR_CHARS``, so
    what a worker sends passes :func:`parse_batch`.
    """
    match message:
        case Started(step=step, pid=pid, history=history):
            return {"type": "started", "step": step, "pid": pid, "history": [_finite(r) for r in history]}
        case Record(kind=kind, data=data):
            return {"type": kind, "data": _finite(data)}
        case CheckpointSaved(step=step):
            return {"type": "checkpoint", "step": step}
        case Planned(total_steps=total, reason=reason):
            return {"type": "planned", "total_steps": total, "reason": scrub(reason)[:MAX_ERROR_CHARS]}
        case Waiting(reason=reason):
            return {"type": "waiting", "reason": scrub(reason)[:MAX_ERROR_CHARS]}
        case Done(status=status, step=step, error=error):
            error = None if error is None else scrub(error)[:MAX_ERROR_CHARS]
            return {"type": "done", "status": status, "step": step, "error": error}
    raise TypeError(f"not a worker message: {message!r}")  # pragma: no cover - exhaustive match


def _finite(data: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in data.items()}


# ---------------------------------------------------------------------------- the wire, checked


class BadReport(ValueError):
    """A posted batch that is not one (nothing of it is applied): ``errors`` in pydantic's shape,
    each ``loc`` starting with the message's index in the batch."""

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def _within_job(step: int, info: ValidationInfo) -> int:
    """A step of the job reported on: at most its ``total_steps`` (the validation context's ``max_step``)."""
    limit = (info.context or {}).get("max_step")
    if limit is not None and step > limit:
        raise ValueError(f"the job has {limit} steps")
    return step


JobStep = Annotated[int, Field(ge=0, le=MAX_STEPS), AfterValidator(_within_job)]  # 0: before the first step
TrainedStep = Annotated[int, Field(ge=1, le=MAX_STEPS), AfterValidator(_within_job)]


class _Wire(BaseModel):
    """Strict: ``true`` is no integer, ``"1.5"`` no number; unknown keys, NaN and Infinity are refused."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class StepMetrics(_Wire):
    """One training step, as ``ssd.train.Trainer`` reports it (a line of its ``metrics.jsonl``)."""

    step: TrainedStep
    pos_clf: float = Field(description="Confidence loss of the positive priors.")
    neg_clf: float = Field(description="Confidence loss of the mined negative priors.")
    loc: float = Field(description="Localisation (smooth L1) loss.")
    total: float = Field(description="pos_clf + neg_clf + alpha * loc.")
    num_pos: float | None = Field(None, description="Positive priors in the batch.")
    num_neg: float | None = Field(None, description="Negative priors kept by hard negative mining.")
    lr: float | None = Field(None, description="Learning rate applied at this step.")
    images_per_sec: float | None = None
    time: float = Field(description="UNIX seconds when the step ended in the worker.")


class EvalMetrics(_Wire):
    """One evaluation, as ``ssd.train.Trainer.evaluate`` reports it (null: no image held a box)."""

    step: TrainedStep
    images: int | None = Field(None, ge=0)
    time: float | None = None
    val_pos_clf: float | None = None
    val_neg_clf: float | None = None
    val_loc: float | None = None
    val_total: float | None = None
    map: float | None = None
    map50: float | None = None


class _StartedWire(_Wire):
    type: Literal["started"]
    step: JobStep
    pid: int = Field(0, ge=0)
    history: list[StepMetrics] = Field(default_factory=list, max_length=MAX_HISTORY)

    @model_validator(mode="after")
    def _history_up_to_step(self) -> _StartedWire:
        if any(record.step > self.step for record in self.history):
            raise ValueError(f"the history holds steps after the step training continues from ({self.step})")
        return self


class _StepWire(_Wire):
    type: Literal["step"]
    data: StepMetrics


class _EvalWire(_Wire):
    type: Literal["eval"]
    data: EvalMetrics


class _CheckpointWire(_Wire):
    type: Literal["checkpoint"]
    step: JobStep


class _PlannedWire(_Wire):
    type: Literal["planned"]
    total_steps: TrainedStep
    reason: MultilineText = Field(max_length=MAX_ERROR_CHARS)


class _WaitingWire(_Wire):
    type: Literal["waiting"]
    reason: MultilineText = Field(max_length=MAX_ERROR_CHARS)


class _DoneWire(_Wire):
    type: Literal["done"]
    status: Outcome
    step: JobStep | None = None
    error: MultilineText | None = Field(None, max_length=MAX_ERROR_CHARS)


_WireMessage = Annotated[
    _StartedWire | _StepWire | _EvalWire | _CheckpointWire | _PlannedWire | _WaitingWire | _DoneWire,
    Field(discriminator="type"),
]
_BATCH = TypeAdapter(Annotated[list[_WireMessage], Field(max_length=MAX_MESSAGES)])


def parse_batch(job_id: str, items: Sequence[Any], *, max_step: int) -> list[Message]:
    """The messages of a batch posted for ``job_id``, whose steps end at ``max_step`` (its ``total_steps``).

    Raises :class:`BadReport` when any item is not a message of :func:`to_wire` with steps in
    range: the batch is refused whole.
    """
    try:
        wires = _BATCH.validate_python(list(items), context={"max_step": max_step})
    except ValidationError as exc:
        raise BadReport(exc.errors(include_url=False, include_context=False, include_input=False)) from None
    return [_message(job_id, wire) for wire in wires]


def _message(job_id: str, wire: _WireMessage) -> Message:
    match wire:
        case _StartedWire(step=step, pid=pid, history=history):
            return Started(job_id, step, pid, [record.model_dump(exclude_unset=True) for record in history])
        case _StepWire(data=data) | _EvalWire(data=data):
            return Record(job_id, wire.type, data.model_dump(exclude_unset=True))
        case _CheckpointWire(step=step):
            return CheckpointSaved(job_id, step)
        case _PlannedWire(total_steps=total, reason=reason):
            return Planned(job_id, total, reason)
        case _WaitingWire(reason=reason):
            return Waiting(job_id, reason)
        case _DoneWire(status=status, step=step, error=error):
            return Done(job_id, status, step, error)
    raise TypeError(f"not a wire message: {wire!r}")  # pragma: no cover - exhaustive match
