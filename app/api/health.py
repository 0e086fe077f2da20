"""Liveness, the config schema the new-job form is built from, and a draft's plan."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from app.api.deps import JobsDep
from app.api.schemas import DEFAULTS, NOTEBOOK, ConfigIn, ConfigSchemaOut, Health, PlanOut
from app.services.plan import plan

router = APIRouter(tags=["health"])
config_router = APIRouter(prefix="/api/config", tags=["config"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The server is up."""
    return Health()


@config_router.get("/schema", response_model=ConfigSchemaOut)
def config_schema() -> ConfigSchemaOut:
    """Both presets fully resolved and the JSON schema (with help texts) of a training config."""
    return ConfigSchemaOut(defaults=DEFAULTS, notebook=NOTEBOOK, json_schema=ConfigIn.model_json_schema())


@config_router.post("/plan", response_model=PlanOut, responses={422: {}})
def config_plan(jobs: JobsDep, body: Annotated[ConfigIn | None, Body()] = None) -> dict[str, Any]:
    """Before you start: the recipe's choices for a draft (the body of ``POST /api/jobs``), how the
    priors cover its training boxes at this input size, its memory estimate against the limit, the
    expected training time on this server, and the warnings known before training. Queues nothing."""
    return plan(body.model_dump(exclude_unset=True) if body is not None else {}, jobs)
