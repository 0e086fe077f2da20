"""The default executor: one spawned worker process per job on the server's machine.

Workers (:func:`app.worker.run_job`) put their messages (:mod:`app.messages`) on one
multiprocessing queue, which the runner's pump reads through :meth:`LocalExecutor.receive`. A
worker stops before its next step when its cancel event is set or when the server that started
it is gone, so its runs never outlive the server: after a restart they are ``interrupted``.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from app.executors.base import Executor
from app.messages import Message
from app.settings import Settings
from app.worker import EXIT_OUT_OF_MEMORY, run_job

MAX_BATCH = 2000  # messages the pump takes from the queue at a time


@dataclass
class LocalRun:
    """A job's worker process and its cancel event."""

    job_id: str
    process: BaseProcess
    cancel: Any  # multiprocessing.Event
    started: float = field(default_factory=time.monotonic)


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
    """Spawned worker processes reporting through a multiprocessing queue."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ctx = multiprocessing.get_context("spawn")
        self._queue: Any = self._ctx.Queue()
        self._exited: list[BaseProcess] = []

    def submit(self, job: dict[str, Any], *, token: str) -> LocalRun:
        """Spawn the job's worker (the queue carries its reports; ``token`` is not needed here)."""
        job_id = job["id"]
        cancel = self._ctx.Event()
        process = self._ctx.Process(
            target=run_job,
            args=(
                job_id,
                job["config"],
                str(self.settings.jobs_dir / job_id),
                self._queue,
                cancel,
                os.getpid(),
                self.settings.worker_nice,
                job["step"],
                self.settings.worker_memory_gib,  # the worker stops its job beyond this (out of memory)
            ),
            kwargs={"data_dir": str(self.settings.artifact_root)},  # where an imported dataset is read from
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

    def receive(self, timeout: float) -> list[Message]:
        """Up to :data:`MAX_BATCH` queued messages, waiting up to ``timeout`` for the first."""
        batch: list[Message] = []
        try:
            batch.append(self._queue.get(timeout=timeout))
            while len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return batch

    def drain(self) -> list[Message]:
        """What is in the queue now; a dead worker's last messages may still be in the pipe."""
        time.sleep(0.05)
        leftovers: list[Message] = []
        try:
            while True:
                leftovers.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return leftovers

    def reap(self) -> None:
        """Join the exited workers of finished jobs."""
        self._exited = [p for p in self._exited if p.is_alive()]  # is_alive() reaps the exited

    def close(self) -> None:
        """Join what exited and release the queue's semaphores now (resource_tracker warns otherwise)."""
        self.reap()
        for process in self._exited:
            process.join(1)
        self._queue.close()
        self._queue.join_thread()
        self._queue = None
