"""FastAPI dependencies as ``Annotated`` aliases: the settings and the services the lifespan built.

Everything lives on ``app.state`` (set by ``create_app`` and its lifespan) rather than being
swapped in with ``app.dependency_overrides``: with any override set, FastAPI rebuilds every
dependency's signature on every request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from app.services.analysis import AnalysisService
from app.services.compare import CompareService
from app.services.dataset_browser import DatasetBrowser
from app.services.datasets import DatasetService
from app.services.detections import DetectionService
from app.services.export import ExportService
from app.services.jobs import JobService
from app.services.priors import PriorService
from app.services.run_health import RunHealthService
from app.services.sweeps import SweepService
from app.settings import Settings


def from_state(name: str) -> Callable[[Request], Any]:
    """A dependency that returns ``app.state.<name>``."""

    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"get_{name}"
    return get


SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
JobsDep = Annotated[JobService, Depends(from_state("jobs"))]
# Comparisons of 2 to 10 jobs, with a cache of finished jobs' decimated metrics.
CompareDep = Annotated[CompareService, Depends(from_state("compare"))]
DatasetBrowserDep = Annotated[DatasetBrowser, Depends(from_state("dataset_browser"))]
PriorsDep = Annotated[PriorService, Depends(from_state("priors"))]
# Sweeps: many jobs from one base config, validated before any is queued.
SweepsDep = Annotated[SweepService, Depends(from_state("sweeps"))]
# The dataset registry: imported datasets, uploads and their imports (a background thread).
DatasetsDep = Annotated[DatasetService, Depends(from_state("datasets"))]
# The detections viewer's service: loads TensorFlow on the first detector it needs.
DetectionsDep = Annotated[DetectionService, Depends(from_state("detections"))]
# Health checks of a run: its records and its data (NumPy, in the server).
RunHealthDep = Annotated[RunHealthService, Depends(from_state("run_health"))]
# Error analyses of checkpoints: computed in a child process (TensorFlow stays out of the server).
AnalysisDep = Annotated[AnalysisService, Depends(from_state("analysis"))]
# Exports for download: converted in a child process (TensorFlow stays out of the server).
ExportsDep = Annotated[ExportService, Depends(from_state("exports"))]
