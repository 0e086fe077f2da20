"""Where job workers report: ``POST /api/jobs/{id}/worker/events``, with the job's worker token.

A worker that runs elsewhere (a Ray job) posts its messages in batches (:mod:`app.worker_client`).
The token is the one the runner generated for this run of this job (the store keeps its SHA-256):
it is not the admin token, which this route refuses, and it opens no other route or job. The
admin token check (:class:`app.security.BearerTokenMiddleware`) leaves this route to
:func:`worker_auth`, which answers like it: 401 with ``WWW-Authenticate: Bearer realm="ssdboard"``
(``error="invalid_token"`` for a wrong one), before the body is read. The admin token is told
404 for a job that does not exist, as every other route tells it. A batch is checked whole
(:func:`app.messages.parse_batch`): one malformed message and nothing of it is applied, 422.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from app.api import errors
from app.messages import MAX_MESSAGES, BadReport
from app.runner import JobRunner, NotAccepting
from app.settings import Settings

router = APIRouter(prefix="/api/jobs", tags=["workers"])

REALM = 'Bearer realm="ssdboard"'


class WorkerBatch(BaseModel):
    """Messages of one worker in the order it sent them (:func:`app.messages.to_wire`)."""

    messages: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_MESSAGES)


class WorkerReply(BaseModel):
    """Whether the worker should stop (its job was cancelled, or is no longer running)."""

    cancel: bool


def worker_auth(job_id: str, request: Request, authorization: Annotated[str | None, Header()] = None) -> JobRunner:
    """The runner, once the request carries ``job_id``'s worker token; else 401 (or 404, see above)."""
    runner: JobRunner = request.app.state.runner
    scheme, _, credentials = (authorization or "").partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else ""
    if not token:
        detail = "a worker reports with 'Authorization: Bearer <its job's worker token>'"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": REALM})
    if runner.worker_authorized(job_id, token):
        return runner
    admin = request.app.state.settings.token
    if admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode()):
        if runner.store.get_job(job_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "not this job's worker token",
        headers={"WWW-Authenticate": REALM + ', error="invalid_token"'},
    )


@router.post(
    "/{job_id}/worker/events",
    responses={
        401: {"description": "Not this job's worker token (the admin token is not one)."},
        404: {"description": "No job with this id (told to the admin token only)."},
        422: {"description": "A message that is not one (nothing of the batch is applied)."},
        503: {"description": "The server is stopping; send the batch again later."},
    },
)
def report(job_id: str, batch: WorkerBatch, runner: Annotated[JobRunner, Depends(worker_auth)]) -> WorkerReply:
    """A worker's steps, evaluations, checkpoints and outcome; steps the server has are ignored."""
    try:
        return WorkerReply(**runner.ingest(job_id, batch.messages))
    except NotAccepting as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "1"}) from exc
    except BadReport as exc:
        raise RequestValidationError([{**e, "loc": ("body", "messages", *e["loc"])} for e in exc.errors]) from exc


def report_app(runner: JobRunner, settings: Settings) -> FastAPI:
    """An app with this route alone, for the local workers' loopback listener
    (:class:`app.report_listener.ReportListener`); it reads the runner and settings from its state."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(router)
    errors.install(app)
    app.state.runner = runner
    app.state.settings = settings
    return app
