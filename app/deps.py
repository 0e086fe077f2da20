"""FastAPI dependencies as ``Annotated`` aliases: the settings and the services the lifespan built.

Everything lives on ``app.state`` (set by ``create_app`` and its lifespan) rather than being
swapped in with ``app.dependency_overrides``: with any override set, FastAPI rebuilds every
dependency's signature on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.services.datasets import DatasetService
from app.services.inference import DetectionService
from app.services.jobs import JobService
from app.services.priors import PriorService
from app.settings import Settings


def get_app_settings(request: Request) -> Settings:
    """The settings ``create_app`` was given."""
    settings: Settings = request.app.state.settings
    return settings


def get_jobs(request: Request) -> JobService:
    """The job service."""
    jobs: JobService = request.app.state.jobs
    return jobs


def get_datasets(request: Request) -> DatasetService:
    """The dataset (sample images) service."""
    datasets: DatasetService = request.app.state.datasets
    return datasets


def get_priors(request: Request) -> PriorService:
    """The prior explorer's service."""
    priors: PriorService = request.app.state.priors
    return priors


def get_inference(request: Request) -> DetectionService:
    """The detections viewer's service (loads TensorFlow on the first detector it needs)."""
    inference: DetectionService = request.app.state.inference
    return inference


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
DatasetsDep = Annotated[DatasetService, Depends(get_datasets)]
PriorsDep = Annotated[PriorService, Depends(get_priors)]
InferenceDep = Annotated[DetectionService, Depends(get_inference)]
