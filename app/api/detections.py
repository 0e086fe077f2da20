"""The detections viewer over REST: a job's latest checkpoint on validation images (with
TP/FP/missed at IoU 0.5), its evaluation (pycocotools), its error analysis (why it misses:
:mod:`app.services.analysis`, in a child process), and detections on an upload.

Routes are thin: they look the job up and call :class:`app.services.detections.DetectionService`
in a worker thread (inference must not block the event loop) that stops when the client
disconnects; its domain errors become HTTP statuses in ``app.api.errors`` (503 with
``Retry-After`` when the server already runs as many model runs as it allows). A HEAD checks the
job and its checkpoint and answers without running the model. No route takes a path from the
client: a job id, a split and an index name everything. Images are the dataset browser's
(``/api/datasets/{split}/images/{index}.png?job=ID``).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from app.api import is_head, root_of, until_disconnected
from app.api.deps import AnalysisDep, DetectionsDep, JobsDep, SettingsDep
from app.domain import Job
from app.services.dataset_browser import image_url
from app.services.detections import Split

router = APIRouter(prefix="/api/jobs", tags=["detections"])

Responses = dict[int | str, dict[str, Any]]
ERRORS: Responses = {
    404: {"description": "No such job, or it has no checkpoint (and is not training)."},
    409: {"description": "The job is queued or running without a checkpoint yet, or its dataset was deleted."},
    500: {"description": "The checkpoint cannot be loaded (the message names the file)."},
    503: {"description": "The server runs as many model runs as it allows (SSDBOARD_MAX_HEAVY_READS): Retry-After."},
}
UPLOAD_ERRORS: Responses = {
    413: {"description": "Larger than the upload limit (SSDBOARD_MAX_UPLOAD_BYTES) or 16 megapixels."},
    415: {"description": "Not a PNG or JPEG (by the file's first bytes)."},
    422: {"description": "A PNG or JPEG that does not decode (truncated, corrupt), or no file."},
}
ScoreQuery = Annotated[float, Query(ge=0, le=1, description="Score cut for TP/FP/missed (the page's slider).")]


@router.get("/{job_id}/detections", responses=ERRORS, response_model=None)
async def job_detections(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    service: DetectionsDep,
    split: Annotated[Split, Query(description="Validation or training images.")] = "val",
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="First image index.")] = 0,
    limit: Annotated[int, Query(ge=1, le=48, description="Images in this page.")] = 12,
    score: ScoreQuery = 0.5,
) -> dict[str, Any] | Response:
    """Ground truth and every detection (score > 0.01) of a page of images, with IoUs and TP/FP/missed."""
    job = await run_in_threadpool(jobs.get, job_id)
    if is_head(request):
        return await head_answer(service, job)
    root = root_of(request)

    def url(index: int) -> str:  # the dataset browser's PNG of the job's image
        return image_url(split, index, job_id, root)

    work = partial(service.detections, job, split=split, offset=offset, limit=limit, score=score, image_url=url)
    return await until_disconnected(request, lambda stop: work(stop=stop))


@router.get("/{job_id}/evaluation", responses=ERRORS, response_model=None)
async def job_evaluation(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    service: DetectionsDep,
    n: Annotated[int, Query(ge=1, le=5000, description="Validation images 0..n-1.")] = 100,
    score: Annotated[float, Query(ge=0, le=1, description="Score cut of the confusion matrix.")] = 0.5,
) -> dict[str, Any] | Response:
    """mAP@.5 and mAP@[.5:.95] (pycocotools), per-class AP, PR curves and a confusion matrix at IoU 0.5."""
    job = await run_in_threadpool(jobs.get, job_id)
    if is_head(request):
        return await head_answer(service, job)
    return await until_disconnected(request, lambda stop: service.evaluation(job, n=n, score=score, stop=stop))


ANALYSIS_ERRORS: Responses = {
    404: {"description": "No such job, or it has no checkpoint."},
    409: {"description": "The job has no checkpoint yet, or saved a new one during the analysis (try again)."},
    422: {"description": "More images than SSDBOARD_MAX_EVAL_IMAGES."},
    500: {"description": "The analysis failed (the message says why, e.g. the job's dataset was deleted)."},
    503: {"description": "The server runs as many model runs as it allows (SSDBOARD_MAX_HEAVY_READS): Retry-After."},
}


@router.get("/{job_id}/analysis", responses=ANALYSIS_ERRORS, response_model=None)
async def job_analysis(
    job_id: str,
    request: Request,
    service: AnalysisDep,
    split: Annotated[Split, Query(description="Validation or training images (unaugmented).")] = "val",
    n: Annotated[int, Query(ge=1, le=5000, description="The first n images of the split (fewer where it ends).")] = 500,
) -> dict[str, Any] | Response:
    """Why the latest checkpoint misses: TIDE's error breakdown (dAP in AP points), AP by object
    size, every ground truth's story with its priors (misses no prior can match apart), and their
    figures. Computed in a child process once per checkpoint (the first request waits), then kept."""
    if is_head(request):
        await run_in_threadpool(service.head, job_id)
        return Response(media_type="application/json")
    return await service.analysis(job_id, split=split, n=n)


@router.post("/{job_id}/detections/upload", responses={**ERRORS, **UPLOAD_ERRORS})
async def job_detections_upload(
    job_id: str,
    jobs: JobsDep,
    service: DetectionsDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="A PNG or JPEG within the upload limit (SSDBOARD_MAX_UPLOAD_BYTES).")],
    score: Annotated[float, Form(ge=0, le=1, description="Boxes drawn in the figure from this score.")] = 0.3,
) -> dict[str, Any]:
    """Detections on an uploaded PNG or JPEG, letterboxed to the model's image size; boxes in its pixels."""
    job = await run_in_threadpool(jobs.get, job_id)
    data = await file.read(settings.max_upload_bytes + 1)  # one byte over is enough to answer 413
    return await run_in_threadpool(service.upload, job, data, score=score)


async def head_answer(service: DetectionsDep, job: Job) -> Response:
    """A HEAD's answer: the GET's status for this job's checkpoint (404/409 as the GET would), no model run."""
    await run_in_threadpool(service.checkpoint, job)
    return Response(media_type="application/json")
