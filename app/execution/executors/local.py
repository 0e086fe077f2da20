"""The default executor: one spawned worker process per job on the server's machine.

A worker runs :func:`app.worker.main.run_reporting`, as a worker on another node does: it reports
over HTTP with its run's token, here to the runner's loopback listener
(:class:`app.execution.report_listener.ReportListener`, started by :meth:`LocalExecutor.open`). What is
local is only the control: a worker stops before its next step when its cancel event is set (at
once, not at its next report's answer) or when the server that started it is gone, so its runs
never outlive the server: after a restart they are ``interrupted``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from app.domain import Job
from app.execution.executors.base import Executor
from app.execution.report_listener import ReportListener
from app.settings import Settings
from app.worker.job import EXIT_OUT_OF_MEMORY
from app.worker.main import run_reporting

# A local worker posts each report as soon as the one before is answered (loopback is cheap):
# the live charts' latency on this machine.
LOCAL_BATCH_S = 0.0


@dataclass
class LocalRun:
    """A job's worker process and its cancel event."""

    job_id: str
    process: BaseProcess
    cancel: Any  # multiprocessing.Event


def death_reason(exitcode: int | None) -> str:
    """``worker process died: killed by signal 9 (SIGKILL)`` or ``...: exit code 1``."""
    if exitcode is not None and exitcode < 0:
        try:
            name = f" ({signal.Signals(-exitcode).name})"
        except ValueError:
            name = ""
        return f"worker process died: killed by signal {-exitcode}{name}"
    if exitcode == 0:
        return "worker process exited without reporting a result"
    if exitcode == EXIT_OUT_OF_MEMORY:  # its memory watch stopped it; the report did not arrive
        return "out of memory: the worker stopped past its memory limit (SSDBOARD_WORKER_MEMORY_GIB)"
    return f"worker process died: exit code {exitcode}"


class LocalExecutor(Executor):
    """Spawned worker processes reporting over HTTP to a loopback listener."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ctx = multiprocessing.get_context("spawn")
        self._listener: ReportListener | None = None
        self._exited: list[BaseProcess] = []

    def open(self, report_app: Any | None = None) -> None:
        """Start the loopback listener the workers report to, serving ``report_app``."""
        if report_app is None:
            raise RuntimeError("the local executor needs the worker route's app to listen for reports")
        self._listener = ReportListener(report_app).start()

    def submit(self, job: Job, *, token: str) -> LocalRun:
        """Spawn the job's worker, which reports to the listener with ``token``."""
        if self._listener is None:
            raise RuntimeError("the local executor is not open")
        job_id = job.id
        cancel = self._ctx.Event()
        process = self._ctx.Process(
            target=run_reporting,
            args=(job_id, job.config, str(self.settings.jobs_dir / job_id), self._listener.url, token),
            kwargs={
                "data_dir": str(self.settings.artifact_root),  # where an imported dataset is read from
                "known_step": job.step,
                "memory_gib": self.settings.worker_memory_gib,  # the worker stops its job beyond this
                "parent_pid": os.getpid(),
                "cancel": cancel,
                "nice": self.settings.worker_nice,
                "batch_s": LOCAL_BATCH_S,
            },
            name=f"ssdboard-job-{job_id}",
            daemon=True,
        )
        process.start()
        return LocalRun(job_id, process, cancel)

    def pid(self, handle: LocalRun) -> int | None:
        """The worker process's id."""
        return handle.process.pid

    def request_stop(self, handle: LocalRun) -> None:
        """Set the job's cancel event: the worker checkpoints and stops after its current step."""
        handle.cancel.set()

    def kill(self, handle: LocalRun) -> None:
        """SIGTERM, then SIGKILL if the process is still there 2 s later."""
        handle.process.terminate()
        handle.process.join(2)
        if handle.process.is_alive():
            handle.process.kill()
            handle.process.join(2)

    def poll(self, handle: LocalRun) -> str | None:
        """None while the process lives, else why it died."""
        if handle.process.is_alive():
            return None
        handle.process.join(0)
        return death_reason(handle.process.exitcode)

    def forget(self, handle: LocalRun) -> None:
        """The job has ended: join its process later, once it has exited."""
        self._exited.append(handle.process)

    def reap(self) -> None:
        """Join the exited workers of finished jobs."""
        self._exited = [p for p in self._exited if p.is_alive()]  # is_alive() reaps the exited

    def close(self) -> None:
        """Join what exited and stop the listener (the runner has stopped its workers)."""
        self.reap()
        for process in self._exited:
            process.join(1)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
