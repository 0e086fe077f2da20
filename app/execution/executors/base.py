"""What the runner asks of an executor: start a job's worker somewhere, watch it, stop it.

The runner (:class:`app.execution.runner.JobRunner`) keeps the queue, the concurrency limit and the job
states; an executor only places workers. Every worker runs :func:`app.worker.main.run_reporting`
and reports over HTTP (:mod:`app.worker.reporter`, the route in :mod:`app.api.worker`) with its
run's token, into :meth:`app.execution.runner.JobRunner.ingest`. Two implementations:

- :class:`app.execution.executors.local.LocalExecutor` (``SSDBOARD_EXECUTOR=local``, the default): a
  spawned process per job on the server's machine, reporting to a loopback listener. Its
  workers end with the server.
- :class:`app.execution.executors.ray.RayExecutor` (``SSDBOARD_EXECUTOR=ray``): a Ray job per run through
  Ray's Jobs API, reporting to the server's URL; it keeps running while the server restarts,
  so the runner reattaches to it (:meth:`Executor.reattach`).

A handle is whatever the executor needs to find its run again; the runner only passes it back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from app.domain import Job


class Lost(str):
    """What :meth:`Executor.poll` returns for a run the executor lost (not the worker's fault):
    its job becomes ``interrupted``, resumable, rather than ``failed``."""


class Executor(ABC):
    """Places one worker per running job."""

    name: str
    #: Seconds between two :meth:`poll` calls of one run (0: every turn of the runner's pump).
    poll_interval: float = 0.0
    #: Runs go on when the server stops; a restarted server reattaches to them.
    outlives_server: bool = False
    #: Seconds a run seen ended may take for its last report to arrive (0: it is in when the
    #: process has exited, since a local worker delivers before it exits).
    done_grace: float = 0.0

    def open(self, report_app: Any | None = None) -> None:  # noqa: B027 - optional hook
        """Connect to whatever runs the workers (called once, at start). ``report_app``: an ASGI app
        serving the worker route alone, for an executor whose workers report to a listener of its own."""

    @abstractmethod
    def submit(self, job: Job, *, token: str) -> Any:
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

    def reattach(self, job: Job, ref: str | None) -> Any | None:
        """After a server restart: a handle to ``job``'s run if it still runs, else None (it is lost)."""
        return None

    def reap(self) -> None:  # noqa: B027 - optional hook
        """Release what finished runs hold (called from the runner's pump)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the executor's resources (after the runner has stopped or left its runs)."""
