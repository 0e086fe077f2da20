"""A job's detector as a download: ``GET /api/jobs/{id}/export?format=savedmodel|onnx|tflite``.

Thin: :class:`app.services.export.ExportService` converts (in a child process, once per
checkpoint) and caches; its domain errors become 404/409/501/500 in ``app.api.errors``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from app.deps import ExportsDep

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

FORMAT_HELP = (
    "savedmodel: a zip of the SavedModel directory (serving_default: uint8 images in; boxes, scores, classes, "
    "num_detections out, NMS inside); onnx: the same inputs and outputs; tflite: decoded boxes and class scores "
    "of every prior, NMS left to the caller."
)


@router.get(
    "/{job_id}/export",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/zip": {}, "application/octet-stream": {}}, "description": "The export."},
        404: {"description": "No job with this id."},
        409: {"description": "The job has no checkpoint yet."},
        501: {"description": "The server lacks the optional package the format needs."},
    },
)
async def export_job(
    job_id: str,
    exports: ExportsDep,
    fmt: Annotated[Literal["savedmodel", "onnx", "tflite"], Query(alias="format", description=FORMAT_HELP)],
) -> FileResponse:
    """The job's latest checkpoint as a SavedModel (.zip), ONNX or TFLite file; the first download converts it."""
    export = await exports.export(job_id, fmt)
    return FileResponse(export.path, media_type=export.media_type, filename=export.filename)
