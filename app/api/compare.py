"""Compare jobs over REST: ``GET /api/compare?jobs=ID1,ID2,...&points=N``.

Thin: parses the query and calls :class:`app.services.compare.CompareService`; an id count
outside 2..10 is a 422 at ``("query", "jobs")``, an unknown job a 404 (``app.api.errors``). The
service answers JSON text, sent as it is: FastAPI's encoder would walk each of the ~100,000
floats of ten jobs in Python, which cost more than reading them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.api.deps import CompareDep
from app.services import compare as service

router = APIRouter(prefix="/api/compare", tags=["compare"])

EXAMPLE: dict[str, Any] = {
    "points": 1000,
    "jobs": [
        {
            "id": "3f9c1a2b4d5e",
            "name": "lr-1e-3",
            "status": "succeeded",
            "color": "#4e79a7",
            "step": 1600,
            "total_steps": 1600,
            "last_step": 1600,
            "steps_recorded": 1600,
            "batch_size": 32,
            "config": {"train": {"learning_rate": 0.001, "batch_size": 32}},
            "best": {"map50": {"value": 0.965, "step": 1600}, "map": {"value": 0.697, "step": 1600}},
            "t0": 1767225600.123,
            "metrics": {"total": {"step": [1, 2, 5], "wall": [0.0, 0.31, 1.24], "value": [9.1, 8.7, 12.5]}},
            "evals": [{"step": 1600, "map": 0.697, "map50": 0.965, "val_total": 1.2, "time": 1767226147.0}],
        }
    ],
    "config": [{"key": "train.learning_rate", "values": [0.001, 0.003], "differs": True}],
}


@router.get(
    "",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {"example": EXAMPLE}}, "description": "The comparison."},
        404: {"description": "One of the jobs does not exist."},
        422: {"description": "Not 2 to 10 job ids, or points out of range."},
    },
)
def compare_jobs(
    compare: CompareDep,
    ids: Annotated[str, Query(alias="jobs", description="2 to 10 job ids, comma-separated.")],
    points: Annotated[
        int,
        Query(
            ge=service.MIN_POINTS,
            le=service.MAX_POINTS,
            description="At most this many points per loss part and job (about the chart's width in pixels); "
            "each bucket keeps its first, lowest and highest step.",
        ),
    ] = service.DEFAULT_POINTS,
) -> Response:
    """Loss parts (decimated, spikes kept), evaluations, best mAP and the config diff of 2 to 10 jobs."""
    return Response(compare.compare_json(service.parse_ids(ids), points=points), media_type="application/json")
