"""The prior explorer over REST: priors against one image's ground truth, the coverage report, and
priors fitted to the draft's dataset.

Thin routes over :class:`app.services.priors.PriorService`; a bad draft value is a 422 naming
its field under ``config``, an unknown job or image a 404 (``app.api.errors``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api import root_of
from app.api.deps import PriorsDep
from app.api.schemas import CoverageIn, ExploreIn, PriorsBody, SuggestIn

router = APIRouter(prefix="/api/priors", tags=["priors"])


def _draft(body: PriorsBody) -> dict[str, Any] | None:
    return body.config.model_dump(exclude_unset=True) if body.config is not None else None


@router.post("/explore", responses={404: {"description": "No such job or image."}})
def explore_priors(request: Request, body: ExploreIn, priors: PriorsDep) -> dict[str, Any]:
    """Priors of a (draft) config against one image: matched priors per ground truth, unmatched
    ground truths, the priors of a cell, every layer's prior shapes, and the figure."""
    return priors.explore(
        priors.resolve(_draft(body), body.job),
        split=body.split,
        index=body.index,
        layer=body.layer,
        shape=body.shape,
        cell=body.cell,
        job=body.job,
        root=root_of(request),
    )


@router.post("/coverage", responses={404: {"description": "No such job."}})
def priors_coverage(body: CoverageIn, priors: PriorsDep) -> dict[str, Any]:
    """Coverage of a (draft) config's priors over ``n`` images: share of ground truths with a
    positive prior (at the threshold and forced), best-IoU distribution, both per size bucket,
    positives per image, and the gaps in words."""
    return priors.coverage(priors.resolve(_draft(body), body.job), body.split, body.n)


@router.post("/suggest", responses={404: {"description": "No such job or dataset."}})
def suggest_priors(body: SuggestIn, priors: PriorsDep) -> dict[str, Any]:
    """Priors fitted to the (draft) config's dataset: k-means of the boxes' shapes, layers by size,
    scales and ratios that maximise coverage with at most ``per_cell`` priors a cell. Answers the
    ``priors`` section, coverage before and after (overall and per size bucket) and ``elapsed_ms``."""
    return priors.suggest(priors.resolve(_draft(body), body.job), split=body.split, n=body.n, per_cell=body.per_cell)
