"""Training jobs over REST: submit, list, get, cancel, resume, delete, metrics, checkpoint, events.

Routes are thin: they validate, call the runner or the store, and map the runner's
``JobNotFound``/``JobConflict`` to 404/409. The SSE stream is :func:`app.events.event_stream`.
"""

from __future__ import annotations

import io
import zipfile
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from app.deps import BroadcasterDep, RunnerDep, SettingsDep, StoreDep
from app.events import event_stream
from app.limits import check_limits
from app.runner import JobConflict, JobNotFound
from app.schemas import CONFIG_EXAMPLE, ConfigIn, JobOut, JobStatus, MetricsOut
from app.settings import Settings
from app.sse import EventStreamResponse
from ssd.config import Config, ConfigError, from_dict

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

CHECKPOINT_FILES = ("config.json", "model.weights.h5", "train_state.npz")
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "No job with this id."}}
CONFLICT: Responses = {409: {"description": "The job's status does not allow this."}}
SSE_EXAMPLE = (
    'id: 7\nevent: step\ndata: {"step":5,"pos_clf":1.93,"neg_clf":0.41,"loc":0.27,"total":2.61,'
    '"num_pos":12.0,"num_neg":36.0,"lr":0.001,"images_per_sec":310.5,"time":1767225600.123}\n\n'
    'id: 9\nevent: status\ndata: {"status":"succeeded"}\n\n'
)
BODY_EXAMPLES = {
    "tiny": {"summary": "A tiny job (seconds on a CPU)", "value": CONFIG_EXAMPLE},
    "default": {"summary": "The default recipe", "value": {}},
    "notebook": {
        "summary": "The notebook's set-up, 200 steps",
        "value": {"preset": "notebook", "train": {"steps": 200}},
    },
}


def resolve_config(body: ConfigIn | None, settings: Settings) -> Config:
    """The ``ssd`` config of a request body; a bad value is a 422 naming its field, as pydantic's are."""
    data = body.model_dump(exclude_unset=True) if body is not None else {}
    return config_from_data(data, settings)


def config_from_data(data: dict[str, Any], settings: Settings, *, loc: tuple[str, ...] = ("body",)) -> Config:
    """:func:`ssd.config.from_dict` plus the server's limits; a ``ConfigError`` becomes a 422
    whose ``loc`` is ``loc`` followed by the dotted field (where the config sits in the request)."""
    try:
        config = from_dict(data)
        check_limits(
            config,
            max_priors=settings.max_priors,
            max_memory_gib=settings.max_memory_gib,
            max_train_images=settings.max_train_images,
        )
    except ConfigError as exc:
        where = (*loc, *exc.field.split("."))
        raise RequestValidationError([{"loc": where, "msg": exc.message, "type": "value_error"}]) from exc
    return config


def _job(runner: Any, job_id: str) -> dict[str, Any]:
    try:
        job: dict[str, Any] = runner.get(job_id)
    except JobNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}") from None
    return job


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobOut, responses={422: {}})
def submit_job(
    runner: RunnerDep,
    settings: SettingsDep,
    body: Annotated[ConfigIn | None, Body(openapi_examples=BODY_EXAMPLES)] = None,
) -> dict[str, Any]:
    """Queue a training job; every config key is optional (defaults: the ``default`` preset)."""
    config = resolve_config(body, settings)
    return runner.submit(name=config.name, config=config.to_dict(), total_steps=config.train.steps)


@router.get("", response_model=list[JobOut])
def list_jobs(
    store: StoreDep,
    status_: Annotated[JobStatus | None, Query(alias="status", description="Only jobs with this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many jobs.")] = 100,
) -> list[dict[str, Any]]:
    """Jobs, newest first."""
    return store.list_jobs(status=status_.value if status_ else None, limit=limit)


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def get_job(job_id: str, runner: RunnerDep) -> dict[str, Any]:
    """One job."""
    return _job(runner, job_id)


@router.post("/{job_id}/cancel", response_model=JobOut, responses={**NOT_FOUND, **CONFLICT})
def cancel_job(job_id: str, runner: RunnerDep) -> dict[str, Any]:
    """Cancel: a queued job at once; a running one after its current step (``cancel_requested``)."""
    try:
        return runner.cancel(job_id)
    except JobNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}") from None
    except JobConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.post("/{job_id}/resume", response_model=JobOut, responses={**NOT_FOUND, **CONFLICT})
def resume_job(job_id: str, runner: RunnerDep) -> dict[str, Any]:
    """Queue a failed, cancelled or interrupted job again; it continues from its last checkpoint."""
    try:
        return runner.resume(job_id)
    except JobNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}") from None
    except JobConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.delete(
    "/{job_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses={**NOT_FOUND, **CONFLICT}
)
def delete_job(job_id: str, runner: RunnerDep) -> Response:
    """Delete a job that is not queued or running, with its metrics and files."""
    try:
        runner.delete(job_id)
    except JobNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}") from None
    except JobConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def downsample(rows: list[dict[str, Any]], max_points: int | None) -> list[dict[str, Any]]:
    """At most ``max_points`` rows evenly spread over ``rows``, always with the first and the last."""
    if max_points is None or len(rows) <= max_points:
        return rows
    if max_points == 1:
        return rows[-1:]
    n = len(rows) - 1
    picks = sorted({round(i * n / (max_points - 1)) for i in range(max_points)})
    return [rows[i] for i in picks]


@router.get("/{job_id}/metrics", response_model=MetricsOut, responses=NOT_FOUND)
def job_metrics(
    job_id: str,
    runner: RunnerDep,
    store: StoreDep,
    after_step: Annotated[int, Query(ge=0, description="Only steps after this one.")] = 0,
    max_points: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="Downsample evenly to this many steps (keeps the last).")
    ] = None,
) -> dict[str, Any]:
    """Metric history: every step's losses and every evaluation (also of finished jobs)."""
    _job(runner, job_id)
    rows = store.metrics(job_id, after_step=after_step)
    return {
        "job_id": job_id,
        "metrics": downsample(rows, max_points),
        "evals": store.evals(job_id, after_step=after_step),
    }


@router.get(
    "/{job_id}/checkpoint",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "config.json, model.weights.h5, train_state.npz"},
        404: {"description": "No such job, or no checkpoint yet."},
    },
)
def job_checkpoint(job_id: str, runner: RunnerDep, settings: SettingsDep) -> Response:
    """The latest checkpoint as a zip, loadable with ``ssdboard detect --checkpoint``."""
    _job(runner, job_id)
    job_dir = settings.jobs_dir / job_id
    if not all((job_dir / name).exists() for name in CHECKPOINT_FILES):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} has no checkpoint yet")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in CHECKPOINT_FILES:
            archive.writestr(name, (job_dir / name).read_bytes())  # read once: files are replaced atomically
    headers = {"Content-Disposition": f'attachment; filename="ssdboard-{job_id}-checkpoint.zip"'}
    return Response(buffer.getvalue(), media_type="application/zip", headers=headers)


@router.get(
    "/{job_id}/events",
    response_class=EventStreamResponse,
    responses={200: {"content": {"text/event-stream": {"example": SSE_EXAMPLE}}}, **NOT_FOUND},
)
async def job_events(
    job_id: str,
    request: Request,
    store: StoreDep,
    broadcaster: BroadcasterDep,
    last_event_id: Annotated[
        str | None, Header(description="Resume after this event id (sent by EventSource).")
    ] = None,
    last_event_id_query: Annotated[
        int | None, Query(alias="last_event_id", ge=0, description="Same as the Last-Event-ID header.")
    ] = None,
    after_step: Annotated[
        int | None, Query(ge=0, description="Replay only steps and evals after this step, and the current status.")
    ] = None,
    start: Annotated[
        Literal["history", "live"], Query(alias="from", description="history: replay everything first; live: don't.")
    ] = "history",
) -> EventStreamResponse:
    """Server-Sent Events: ``step``, ``eval`` and ``status`` events, ids increasing per job.

    Without ``Last-Event-ID`` the whole history is replayed first, then live events follow; the
    stream ends after a terminal status. A ``status`` event with a ``step`` (running, queued
    after a resume) means training continues after that step: drop points beyond it.
    """
    if await run_in_threadpool(store.get_job, job_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    after_seq = last_event_id_query or 0
    if last_event_id is not None:
        try:
            after_seq = max(int(last_event_id), 0)
        except ValueError:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "Last-Event-ID must be an event id") from None
    stream = event_stream(
        store,
        broadcaster,
        job_id,
        after_seq=after_seq,
        after_step=after_step if last_event_id is None and last_event_id_query is None else None,
        live_only=start == "live",
    )
    return EventStreamResponse(stream)
