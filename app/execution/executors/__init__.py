"""Executors place job workers: locally (spawned processes) or on a Ray cluster (:mod:`.base`)."""

from __future__ import annotations

from app.execution.executors.base import Executor
from app.settings import Settings

__all__ = ["Executor", "make_executor"]


def make_executor(settings: Settings) -> Executor:
    """The executor ``SSDBOARD_EXECUTOR`` names (Ray is imported only when asked for)."""
    if settings.executor == "ray":
        from app.execution.executors.ray import RayExecutor

        return RayExecutor(settings)
    from app.execution.executors.local import LocalExecutor

    return LocalExecutor(settings)
