"""What the runner asks of an executor: start a job's worker somewhere, watch it, stop it.

The runner (:class:`app.runner.JobRunner`) keeps the queue, the concurrency limit and the job
states; an executor only places workers. Two implementations:

- :class:`app.executors.local.LocalExecutor` (``SSDBOARD_EXECUTOR=local``, the default): a
  spawned process per job on the server's machine, reporting through a multiprocessing queue
  (:meth:`Executor.receive`). Its workers end with the server.
- :class:`app.executors.ray.RayExecutor` (``SSDBOARD_EXECUTOR=ray``): a Ray job per run through
  Ray's Jobs API; the worker reports over HTTP (:mod:`app.worker_client`, the route in
  :mod:`app.api.worker`) and keeps running while the server restarts, so the runner reattaches
  to it (:meth:`Executor.reattach`).

A handle is whatever the executor needs to find its run again; the runner only passes it back.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

from app.messages import Message


class Lost(str):
    """What :meth:`Executor.poll` returns for a run the executor lost (not the worker's fault):
    its job becomes ``interrupted``, resumable, rather than ``failed``."""


class Executor(ABC):
    """Places one worker per running job."""

    name: str
    #: Seconds between two :meth:`poll` calls of one run (0: every turn of the runner's pump).
    poll_interval: float = 0.0
    #: Workers report through :meth:`app.runner.JobRunner.ingest` (HTTP), not :meth:`receive`.
    reports_over_http: bool = False
    #: Runs go on when the server stops; a restarted server reattaches to them.
    outlives_server: bool = False

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect to whatever runs the workers (called once, when the runner starts)."""

    @abstractmethod
    def submit(self, job: dict[str, Any], *, token: str) -> Any:
        """Start ``job``'s worker (``job`` as the store returns it, with ``config`` and ``step``).

        ``token`` is the worker's own credential for reporting over HTTP. Returns the handle.
        """

    def ref(self, handle: Any) -> str | None:
        """The executor's id of the run, kept with the job to reattach after a restart."""
        return None

    def pid(self, handle: Any) -> int | None:
        """The worker's process id, when it runs on this machine."""
        return None

    @abstractmethod
    def request_stop(self, handle: Any) -> None:
        """Ask the worker to stop after its current step (it checkpoints first)."""

    @abstractmethod
    def kill(self, handle: Any) -> None:
        """Stop the worker now."""

    @abstractmethod
    def poll(self, handle: Any) -> str | None:
        """None while the worker runs; once it has ended, why (e.g. ``worker process died: ...``)."""

    def forget(self, handle: Any) -> None:  # noqa: B027 - optional hook
        """The runner is done with this run (its job has ended)."""

    def receive(self, timeout: float) -> list[Message]:
        """Messages workers sent through the executor itself, waiting up to ``timeout`` for the first."""
        time.sleep(timeout)
        return []

    def drain(self) -> list[Message]:
        """Messages already received, without waiting (a dead worker's last words)."""
        return []

    def reattach(self, job: dict[str, Any], ref: str | None) -> Any | None:
        """After a server restart: a handle to ``job``'s run if it still runs, else None (it is lost)."""
        return None

    def reap(self) -> None:  # noqa: B027 - optional hook
        """Release what finished runs hold (called from the runner's pump)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the executor's resources (after the runner has stopped or left its runs)."""
