"""The FastAPI application: ``create_app(settings)`` and ``serve`` (``ssdboard serve``).

Importing this module is cheap and starts nothing: the lifespan opens the job store, recovers
jobs a previous server left running, starts the runner and builds the services (kept on
``app.state``, handed to routes by :mod:`app.api.deps`); on exit it stops the workers (their jobs
become ``interrupted``, resumable) and closes the live streams. TensorFlow is not imported
here: training runs in spawned worker processes, and the detections viewer loads it on the
first detector it needs.
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

from app.api import compare, datasets, detections, errors, exports, health, jobs, priors, sweeps, worker
from app.execution.events import Broadcaster
from app.execution.runner import JobRunner
from app.http import security, sse
from app.services.analysis import AnalysisService
from app.services.compare import CompareService
from app.services.dataset_browser import DatasetBrowser
from app.services.datasets import DatasetService
from app.services.detections import DetectionService
from app.services.export import ExportService
from app.services.heavy import HeavyWork
from app.services.jobs import JobService
from app.services.priors import PriorService
from app.services.run_health import RunHealthService
from app.services.sweeps import SweepService
from app.settings import Settings, byte_size
from app.store.jobs import JobStore

log = logging.getLogger("ssdboard")

DESCRIPTION = """Train SSD detectors in background worker processes and follow them live.

Submit a training config (every key optional) to `POST /api/jobs`, follow its losses with
`GET /api/jobs/{id}/events` (Server-Sent Events) or `GET /api/jobs/{id}/metrics`, and download
the checkpoint with `GET /api/jobs/{id}/checkpoint`.

When the server has a token (`SSDBOARD_TOKEN`), every `POST`, `PUT`, `PATCH` and `DELETE` under
`/api/` needs `Authorization: Bearer <token>` (401 otherwise); reads stay open.
"""
LIMITS = """
Request bodies are limited (413): {max_body} of JSON, {max_upload} for an upload (this server's
`SSDBOARD_MAX_BODY_BYTES` and `SSDBOARD_MAX_UPLOAD_BYTES`).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The dashboard app for ``settings`` (default: from ``SSDBOARD_*`` environment variables)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        store = JobStore(settings.db_url)
        broadcaster = Broadcaster()
        runner = JobRunner(
            store=store,
            settings=settings,
            broadcaster=broadcaster,
            report_app=lambda r: worker.report_app(r, settings),  # local workers post to it
        )
        runner.start(asyncio.get_running_loop())
        app.state.store, app.state.broadcaster, app.state.runner = store, broadcaster, runner
        app.state.jobs = JobService(runner=runner, store=store, broadcaster=broadcaster, settings=settings)
        app.state.compare = CompareService(store)
        app.state.sweeps = SweepService(app.state.jobs)
        heavy = HeavyWork(settings.max_heavy_reads)  # model runs and conversions share one bound
        app.state.exports = ExportService(app.state.jobs, heavy=heavy)
        app.state.run_health = RunHealthService(app.state.jobs)
        app.state.analysis = AnalysisService(app.state.jobs, max_images=settings.max_eval_images, heavy=heavy)
        app.state.dataset_browser = DatasetBrowser(app.state.jobs)
        app.state.priors = PriorService(app.state.dataset_browser, settings)
        app.state.datasets = DatasetService(app.state.jobs, settings)
        await run_in_threadpool(app.state.datasets.start)  # sweeps what a stopped server left
        app.state.detections = DetectionService(
            settings.jobs_dir,
            max_upload_bytes=settings.max_upload_bytes,
            max_eval_images=settings.max_eval_images,
            data_dir=settings.artifact_root,
            heavy=heavy,
        )
        loop = asyncio.get_running_loop()
        app.state.end_streams = lambda: loop.call_soon_threadsafe(broadcaster.close_all)
        log.info("data in %s", settings.data_dir.resolve())
        try:
            yield
        finally:
            app.state.datasets.close()
            await run_in_threadpool(runner.stop)
            broadcaster.close_all()
            store.close()

    description = DESCRIPTION + LIMITS.format(
        max_body=byte_size(settings.max_body_bytes), max_upload=byte_size(settings.max_upload_bytes)
    )
    app = FastAPI(title="ssdboard", version="0.1.0", description=description, lifespan=lifespan)
    app.state.settings = settings
    errors.install(app)
    for module in (health, jobs, worker, compare, sweeps, exports, detections, datasets, priors):
        app.include_router(module.router)
    app.include_router(health.config_router)
    if importlib.util.find_spec("app.api.pages") is not None:
        from app.api import pages

        app.include_router(pages.router)
        pages.mount_static(app)
    # The worker route's own token check and body bound, inside the security middleware below.
    app.add_middleware(worker.WorkerGate)
    token = settings.token.get_secret_value() if settings.token else None
    security.install(
        app,
        token=token,
        max_body=settings.max_body_bytes,
        max_upload=settings.max_upload_bytes,
        upload_limits={"/api/datasets": settings.max_dataset_bytes},
        cors_origins=settings.cors_origins,
        hosts=security.allowed_hosts(settings.host, settings.allowed_hosts),
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

    Raises :class:`app.http.security.UnsafeBindError` for a non-loopback host without a token, unless
    ``insecure`` (then it logs a warning), and :class:`app.store.migrations.SchemaTooNew` for a database
    a newer ssdboard migrated.
    """
    import uvicorn

    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": Path(data_dir) if data_dir else None}
    settings = Settings().model_copy(update={k: v for k, v in overrides.items() if v is not None})
    warning = security.check_bind(settings.host, token_set=settings.token is not None, insecure=insecure)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    if warning:
        log.warning("%s\n%s\n%s", "!" * 78, warning, "!" * 78)
    from app.http import server as http

    open_files, hard = http.raise_open_files_limit()
    limits = http.connection_limits(settings.max_connections, open_files, concurrent_jobs=settings.max_concurrent_jobs)
    log.log(
        logging.WARNING if limits.clamped else logging.INFO,
        "serving %d connections (SSDBOARD_MAX_CONNECTIONS=%d%s), 503 beyond; open-files limit %d (hard %d)",
        limits.limit,
        settings.max_connections,
        ", lowered to fit the open-files limit" if limits.clamped else "",
        open_files,
        hard,
    )
    # Migrate before binding: a database from a newer ssdboard (app.store.migrations.SchemaTooNew) stops
    # the command with its message, not a traceback from the lifespan.
    JobStore(settings.db_url).close()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=5,  # SSE streams are long-lived; don't wait for them forever
        http=http.protocol_class(header_timeout=settings.header_timeout, max_open=limits.cap),
        limit_concurrency=limits.limit,
        timeout_keep_alive=settings.keep_alive_timeout,
    )

    def end_streams() -> None:  # set by the lifespan once the broadcaster exists
        if hasattr(app.state, "end_streams"):
            app.state.end_streams()

    server = sse.Server(config, on_exit=end_streams)
    server.run()
    return 0 if server.started else 1
