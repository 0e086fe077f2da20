"""Training jobs over REST: submit, list (filtered, sorted, paged), get, rename/tag/annotate, cancel,
resume, delete, metrics (JSON, CSV), checkpoint, events.

Routes are thin: they parse the request and call :class:`app.services.jobs.JobService`; its
domain errors become 404/409/422 in ``app.api.errors``. The SSE stream is
:func:`app.execution.events.event_stream`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Query, Response, status
from fastapi.responses import StreamingResponse

from app.api.deps import JobsDep, RunHealthDep
from app.api.schemas import CONFIG_EXAMPLE, ConfigIn, HealthOut, JobOut, JobPatch, MetricsOut
from app.domain import JobStatus
from app.http.sse import EventStreamResponse
from app.services.metrics_csv import EVAL_COLUMNS, STEP_COLUMNS, CsvKind, metrics_csv
from app.store.jobs import MAX_INT
from app.store.query import SORT_KEYS
from app.worker.text import PrintableText
from ssd.checkpoint import CHECKPOINT_FILES

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

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


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobOut, responses={422: {}})
def submit_job(
    jobs: JobsDep,
    body: Annotated[ConfigIn | None, Body(openapi_examples=BODY_EXAMPLES)] = None,
) -> dict[str, Any]:
    """Queue a training job; every config key is optional (defaults: the ``default`` preset)."""
    return jobs.submit(body.model_dump(exclude_unset=True) if body is not None else {}).to_dict()


SORT_HELP = (
    f"Sort key, '-' first for descending: {', '.join(SORT_KEYS)}. Jobs without the value (no evaluation "
    "yet) come last either way; ties newest first. Loss parts and images_per_sec are the latest step's."
)


@router.get(
    "",
    response_model=list[JobOut],
    responses={200: {"headers": {"X-Total-Count": {"description": "Jobs matching the filters, all pages."}}}},
)
def list_jobs(
    jobs: JobsDep,
    response: Response,
    status_: Annotated[JobStatus | None, Query(alias="status", description="Only jobs with this status.")] = None,
    tag: Annotated[PrintableText | None, Query(max_length=200, description="Only jobs carrying this tag.")] = None,
    dataset: Annotated[
        PrintableText | None, Query(max_length=200, description="Only jobs whose data.dataset is this.")
    ] = None,
    sweep: Annotated[PrintableText | None, Query(max_length=32, description="Only the jobs of this sweep.")] = None,
    q: Annotated[
        PrintableText | None, Query(max_length=200, description="Only jobs whose name contains this (any case).")
    ] = None,
    sort: Annotated[str, Query(max_length=40, description=SORT_HELP)] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many jobs.")] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9, description="Skip this many (paging).")] = 0,
) -> list[dict[str, Any]]:
    """Jobs matching every filter given, sorted (default: newest first), one page; ``X-Total-Count``: all matches."""
    items, total = jobs.page(
        status=status_.value if status_ else None,
        tag=tag,
        dataset=dataset,
        sweep=sweep,
        q=q,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    response.headers["X-Total-Count"] = str(total)
    return [job.to_dict() for job in items]


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def get_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """One job."""
    return jobs.get(job_id).to_dict()


@router.patch("/{job_id}", response_model=JobOut, responses={**NOT_FOUND, 422: {}})
def update_job(job_id: str, body: JobPatch, jobs: JobsDep) -> dict[str, Any]:
    """Rename a job, replace its tags, or its notes; fields left out stay as they are."""
    return jobs.update_meta(job_id, name=body.name, tags=body.tags, notes=body.notes).to_dict()


@router.post("/{job_id}/cancel", response_model=JobOut, responses={**NOT_FOUND, **CONFLICT})
def cancel_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """Cancel: a queued job at once; a running one after its current step (``cancel_requested``)."""
    return jobs.cancel(job_id).to_dict()


@router.post("/{job_id}/resume", response_model=JobOut, responses={**NOT_FOUND, **CONFLICT})
def resume_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """Queue a failed, cancelled or interrupted job again; it continues from its last checkpoint."""
    return jobs.resume(job_id).to_dict()


@router.delete(
    "/{job_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses={**NOT_FOUND, **CONFLICT}
)
def delete_job(job_id: str, jobs: JobsDep) -> Response:
    """Delete a job that is not queued or running, with its metrics and files."""
    jobs.delete(job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{job_id}/health", response_model=HealthOut, responses=NOT_FOUND)
def job_health(job_id: str, health: RunHealthDep) -> dict[str, Any]:
    """Why the run may learn little: steps with no positive prior, a loss gone NaN or diverging,
    validation loss rising while training loss falls, boxes no prior can match or smaller than the
    smallest prior, rare classes, the same image in both splits; each with evidence and advice."""
    return health.health(job_id)


@router.get("/{job_id}/metrics", response_model=MetricsOut, responses=NOT_FOUND)
def job_metrics(
    job_id: str,
    jobs: JobsDep,
    after_step: Annotated[int, Query(ge=0, le=MAX_INT, description="Only steps after this one.")] = 0,
    max_points: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="Downsample evenly to this many steps (keeps the last).")
    ] = None,
) -> dict[str, Any]:
    """Metric history: every step's losses and every evaluation (also of finished jobs)."""
    return jobs.metrics(job_id, after_step=after_step, max_points=max_points)


@router.get(
    "/{job_id}/metrics.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "A header line, then one line per step or evaluation."},
        **NOT_FOUND,
    },
)
def job_metrics_csv(
    job_id: str,
    jobs: JobsDep,
    kind: Annotated[
        CsvKind,
        Query(description=f"steps: {', '.join(STEP_COLUMNS)}; evals: {', '.join(EVAL_COLUMNS)}."),
    ] = "steps",
) -> StreamingResponse:
    """Every step's metrics (or every evaluation) as a CSV download."""
    download = metrics_csv(jobs, job_id, kind)
    headers = {"Content-Disposition": f'attachment; filename="{download.filename}"'}
    return StreamingResponse(download.lines, media_type="text/csv; charset=utf-8", headers=headers)


@router.get(
    "/{job_id}/checkpoint",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": ", ".join(CHECKPOINT_FILES)},
        404: {"description": "No such job, or no checkpoint yet."},
    },
)
def job_checkpoint(job_id: str, jobs: JobsDep) -> Response:
    """The latest checkpoint as a zip, loadable with ``ssdboard detect --checkpoint``."""
    headers = {"Content-Disposition": f'attachment; filename="ssdboard-{job_id}-checkpoint.zip"'}
    return Response(jobs.checkpoint_zip(job_id), media_type="application/zip", headers=headers)


@router.get(
    "/{job_id}/events",
    response_class=EventStreamResponse,
    responses={200: {"content": {"text/event-stream": {"example": SSE_EXAMPLE}}}, **NOT_FOUND},
)
async def job_events(
    job_id: str,
    jobs: JobsDep,
    last_event_id: Annotated[
        str | None, Header(description="Resume after this event id (sent by EventSource).")
    ] = None,
    last_event_id_query: Annotated[
        int | None, Query(alias="last_event_id", ge=0, le=MAX_INT, description="Same as the Last-Event-ID header.")
    ] = None,
    after_step: Annotated[
        int | None,
        Query(ge=0, le=MAX_INT, description="Replay only steps and evals after this step, and the current status."),
    ] = None,
    start: Annotated[
        Literal["history", "live"], Query(alias="from", description="history: replay everything first; live: don't.")
    ] = "history",
) -> EventStreamResponse:
    """Server-Sent Events: ``step``, ``eval`` and ``status`` events, ids increasing per job.

    Without ``Last-Event-ID`` the whole history is replayed first, then live events follow; the
    stream ends after a terminal status. A ``status`` event with a ``step`` (running, queued
    after a resume) means training continues after that step: drop points beyond it. An id past
    the job's last event means after everything: the stream starts with the current status.
    """
    after_seq = last_event_id_query or 0
    if last_event_id is not None:
        try:
            after_seq = min(max(int(last_event_id), 0), MAX_INT)  # a browser sends back what it was given
        except ValueError:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "Last-Event-ID must be an event id") from None
    stream = await jobs.events(
        job_id,
        after_seq=after_seq,
        after_step=after_step if last_event_id is None and last_event_id_query is None else None,
        live_only=start == "live",
    )
    return EventStreamResponse(stream)
