"""Every HTML page and the static files they load: jobs list, new-job form, job page, compare
page, detections viewer, datasets (list and upload, one dataset's report, one problem of it),
dataset browser, one dataset image, prior explorer, sweeps (list, new-sweep form, one sweep).

The pages are thin shells: templates render the layout and the JavaScript modules in
``static/js`` fetch everything else from the JSON API, so a page never disagrees with the API.

``create_app`` wires this module with two calls::

    app.include_router(pages.router)
    pages.mount_static(app)

Pages that name a job answer 404 for an unknown job only where the page cannot work without
it (the prior explorer falls back to the default config otherwise, so a typo must not pass).

plotly.js comes from the installed ``plotly`` package (no CDN) and is served at
``/static/vendor/plotly.min.js`` with a long cache lifetime; its URL carries the package
version, so upgrading plotly changes the URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import plotly
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.datasets import IndexPath
from app.api.deps import DatasetsDep, JobsDep, SettingsDep
from app.figures.dataset import CLASS_COLORS
from app.services.dataset_browser import Split
from app.settings import byte_size

# app/templates and app/static are symlinks to the repository's templates/ and static/, so the
# same lookup works in a checkout, an editable install and a built wheel (which copies them into
# the app package as package data: pyproject's [tool.setuptools.package-data]).
PACKAGE_DIR = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PLOTLY_URL = f"/static/vendor/plotly.min.js?v={plotly.__version__}"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
# One source for the class colours: the figures' palette, written into pages with charts as JSON
# (base.html) for what the browser colours itself (the dataset thumbnails).
templates.env.globals["class_colors"] = list(CLASS_COLORS)

router = APIRouter(tags=["pages"], include_in_schema=False)


def _page(request: Request, template: str, *, active: str, **context: Any) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    return templates.TemplateResponse(
        request,
        template,
        {"root": root, "active": active, "plotly_url": root + PLOTLY_URL, **context},
    )


@router.get("/", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    """The jobs list."""
    return _page(request, "jobs.html", active="jobs", title="Jobs")


@router.get("/jobs/new", response_class=HTMLResponse)
def new_job_page(request: Request) -> HTMLResponse:
    """The new-job form."""
    return _page(request, "new_job.html", active="new", title="New job")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> HTMLResponse:
    """One job: live loss and mAP charts, progress, config, cancel and resume."""
    return _page(request, "job.html", active="jobs", title=f"Job {job_id}", job_id=job_id)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    """2 to 10 jobs overlaid (``?jobs=ID1,ID2,...``); the page itself explains a bad selection."""
    return _page(request, "compare.html", active="compare", title="Compare jobs")


@router.get("/jobs/{job_id}/detections", response_class=HTMLResponse)
def detections_page(request: Request, job_id: str) -> HTMLResponse:
    """A job's detections over validation images, its evaluation and an upload form."""
    return _page(request, "detections.html", active="jobs", title=f"Detections · job {job_id}", job_id=job_id)


@router.get("/sweeps", response_class=HTMLResponse)
def sweeps_page(request: Request) -> HTMLResponse:
    """The sweeps: progress and best mAP of each."""
    return _page(request, "sweeps.html", active="sweeps", title="Sweeps")


@router.get("/sweeps/new", response_class=HTMLResponse)
def new_sweep_page(request: Request) -> HTMLResponse:
    """The new-sweep form: the new-job form's fields, each fixed or swept (grid or random)."""
    return _page(request, "sweep_new.html", active="sweeps", title="New sweep")


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: str) -> HTMLResponse:
    """One sweep: progress, its runs with the swept values and best mAP, compare and cancel."""
    return _page(request, "sweep.html", active="sweeps", title=f"Sweep {sweep_id}", sweep_id=sweep_id)


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    """The datasets: a table, and the upload form with its progress bar."""
    limit = byte_size(settings.max_dataset_bytes)
    return _page(request, "datasets.html", active="datasets", title="Datasets", max_dataset=limit)


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
async def dataset_report_page(request: Request, dataset_id: str, datasets: DatasetsDep) -> HTMLResponse:
    """One dataset: its counts, classes and validation report (404 for an unknown dataset)."""
    meta = await run_in_threadpool(datasets.summary, dataset_id)
    title = f"Dataset {meta['name']}"
    return _page(request, "dataset_report.html", active="datasets", title=title, dataset_id=dataset_id)


@router.get("/datasets/{dataset_id}/problems/{index}", response_class=HTMLResponse)
async def dataset_problem_page(
    request: Request, dataset_id: str, index: IndexPath, datasets: DatasetsDep
) -> HTMLResponse:
    """One problem of a dataset's report over its image."""
    meta = await run_in_threadpool(datasets.summary, dataset_id)
    title = f"Problem {index} · {meta['name']}"
    context = {"dataset_id": dataset_id, "index": index}
    return _page(request, "dataset_problem.html", active="datasets", title=title, **context)


@router.get("/dataset", response_class=HTMLResponse)
def dataset_page(request: Request) -> HTMLResponse:
    """Pages of thumbnails with their boxes, and the split's statistics."""
    return _page(request, "dataset.html", active="dataset", title="Dataset")


@router.get("/dataset/{split}/{index}", response_class=HTMLResponse)
def image_page(request: Request, split: Split, index: IndexPath) -> HTMLResponse:
    """One image, zoomable, with its ground truth."""
    return _page(request, "dataset_image.html", active="dataset", title=f"{split} #{index}", split=split, index=index)


@router.get("/priors", response_class=HTMLResponse)
async def priors_page(
    request: Request,
    jobs: JobsDep,
    job: Annotated[str | None, Query(description="Start from this job's config.")] = None,
) -> HTMLResponse:
    """The prior explorer, with a job's config when ``?job=ID``."""
    if job is not None:
        await run_in_threadpool(jobs.get, job)  # NotFound: 404
    return _page(request, "priors.html", active="priors", title="Prior explorer", job_id=job or "")


class _StaticFiles(StaticFiles):
    """Static files revalidated on every load (ETag), so an edited module is never stale."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def _plotly_js() -> FileResponse:
    # The URL is versioned, so the file may be cached for a year and never revalidated.
    return FileResponse(
        PLOTLY_JS,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


def mount_static(app: FastAPI) -> None:
    """Serve ``static/`` at ``/static`` and plotly.js at ``/static/vendor/plotly.min.js``.

    The plotly route is added before the mount so the mount cannot shadow it.
    """
    app.add_api_route("/static/vendor/plotly.min.js", _plotly_js, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/static", _StaticFiles(directory=STATIC_DIR), name="static")
