"""Where job workers report: ``POST /api/jobs/{id}/worker/events``, with the job's worker token.

A worker that runs elsewhere (a Ray job) posts its messages in batches (:mod:`app.worker.reporter`).
The token is the one the runner generated for this run of this job (the store keeps its SHA-256):
it is not the admin token, which this route refuses, and it opens no other route or job. The
admin token check (:class:`app.http.security.BearerTokenMiddleware`) leaves this route to
:class:`WorkerGate`, which answers like it: 401 with ``WWW-Authenticate: Bearer realm="ssdboard"``
(``error="invalid_token"`` for a wrong one), before the body is read. The admin token is told
404 for a job that does not exist, as every other route tells it. A batch is checked whole
(:func:`app.worker.messages.parse_batch`): one malformed message and nothing of it is applied, 422.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import errors
from app.execution.runner import JobRunner, NotAccepting
from app.http.security import WORKER_ROUTE, BodySizeLimitMiddleware, route_path, send_json
from app.settings import Settings
from app.worker.messages import MAX_MESSAGES, MAX_REPORT_BYTES, BadReport

router = APIRouter(prefix="/api/jobs", tags=["workers"])

REALM = 'Bearer realm="ssdboard"'


class WorkerBatch(BaseModel):
    """Messages of one worker in the order it sent them (:func:`app.worker.messages.to_wire`)."""

    messages: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_MESSAGES)


class WorkerReply(BaseModel):
    """Whether the worker should stop (its job was cancelled, or is no longer running)."""

    cancel: bool


def worker_auth(runner: JobRunner, settings: Settings, job_id: str, authorization: str | None) -> None:
    """Nothing once ``authorization`` carries ``job_id``'s worker token; else HTTPException 401 (or 404, see above)."""
    scheme, _, credentials = (authorization or "").partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else ""
    if not token:
        detail = "a worker reports with 'Authorization: Bearer <its job's worker token>'"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": REALM})
    if runner.worker_authorized(job_id, token):
        return
    admin = settings.token
    if admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode()):
        if runner.store.get_job(job_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "not this job's worker token",
        headers={"WWW-Authenticate": REALM + ', error="invalid_token"'},
    )


class WorkerGate:
    """The worker route's door, as pure ASGI: the job's worker token first, then at most
    ``MAX_REPORT_BYTES`` of body (:data:`app.worker.messages.MAX_REPORT_BYTES`: the largest batch a
    worker sends), 413 beyond, by ``Content-Length`` or by counting.

    A dependency would run only after FastAPI has read and parsed the whole body: an
    unauthenticated 200 MB post to the loopback listener took 390 MB of the server's memory
    before its refusal. Reads the runner and settings from the app's state (the dashboard's,
    set in its lifespan, or the listener's :func:`report_app`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.bounded = BodySizeLimitMiddleware(app, max_body=MAX_REPORT_BYTES, max_upload=MAX_REPORT_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        if not WORKER_ROUTE.match(path):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        job_id = path.split("/")[3]  # /api/jobs/{job_id}/worker/events
        authorization = Headers(scope=scope).get("authorization")
        try:  # the runner may read the store: not on the event loop
            await run_in_threadpool(worker_auth, state.runner, state.settings, job_id, authorization)
        except HTTPException as exc:
            await send_json(send, exc.status_code, str(exc.detail), exc.headers)
            return
        await self.bounded(scope, receive, send)


@router.post(
    "/{job_id}/worker/events",
    responses={
        401: {"description": "Not this job's worker token (the admin token is not one)."},
        404: {"description": "No job with this id (told to the admin token only)."},
        413: {"description": "Larger than the largest batch a worker sends."},
        422: {"description": "A message that is not one (nothing of the batch is applied)."},
        503: {"description": "The server is stopping; send the batch again later."},
    },
)
def report(job_id: str, batch: WorkerBatch, request: Request) -> WorkerReply:
    """A worker's steps, evaluations, checkpoints and outcome; steps the server has are ignored."""
    runner: JobRunner = request.app.state.runner  # WorkerGate let only this job's worker in
    try:
        return WorkerReply(**runner.ingest(job_id, batch.messages))
    except NotAccepting as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "1"}) from exc
    except BadReport as exc:
        raise RequestValidationError([{**e, "loc": ("body", "messages", *e["loc"])} for e in exc.errors]) from exc


def report_app(runner: JobRunner, settings: Settings) -> FastAPI:
    """An app with this route alone, for the local workers' loopback listener
    (:class:`app.execution.report_listener.ReportListener`); it reads the runner and settings from its state."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(router)
    errors.install(app)
    app.add_middleware(WorkerGate)
    app.state.runner = runner
    app.state.settings = settings
    return app
