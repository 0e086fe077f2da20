"""Sweeps over REST: create (every config validated before a job is queued), list, get, cancel.

Routes are thin: they parse the request and call :class:`app.services.sweeps.SweepService`; its
domain errors become 404/422 in ``app.api.errors``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, status

from app.api.deps import SweepsDep
from app.api.sweep_schemas import RANDOM_EXAMPLE, SWEEP_EXAMPLE, SweepIn, SweepOut, SweepSummaryOut

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"])

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "No sweep with this id."}}
BODY_EXAMPLES = {
    "grid": {"summary": "A 2 x 2 grid of tiny jobs", "value": SWEEP_EXAMPLE},
    "random": {"summary": "4 random draws, log-uniform learning rate", "value": RANDOM_EXAMPLE},
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepOut,
    responses={422: {"description": "A bad request or a refused config: loc names the swept key, msg its value."}},
)
def create_sweep(sweeps: SweepsDep, body: Annotated[SweepIn, Body(openapi_examples=BODY_EXAMPLES)]) -> dict[str, Any]:
    """Validate every config of the sweep, then queue its jobs in order; nothing is queued on a 422."""
    base = body.base.model_dump(exclude_unset=True) if body.base is not None else {}
    return sweeps.create(
        name=body.name,
        base=base,
        grid=body.grid,
        random=body.random,
        samples=body.samples,
        seed=body.seed,
        max_jobs=body.max_jobs,
    )


@router.get("", response_model=list[SweepSummaryOut])
def list_sweeps(
    sweeps: SweepsDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many sweeps.")] = 100,
) -> list[dict[str, Any]]:
    """Sweeps, newest first, with their progress and best run."""
    return sweeps.list(limit=limit)


@router.get("/{sweep_id}", response_model=SweepOut, responses=NOT_FOUND)
def get_sweep(sweep_id: str, sweeps: SweepsDep) -> dict[str, Any]:
    """One sweep: progress, a row per run with its swept values and best mAP, the best run."""
    return sweeps.get(sweep_id)


@router.post("/{sweep_id}/cancel", response_model=SweepOut, responses=NOT_FOUND)
def cancel_sweep(sweep_id: str, sweeps: SweepsDep) -> dict[str, Any]:
    """Cancel the sweep's queued jobs now and its running ones after their current step; idempotent."""
    return sweeps.cancel(sweep_id)
