"""The detections viewer over REST and as a page: a job's latest checkpoint on validation images
(with TP/FP/missed at IoU 0.5), its evaluation (pycocotools), and detections on an upload.

Routes are thin: they look the job up, call :class:`app.detections.DetectionService` in a worker
thread (inference must not block the event loop) and map its exceptions to HTTP statuses. No
route takes a path from the client: a job id, a split and an index name everything. Images
are the dataset browser's (``/api/datasets/{split}/images/{index}.png?job=ID``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from app.api.pages import _page
from app.deps import SettingsDep, StoreDep
from app.detections import CheckpointUnavailable, DetectionService, Split
from app.images import MAX_UPLOAD_BYTES, ImageRejected

router = APIRouter(prefix="/api/jobs", tags=["detections"])
page_router = APIRouter(tags=["pages"], include_in_schema=False)

T = TypeVar("T")
Responses = dict[int | str, dict[str, Any]]
ERRORS: Responses = {
    404: {"description": "No such job, or it has no checkpoint (and is not training)."},
    409: {"description": "The job is queued or running and has not saved a checkpoint yet."},
    500: {"description": "The checkpoint cannot be loaded (the message names the file)."},
}
UPLOAD_ERRORS: Responses = {
    413: {"description": f"Larger than {MAX_UPLOAD_BYTES >> 20} MB or 16 megapixels."},
    415: {"description": "Not a PNG or JPEG (by the file's first bytes)."},
    422: {"description": "A PNG or JPEG that does not decode (truncated, corrupt), or no file."},
}
ScoreQuery = Annotated[float, Query(ge=0, le=1, description="Score cut for TP/FP/missed (the page's slider).")]


async def get_service(request: Request, settings: SettingsDep) -> DetectionService:
    """The app's detection service, made on first use (async: created on the event loop, no race)."""
    service: DetectionService | None = getattr(request.app.state, "detection_service", None)
    if service is None:
        service = request.app.state.detection_service = DetectionService(settings.jobs_dir)
    return service


ServiceDep = Annotated[DetectionService, Depends(get_service)]


async def _job(store: Any, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] | None = await run_in_threadpool(store.get_job, job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    return job


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking service call in a thread; map its errors to HTTP errors."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except CheckpointUnavailable as exc:
        raise HTTPException(exc.status, exc.message) from None
    except ImageRejected as exc:
        raise HTTPException(exc.status, exc.message) from None
    except IndexError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.get("/{job_id}/detections", responses=ERRORS)
async def job_detections(
    job_id: str,
    request: Request,
    store: StoreDep,
    service: ServiceDep,
    split: Annotated[Split, Query(description="Validation or training images.")] = "val",
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="First image index.")] = 0,
    limit: Annotated[int, Query(ge=1, le=48, description="Images in this page.")] = 12,
    score: ScoreQuery = 0.5,
) -> dict[str, Any]:
    """Ground truth and every detection (score > 0.01) of a page of images, with IoUs and TP/FP/missed."""
    job = await _job(store, job_id)
    root = request.scope.get("root_path", "").rstrip("/")

    def image_url(index: int) -> str:  # the dataset browser's PNG of the job's image
        return f"{root}/api/datasets/{split}/images/{index}.png?job={job_id}"

    return await _call(
        service.detections, job, split=split, offset=offset, limit=limit, score=score, image_url=image_url
    )


@router.get("/{job_id}/evaluation", responses=ERRORS)
async def job_evaluation(
    job_id: str,
    store: StoreDep,
    service: ServiceDep,
    n: Annotated[int, Query(ge=1, le=5000, description="Validation images 0..n-1.")] = 100,
    score: Annotated[float, Query(ge=0, le=1, description="Score cut of the confusion matrix.")] = 0.5,
) -> dict[str, Any]:
    """mAP@.5 and mAP@[.5:.95] (pycocotools), per-class AP, PR curves and a confusion matrix at IoU 0.5."""
    job = await _job(store, job_id)
    return await _call(service.evaluation, job, n=n, score=score)


@router.post("/{job_id}/detections/upload", responses={**ERRORS, **UPLOAD_ERRORS})
async def job_detections_upload(
    job_id: str,
    store: StoreDep,
    service: ServiceDep,
    file: Annotated[UploadFile, File(description=f"A PNG or JPEG of at most {MAX_UPLOAD_BYTES >> 20} MB.")],
    score: Annotated[float, Form(ge=0, le=1, description="Boxes drawn in the figure from this score.")] = 0.3,
) -> dict[str, Any]:
    """Detections on an uploaded PNG or JPEG, letterboxed to the model's image size; boxes in its pixels."""
    job = await _job(store, job_id)
    data = await file.read(MAX_UPLOAD_BYTES + 1)  # one byte over is enough to answer 413
    return await _call(service.upload, job, data, score=score)


@page_router.get("/jobs/{job_id}/detections", response_class=HTMLResponse)
def detections_page(request: Request, job_id: str) -> HTMLResponse:
    """A job's detections over validation images, its evaluation and an upload form."""
    return _page(request, "detections.html", active="jobs", title=f"Detections · job {job_id}", job_id=job_id)
