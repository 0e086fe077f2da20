"""The dataset browser: pages of images with their ground truth, one image, statistics.

Every view is a page (``page_router``) and JSON (``router``). The images are the built-in
generator's for the default config or, with ``?job=ID``, for that job's data config.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from app.api.pages import _page as page
from app.deps import SettingsDep, StoreDep
from app.figures.dataset import sample_figure, stats_figures
from app.images import data_url, png_bytes
from app.samples import JobQuery, Split, check_index, config_of, image_url, sample, split_length
from ssd.coverage import DatasetBoxes, box_size, dataset_boxes

router = APIRouter(prefix="/api/datasets", tags=["datasets"])
page_router = APIRouter(tags=["pages"], include_in_schema=False)

IndexPath = Annotated[int, Path(ge=0, le=10**9, description="Image index in the split.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such job, or an index past the split's end."}}


def _boxes(boxes: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    return [
        {"box": [round(v, 2) for v in box], "label": label, "width": box[2] - box[0], "height": box[3] - box[1]}
        for box, label in zip(boxes.tolist(), labels.tolist(), strict=True)
    ]


@router.get("/{split}/images", responses=NOT_FOUND)
def list_images(
    request: Request,
    split: Split,
    store: StoreDep,
    settings: SettingsDep,
    job: JobQuery = None,
    offset: Annotated[int, Query(ge=0, le=10**9, description="First image.")] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Images per page.")] = 24,
) -> dict[str, Any]:
    """A page of images: index, PNG URL, ground-truth boxes (pixel xyxy) and labels."""
    config = config_of(job, store, settings)
    total = split_length(config, split)
    root = request.scope.get("root_path", "").rstrip("/")
    items = []
    for index in range(offset, min(offset + limit, total)):
        s = sample(config, split, index)
        items.append({"index": index, "url": image_url(split, index, job, root), "boxes": _boxes(s.boxes, s.labels)})
    size = config.data.image_size
    return {
        "split": split,
        "job": job,
        "total": total,
        "offset": offset,
        "limit": limit,
        "image_size": size,
        "items": items,
    }


@router.get(
    "/{split}/images/{index}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **NOT_FOUND},
)
def image_png(split: Split, index: IndexPath, store: StoreDep, settings: SettingsDep, job: JobQuery = None) -> Response:
    """One image as PNG (no boxes drawn)."""
    config = config_of(job, store, settings)
    check_index(config, split, index)
    # Images are pure functions of (config, split, index): cacheable for an hour.
    headers = {"Cache-Control": "public, max-age=3600"}
    return Response(png_bytes(sample(config, split, index).image), media_type="image/png", headers=headers)


@router.get("/{split}/images/{index}", responses=NOT_FOUND)
def image_detail(
    request: Request, split: Split, index: IndexPath, store: StoreDep, settings: SettingsDep, job: JobQuery = None
) -> dict[str, Any]:
    """One image: its boxes and a zoomable Plotly figure (image + boxes, hover: class, box, size)."""
    config = config_of(job, store, settings)
    check_index(config, split, index)
    s = sample(config, split, index)
    size = config.data.image_size
    figure = sample_figure(data_url(s.image), s.boxes, s.labels, width=size, height=size)
    root = request.scope.get("root_path", "").rstrip("/")
    return {
        "split": split,
        "index": index,
        "job": job,
        "total": split_length(config, split),
        "image_size": size,
        "url": image_url(split, index, job, root),
        "boxes": _boxes(s.boxes, s.labels),
        "figure": figure.to_plotly_json(),
    }


def stats(data: DatasetBoxes, num_classes: int) -> dict[str, Any]:
    """Numbers and figures of a set of ground truths."""
    valid = data.valid
    boxes, labels = data.boxes[valid], data.labels[valid]
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    sizes = box_size(boxes)
    figures = stats_figures(counts=data.counts, widths=widths, heights=heights, labels=labels, num_classes=num_classes)

    def summary(values: np.ndarray) -> dict[str, float]:
        if values.size == 0:
            return {"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0}
        return {
            k: round(float(f(values)), 2)
            for k, f in (("min", np.min), ("median", np.median), ("mean", np.mean), ("max", np.max))
        }

    return {
        "num_images": int(data.counts.size),
        "num_boxes": int(valid.sum()),
        "objects_per_image": {**summary(data.counts.astype(np.float32)), "counts": np.bincount(data.counts).tolist()},
        "width": summary(widths),
        "height": summary(heights),
        "size": summary(sizes),
        "class_counts": np.bincount(labels, minlength=num_classes).tolist(),
        "figures": {name: fig.to_plotly_json() for name, fig in figures.items()},
    }


@router.get("/{split}/stats", responses=NOT_FOUND)
def split_stats(
    split: Split,
    store: StoreDep,
    settings: SettingsDep,
    job: JobQuery = None,
    n: Annotated[int, Query(ge=1, le=5000, description="Images counted, from index 0.")] = 500,
) -> dict[str, Any]:
    """Statistics of the first ``n`` images: objects per image, box widths and heights, class counts."""
    config = config_of(job, store, settings)
    n = min(n, split_length(config, split))
    return {"split": split, "job": job, **stats(dataset_boxes(config, split, n), config.model.num_classes)}


@page_router.get("/dataset", response_class=HTMLResponse)
def dataset_page(request: Request) -> HTMLResponse:
    """Pages of thumbnails with their boxes, and the split's statistics."""
    return page(request, "dataset.html", active="dataset", title="Dataset")


@page_router.get("/dataset/{split}/{index}", response_class=HTMLResponse)
def image_page(request: Request, split: Split, index: IndexPath) -> HTMLResponse:
    """One image, zoomable, with its ground truth."""
    return page(request, "dataset_image.html", active="dataset", title=f"{split} #{index}", split=split, index=index)
