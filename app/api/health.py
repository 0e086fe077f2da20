"""Liveness and the config schema the new-job form is built from."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.schemas import DEFAULTS, NOTEBOOK, ConfigIn, ConfigSchemaOut, Health

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
