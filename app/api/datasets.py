"""The dataset browser over REST: pages of images with their ground truth, one image, statistics.

The images are the built-in generator's for the default config or, with ``?job=ID``, for that
job's data config (:class:`app.services.datasets.DatasetService`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from app.api import root_of
from app.deps import DatasetsDep
from app.services.datasets import Split

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

IndexPath = Annotated[int, Path(ge=0, le=10**9, description="Image index in the split.")]
JobQuery = Annotated[str | None, Query(description="Use this job's config (default: the default preset).")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such job, or an index past the split's end."}}


@router.get("/{split}/images", responses=NOT_FOUND)
def list_images(
    request: Request,
    split: Split,
    datasets: DatasetsDep,
    job: JobQuery = None,
    offset: Annotated[int, Query(ge=0, le=10**9, description="First image.")] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Images per page.")] = 24,
) -> dict[str, Any]:
    """A page of images: index, PNG URL, ground-truth boxes (pixel xyxy) and labels."""
    return datasets.list_images(split, job, offset=offset, limit=limit, root=root_of(request))


@router.get(
    "/{split}/images/{index}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **NOT_FOUND},
)
def image_png(split: Split, index: IndexPath, datasets: DatasetsDep, job: JobQuery = None) -> Response:
    """One image as PNG (no boxes drawn)."""
    # Images are pure functions of (config, split, index): cacheable for an hour.
    headers = {"Cache-Control": "public, max-age=3600"}
    return Response(datasets.image_png(split, index, job), media_type="image/png", headers=headers)


@router.get("/{split}/images/{index}", responses=NOT_FOUND)
def image_detail(
    request: Request, split: Split, index: IndexPath, datasets: DatasetsDep, job: JobQuery = None
) -> dict[str, Any]:
    """One image: its boxes and a zoomable Plotly figure (image + boxes, hover: class, box, size)."""
    return datasets.image_detail(split, index, job, root=root_of(request))


@router.get("/{split}/stats", responses=NOT_FOUND)
def split_stats(
    split: Split,
    datasets: DatasetsDep,
    job: JobQuery = None,
    n: Annotated[int, Query(ge=1, le=5000, description="Images counted, from index 0.")] = 500,
) -> dict[str, Any]:
    """Statistics of the first ``n`` images: objects per image, box widths and heights, class counts."""
    return datasets.split_stats(split, job, n=n)
