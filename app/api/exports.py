"""A job's detector as a download: ``GET /api/jobs/{id}/export?format=savedmodel|onnx|tflite``.

Thin: :class:`app.services.export.ExportService` converts (in a child process, once per
checkpoint) and caches; its domain errors become 404/409/501/500/503 in ``app.api.errors``. A
conversion stops (its process killed) when the client disconnects; a HEAD converts nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from app.api import cancelled_on_disconnect, is_head
from app.api.deps import ExportsDep

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
        503: {"description": "The server runs as many conversions and model runs as it allows: Retry-After."},
    },
)
async def export_job(
    job_id: str,
    request: Request,
    exports: ExportsDep,
    fmt: Annotated[Literal["savedmodel", "onnx", "tflite"], Query(alias="format", description=FORMAT_HELP)],
) -> Response:
    """The job's latest checkpoint as a SavedModel (.zip), ONNX or TFLite file; the first download converts it."""
    if is_head(request):
        export = await exports.head(job_id, fmt)
        if not export.path.is_file():  # not converted yet: the headers without a length
            disposition = f'attachment; filename="{export.filename}"'
            response = Response(media_type=export.media_type, headers={"Content-Disposition": disposition})
            del response.headers["content-length"]  # unknown until converted; not the 0 of this empty body
            return response
    else:
        export = await cancelled_on_disconnect(request, exports.export(job_id, fmt))
    return FileResponse(export.path, media_type=export.media_type, filename=export.filename)
