"""FastAPI dependencies as ``Annotated`` aliases: settings, the job store, the runner, the broadcaster."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.events import Broadcaster
from app.runner import JobRunner
from app.settings import Settings
from app.store import JobStore


def get_app_settings(request: Request) -> Settings:
    """The settings ``create_app`` was given.

    Kept on ``app.state`` rather than swapped in with ``app.dependency_overrides``: with any
    override set, FastAPI rebuilds every dependency's signature on every request.
    """
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> JobStore:
    """The store the lifespan created."""
    store: JobStore = request.app.state.store
    return store


def get_runner(request: Request) -> JobRunner:
    """The runner the lifespan started."""
    runner: JobRunner = request.app.state.runner
    return runner


def get_broadcaster(request: Request) -> Broadcaster:
    """The live-event fan-out."""
    broadcaster: Broadcaster = request.app.state.broadcaster
    return broadcaster


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]
