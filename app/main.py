"""The FastAPI application: ``create_app(settings)`` and ``serve`` (``ssdboard serve``).

Importing this module is cheap and starts nothing: the lifespan opens the job store, recovers
jobs a previous server left running, and starts the runner; on exit it stops the workers (their
jobs become ``interrupted``, resumable) and closes the live streams. TensorFlow is never
imported here: training runs in spawned worker processes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app import security, sse
from app.api import datasets, detections, health, jobs, priors
from app.events import Broadcaster
from app.runner import JobRunner
from app.settings import Settings, get_settings
from app.store import JobStore

log = logging.getLogger("ssdboard")

DESCRIPTION = """Train SSD detectors in background worker processes and follow them live.

Submit a training config (every key optional) to `POST /api/jobs`, follow its losses with
`GET /api/jobs/{id}/events` (Server-Sent Events) or `GET /api/jobs/{id}/metrics`, and download
the checkpoint with `GET /api/jobs/{id}/checkpoint`.

When the server has a token (`SSDBOARD_TOKEN`), every `POST`, `PUT`, `PATCH` and `DELETE` under
`/api/` needs `Authorization: Bearer <token>` (401 otherwise); reads stay open. Request bodies
are limited (413): 1 MiB of JSON, 5 MiB for an upload.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The dashboard app for ``settings`` (default: from ``SSDBOARD_*`` environment variables)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        store = JobStore(settings.db_url)
        broadcaster = Broadcaster()
        runner = JobRunner(store=store, settings=settings, broadcaster=broadcaster)
        runner.start(asyncio.get_running_loop())
        app.state.store, app.state.broadcaster, app.state.runner = store, broadcaster, runner
        loop = asyncio.get_running_loop()
        app.state.end_streams = lambda: loop.call_soon_threadsafe(broadcaster.close_all)
        log.info("data in %s", settings.data_dir.resolve())
        try:
            yield
        finally:
            await run_in_threadpool(runner.stop)
            broadcaster.close_all()
            store.close()

    app = FastAPI(title="ssdboard", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.include_router(health.router)
    app.include_router(health.config_router)
    app.include_router(jobs.router)
    app.include_router(detections.router)
    app.include_router(datasets.router)
    app.include_router(priors.router)
    if importlib.util.find_spec("app.api.pages") is not None:
        from app.api import pages

        app.include_router(pages.router)
        app.include_router(detections.page_router)
        app.include_router(datasets.page_router)
        app.include_router(priors.page_router)
        pages.mount_static(app)
    token = settings.token.get_secret_value() if settings.token else None
    security.install(
        app,
        token=token,
        max_body=settings.max_body_bytes,
        max_upload=settings.max_upload_bytes,
        cors_origins=settings.cors_origins,
    )
    return app


def serve(
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: str | Path | None = None,
    insecure: bool = False,
) -> int:
    """Run the dashboard with uvicorn until interrupted; arguments left None come from the settings.

    Raises :class:`app.security.UnsafeBindError` for a non-loopback host without a token, unless
    ``insecure`` (then it logs a warning).
    """
    import uvicorn

    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": Path(data_dir) if data_dir else None}
    settings = Settings().model_copy(update={k: v for k, v in overrides.items() if v is not None})
    warning = security.check_bind(settings.host, token_set=settings.token is not None, insecure=insecure)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    if warning:
        log.warning("%s\n%s\n%s", "!" * 78, warning, "!" * 78)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=5,  # SSE streams are long-lived; don't wait for them forever
    )

    def end_streams() -> None:  # set by the lifespan once the broadcaster exists
        if hasattr(app.state, "end_streams"):
            app.state.end_streams()

    server = sse.Server(config, on_exit=end_streams)
    server.run()
    return 0 if server.started else 1
