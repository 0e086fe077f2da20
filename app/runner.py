"""The job runner: a FIFO queue of jobs, each trained in its own spawned worker process.

Workers (:func:`app.worker.run_job`) send their messages (:mod:`app.messages`) through one multiprocessing queue. A
pump thread in the server reads it, persists each batch in one transaction, and hands the
resulting events to the broadcaster on the event loop. The same thread notices a worker that
died without a final message (killed, out of memory) and fails its job with the reason.

State changes go through one lock, so a cancel can never race a job's start or end.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from app.domain import RESUMABLE, Conflict, JobStatus, NotFound
from app.events import Broadcaster
from app.messages import CheckpointSaved, Done, Message, Record, Started
from app.settings import Settings
from app.store import Event, JobStore, utcnow
from app.worker import EXIT_OUT_OF_MEMORY, run_job

log = logging.getLogger("ssdboard.runner")


@dataclass
class _Worker:
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


class JobRunner:
    """Queue, start, cancel and watch training jobs (``max_concurrent_jobs`` at a time)."""

    def __init__(self, *, store: JobStore, settings: Settings, broadcaster: Broadcaster) -> None:
        self.store = store
        self.settings = settings
        self.broadcaster = broadcaster
        self._ctx = multiprocessing.get_context("spawn")
        self._queue: Any = self._ctx.Queue()
        self._pending: deque[str] = deque()
        self._running: dict[str, _Worker] = {}
        self._exited: list[BaseProcess] = []
        self._lock = threading.RLock()
        self._stopping = False
        self._stop_pump = threading.Event()
        self._pump_thread = threading.Thread(target=self._pump, name="ssdboard-pump", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Recover after a stop (running -> interrupted, queued re-queued) and start the pump."""
        self._loop = loop
        events = []
        for job_id in self.store.job_ids(status=JobStatus.running):
            events.append(self._set_status(job_id, JobStatus.interrupted, finished_at=utcnow()))
        self._publish(events)
        with self._lock:
            self._pending.extend(self.store.job_ids(status=JobStatus.queued))
        self._pump_thread.start()
        self._schedule()

    def stop(self, timeout: float | None = None) -> None:
        """Cancel running jobs (they checkpoint), wait for them, then end the pump.

        Their jobs become ``interrupted`` (resumable); queued jobs stay queued for the next start.
        """
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        with self._lock:
            self._stopping = True
            for worker in self._running.values():
                worker.cancel.set()
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline and self._pump_thread.is_alive():
            time.sleep(0.05)
        with self._lock:
            for worker in list(self._running.values()):
                worker.process.terminate()
                worker.process.join(2)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join(2)
        if self._pump_thread.is_alive():
            time.sleep(0.2)  # let the pump record what the terminated workers left behind
        self._stop_pump.set()
        if self._pump_thread.is_alive():
            self._pump_thread.join(5)
        self._reap_dead()
        for process in self._exited:
            process.join(1)
        # Release the queue's semaphores now rather than at interpreter exit (resource_tracker warns).
        self._queue.close()
        self._queue.join_thread()
        self._queue = None

    # ------------------------------------------------------------------ operations
    def submit(
        self, *, name: str, config: dict[str, Any], total_steps: int, sweep_id: str | None = None
    ) -> dict[str, Any]:
        """Queue a job for a resolved config (one of sweep ``sweep_id``); returns the job."""
        job, event = self.store.create_job(name=name, config=config, total_steps=total_steps, sweep_id=sweep_id)
        self._publish([event])
        with self._lock:
            self._pending.append(job["id"])
        self._schedule()
        return self.get(job["id"])

    def get(self, job_id: str) -> dict[str, Any]:
        """The job; raises :class:`~app.domain.NotFound`."""
        job = self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        """A queued job is cancelled at once; a running one stops after its current step."""
        with self._lock:
            job = self.get(job_id)
            if job["status"] == JobStatus.queued:
                self._pending.remove(job_id)
                self._publish([self._set_status(job_id, JobStatus.cancelled, finished_at=utcnow())])
            elif job["status"] == JobStatus.running:
                self._running[job_id].cancel.set()
                self.store.update_job(job_id, cancel_requested=True)
            else:
                raise Conflict(f"job {job_id} is {job['status']}; only queued or running jobs can be cancelled")
        return self.get(job_id)

    def resume(self, job_id: str) -> dict[str, Any]:
        """Queue a failed, cancelled or interrupted job again; it continues from its checkpoint."""
        with self._lock:
            job = self.get(job_id)
            if job["status"] not in RESUMABLE:
                raise Conflict(
                    f"job {job_id} is {job['status']}; only failed, cancelled or interrupted jobs can be resumed"
                )
            step = job["checkpoint_step"] or 0
            self.store.reset_to_step(job_id, step)
            event = self._set_status(
                job_id,
                JobStatus.queued,
                event={"step": step},
                error=None,
                finished_at=None,
                cancel_requested=False,
            )
            self._publish([event])
            self._pending.append(job_id)
        self._schedule()
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        """Remove a job that is not queued or running, with its rows and files."""
        with self._lock:
            job = self.get(job_id)
            if job["status"] in (JobStatus.queued, JobStatus.running):
                raise Conflict(f"job {job_id} is {job['status']}; cancel it before deleting it")
            self.store.delete_job(job_id)
        shutil.rmtree(self.settings.jobs_dir / job_id, ignore_errors=True)

    def worker_pid(self, job_id: str) -> int | None:
        """Process id of a running job's worker."""
        with self._lock:
            worker = self._running.get(job_id)
            return worker.process.pid if worker else None

    # ------------------------------------------------------------------ internals
    def _set_status(self, job_id: str, status: JobStatus, **kwargs: Any) -> Event:
        return self.store.set_status(job_id, status.value, **kwargs)

    def _publish(self, events: Sequence[Event]) -> None:
        if not events or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self.broadcaster.publish, list(events))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    def _schedule(self) -> None:
        with self._lock:
            while self._pending and len(self._running) < self.settings.max_concurrent_jobs and not self._stopping:
                job_id = self._pending.popleft()
                job = self.store.get_job(job_id)
                if job is None or job["status"] != JobStatus.queued:
                    continue
                self._spawn(job)

    def _spawn(self, job: dict[str, Any]) -> None:
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
            kwargs={"data_dir": str(self.settings.data_dir)},  # where an imported dataset is read from
            name=f"ssdboard-job-{job_id}",
            daemon=True,
        )
        step = job["checkpoint_step"] or 0
        event = self._set_status(job_id, JobStatus.running, event={"step": step}, started_at=utcnow())
        self._publish([event])
        process.start()
        self._running[job_id] = _Worker(job_id, process, cancel)
        log.info("job %s: worker %s started", job_id, process.pid)

    def _pump(self) -> None:
        while not self._stop_pump.is_set():
            batch = []
            try:
                batch.append(self._queue.get(timeout=0.1))
                while len(batch) < 2000:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            except (EOFError, OSError):  # pragma: no cover - the queue was closed under us
                break
            try:
                if batch:
                    self._handle(batch)
                self._reap_dead()
            except Exception:  # pragma: no cover - never let the pump die silently
                log.exception("pump failed on a batch of %d messages", len(batch))

    def _handle(self, batch: list[Message]) -> None:
        events: list[Event] = []
        records: dict[str, list[tuple[str, dict[str, Any]]]] = {}

        def flush() -> None:
            for job_id, items in records.items():
                events.extend(self.store.record(job_id, items))
            records.clear()

        for message in batch:
            if message.job_id not in self._running:
                continue  # a worker terminated at shutdown, or one already declared dead
            if isinstance(message, Record):
                records.setdefault(message.job_id, []).append((message.kind, message.data))
                continue
            flush()
            events.extend(self._control(message))
        flush()
        self._publish(events)

    def _control(self, message: Started | CheckpointSaved | Done) -> list[Event]:
        job_id = message.job_id
        match message:
            case CheckpointSaved(step=step):
                self.store.update_job(job_id, checkpoint_step=step)
                return []
            case Started(step=step, history=history):
                job = self.get(job_id)
                self.store.reset_to_step(job_id, step, history)
                if step != (job["checkpoint_step"] or 0):
                    self.store.update_job(job_id, checkpoint_step=step or None)
                    return [self._set_status(job_id, JobStatus.running, event={"step": step})]
                return []
            case Done():
                return [self._finish(message)]
        log.warning("job %s: unknown message %r", job_id, message)  # pragma: no cover - exhaustive match
        return []

    def _finish(self, done: Done) -> Event:
        with self._lock:
            worker = self._running.pop(done.job_id)
            self._exited.append(worker.process)
            status = JobStatus(done.status)
            if self._stopping and status == JobStatus.cancelled:
                status = JobStatus.interrupted
            values = {"step": done.step} if done.step is not None else {}
            event = self._set_status(
                done.job_id, status, error=done.error, finished_at=utcnow(), cancel_requested=False, **values
            )
        log.info("job %s: %s at step %s", done.job_id, status.value, done.step)
        self._schedule()
        return event

    def _reap_dead(self) -> None:
        """Fail the jobs whose worker died without a ``done`` message; join exited workers."""
        self._exited = [p for p in self._exited if p.is_alive()]  # is_alive() reaps the exited
        dead = [w for w in list(self._running.values()) if not w.process.is_alive()]
        if not dead:
            return
        time.sleep(0.05)  # a worker's last messages may still be in the pipe
        leftovers = []
        try:
            while True:
                leftovers.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        if leftovers:
            self._handle(leftovers)
        events = []
        with self._lock:
            for worker in dead:
                if self._running.get(worker.job_id) is not worker:
                    continue  # its done message was among the leftovers
                del self._running[worker.job_id]
                worker.process.join(0)
                reason = death_reason(worker.process.exitcode)
                status = JobStatus.interrupted if self._stopping else JobStatus.failed
                log.warning("job %s: %s", worker.job_id, reason)
                events.append(
                    self._set_status(
                        worker.job_id,
                        status,
                        error=None if self._stopping else reason,
                        finished_at=utcnow(),
                        cancel_requested=False,
                    )
                )
        self._publish(events)
        self._schedule()
