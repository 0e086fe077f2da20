"""Datasets over REST: the registry (list, upload, show with the validation report, delete) and
the dataset browser (pages of images with their ground truth, one image, statistics).

- Registry routes call :class:`app.services.datasets.DatasetService`. An upload is a
  ``multipart/form-data`` body (``file`` = a ``.zip``, optional ``name``, ``format``,
  ``val_fraction``) streamed to the data dir (:func:`app.api.uploads.stream_form`); the answer
  is 202 with the import, which runs in a process of its own (with a memory limit, never in the
  server's memory): poll ``GET /api/datasets/{id}``. An upload holds its import slot from the
  moment its file part begins (:meth:`DatasetService.begin_upload`); a failed one gives it back.
- Browser routes call :class:`app.services.dataset_browser.DatasetBrowser`: the built-in generator's
  images for the default config, a job's dataset with ``?job=ID``, or an imported dataset with
  ``?dataset=ID_OR_NAME``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.api import root_of
from app.api.deps import DatasetBrowserDep, DatasetsDep
from app.api.uploads import stream_form
from app.domain import Invalid
from app.services.dataset_browser import Split
from app.services.datasets import FORMATS
from app.services.uploads import Upload

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

Responses = dict[int | str, dict[str, Any]]
IndexPath = Annotated[int, Path(ge=0, le=10**9, description="Image index in the split.")]
JobQuery = Annotated[str | None, Query(description="Use this job's config (default: the default preset).")]
DatasetQuery = Annotated[
    str | None,
    Query(max_length=100, description="An imported dataset's id or name (default: mnist, or the job's dataset)."),
]
DatasetPath = Annotated[str, Path(max_length=100, description="The dataset's id or name, or an upload's id.")]
NOT_FOUND: Responses = {404: {"description": "No such job or dataset, or an index past the split's end."}}
NO_DATASET: Responses = {404: {"description": "No dataset with this id or name."}}
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A .zip of a COCO, Pascal VOC or YOLO dataset "
                            "(at most SSDBOARD_MAX_DATASET_BYTES).",
                        },
                        "name": {
                            "type": "string",
                            "maxLength": 100,
                            "description": "A unique name (default: the zip's file name without .zip).",
                        },
                        "format": {"type": "string", "enum": list(FORMATS), "default": "auto"},
                        "val_fraction": {
                            "type": "number",
                            "minimum": 0,
                            "exclusiveMaximum": 1,
                            "default": 0.1,
                            "description": "Validation share of a dataset without splits of its own.",
                        },
                    },
                }
            }
        },
    }
}
UPLOAD_ERRORS: Responses = {
    409: {"description": "The name is taken, or 8 imports are uploading, waiting or running already."},
    413: {"description": "Larger than SSDBOARD_MAX_DATASET_BYTES."},
    415: {"description": "Not a .zip (by the file's first bytes), or not multipart/form-data."},
    422: {"description": "A bad form field (named in loc), or no file."},
}


# -- the registry ----------------------------------------------------------------------------------


@router.get("")
def list_datasets(datasets: DatasetsDep) -> list[dict[str, Any]]:
    """Every dataset: ``mnist``, the imported ones (oldest first), then this server's imports in
    progress (``status: importing``) or failed."""
    return datasets.list()


@router.post("", status_code=status.HTTP_202_ACCEPTED, openapi_extra=UPLOAD_BODY, responses=UPLOAD_ERRORS)
async def upload_dataset(request: Request, datasets: DatasetsDep) -> dict[str, Any]:
    """Upload a dataset as a .zip; 202 with ``id``, ``name``, ``status: importing`` and
    ``progress``. The import runs in the background: poll ``GET /api/datasets/{id}`` until its
    ``status`` is ``ready`` (with the validation report) or ``failed`` (with ``error``)."""
    upload: list[Upload] = []

    def open_file(filename: str, fields: Any) -> Upload:
        upload.append(datasets.begin_upload(filename, fields))
        return upload[0]

    try:
        fields = await stream_form(request, file_field="file", open_file=open_file)
        if not upload:
            raise Invalid(("body", "file"), "field required: the dataset's .zip")
        return await run_in_threadpool(datasets.start_import, upload[0], fields)
    finally:
        if upload and not upload[0].taken:
            await run_in_threadpool(upload[0].discard)


@router.get("/{dataset_id}", responses=NO_DATASET)
def get_dataset(dataset_id: DatasetPath, datasets: DatasetsDep) -> dict[str, Any]:
    """One dataset: ``status`` ``importing`` (with ``progress``: ``done``, ``total``, ``stage``),
    ``ready`` (``format``, ``classes``, ``counts``, ``splits`` and the validation ``report``) or
    ``failed`` (``error``, naming the file)."""
    return datasets.get(dataset_id)


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**NO_DATASET, 409: {"description": "mnist, an import in progress, or used by a queued or running job."}},
)
def delete_dataset(dataset_id: DatasetPath, datasets: DatasetsDep) -> Response:
    """Remove an imported dataset with its files (or forget a failed upload); 409 for ``mnist``,
    while importing, and while a queued or running job trains on it."""
    datasets.delete(dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{dataset_id}/problems", responses=NO_DATASET)
def dataset_problems(
    dataset_id: DatasetPath,
    datasets: DatasetsDep,
    reason: Annotated[str | None, Query(max_length=40, description="Only problems of this reason.")] = None,
    offset: Annotated[int, Query(ge=0, le=10**9, description="First problem.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Problems per page.")] = 100,
) -> dict[str, Any]:
    """A page of the validation report's problems (each with its ``index``, whether its image
    was kept, ``viewable``, and whether its box has coordinates to draw, ``drawable``)."""
    return datasets.problems(dataset_id, reason=reason, offset=offset, limit=limit)


@router.get("/{dataset_id}/problems/{index}", responses=NO_DATASET)
def dataset_problem(
    dataset_id: DatasetPath,
    index: Annotated[int, Path(ge=0, le=10**9, description="The problem's index in the report.")],
    datasets: DatasetsDep,
) -> dict[str, Any]:
    """One problem over its image at the image's own size: the kept boxes and the dropped or
    clipped box (``box_xyxy``, pixel corners) as a Plotly ``figure`` (null when the image was dropped)."""
    return datasets.problem(dataset_id, index)


# -- the browser -----------------------------------------------------------------------------------


@router.get("/{split}/images", responses=NOT_FOUND)
def list_images(
    request: Request,
    split: Split,
    browser: DatasetBrowserDep,
    job: JobQuery = None,
    dataset: DatasetQuery = None,
    offset: Annotated[int, Query(ge=0, le=10**9, description="First image.")] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Images per page.")] = 24,
) -> dict[str, Any]:
    """A page of images: index, PNG URL, ground-truth boxes (pixel xyxy) and labels (with class
    names and file names for an imported dataset)."""
    return browser.list_images(split, job, offset=offset, limit=limit, root=root_of(request), dataset=dataset)


@router.get(
    "/{split}/images/{index}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **NOT_FOUND},
)
def image_png(
    split: Split, index: IndexPath, browser: DatasetBrowserDep, job: JobQuery = None, dataset: DatasetQuery = None
) -> Response:
    """One image as PNG (no boxes drawn), at the network input size."""
    # Images are pure functions of (config, split, index) and dataset ids are never reused.
    headers = {"Cache-Control": "public, max-age=3600"}
    return Response(browser.image_png(split, index, job, dataset), media_type="image/png", headers=headers)


@router.get("/{split}/images/{index}", responses=NOT_FOUND)
def image_detail(
    request: Request,
    split: Split,
    index: IndexPath,
    browser: DatasetBrowserDep,
    job: JobQuery = None,
    dataset: DatasetQuery = None,
) -> dict[str, Any]:
    """One image: its boxes and a zoomable Plotly figure (image + boxes, hover: class, box, size)."""
    return browser.image_detail(split, index, job, root=root_of(request), dataset=dataset)


@router.get("/{split}/stats", responses=NOT_FOUND)
def split_stats(
    split: Split,
    browser: DatasetBrowserDep,
    job: JobQuery = None,
    dataset: DatasetQuery = None,
    n: Annotated[int, Query(ge=1, le=5000, description="Images counted, from index 0.")] = 500,
) -> dict[str, Any]:
    """Statistics of the first ``n`` images: objects per image, box widths and heights, class counts."""
    return browser.split_stats(split, job, n=n, dataset=dataset)
