"""The job runner: a FIFO queue of jobs, each trained by a worker that an executor places.

The executor (:mod:`app.execution.executors`) starts a worker per running job: a spawned process on this
machine (``local``, the default) or a Ray job (``ray``). Every worker reports the typed messages
of :mod:`app.worker.messages` over HTTP (``POST /api/jobs/{id}/worker/events``, with a token of its own
run; a local worker posts to the executor's loopback listener), handed to :meth:`JobRunner.ingest`:
each batch is persisted in one transaction and the resulting events go to the broadcaster on the
event loop. A pump thread polls the executor and fails a job whose worker ended without a final
message (killed, out of memory) with the reason.

Reports may arrive twice (a retried batch whose answer was lost, a worker that kept running
while the server restarted): :meth:`JobRunner.ingest` keeps a step or an evaluation only when it
is after the job's last one, and a run's ``started`` message once.

State changes go through one lock, so a cancel can never race a job's start or end.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain import RESUMABLE, Conflict, Job, JobStatus, NotFound
from app.execution.events import Broadcaster
from app.execution.executors import Executor, make_executor
from app.execution.executors.base import Lost
from app.execution.executors.local import death_reason
from app.settings import Settings
from app.store.jobs import Event, JobStore, utcnow
from app.worker.messages import CheckpointSaved, Done, Message, Planned, Record, Started, Waiting, parse_batch

__all__ = ["JobRunner", "NotAccepting", "death_reason"]

log = logging.getLogger("ssdboard.runner")

POLL_S = 0.1  # seconds between two turns of the pump (the executor's runs are polled)


class NotAccepting(RuntimeError):
    """The runner is stopping: a worker's report should be sent again later."""


def token_hash(token: str) -> str:
    """The SHA-256 of a worker token, as the store keeps it."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class _Run:
    """A running job: the executor's handle and what the runner tracks about it."""

    job_id: str
    handle: Any
    token_hash: str | None
    started_seen: bool = False  # its ``started`` message was applied (a resend is ignored)
    cancel_requested: bool = False
    kill_at: float | None = None  # a cancelled remote run is stopped at this time if still running
    ended_at: float | None = None  # when a poll first saw the run ended (reports may still come: done_grace)
    next_poll: float = 0.0


class JobRunner:
    """Queue, start, cancel and watch training jobs (``max_concurrent_jobs`` at a time)."""

    def __init__(
        self,
        *,
        store: JobStore,
        settings: Settings,
        broadcaster: Broadcaster,
        executor: Executor | None = None,
        report_app: Callable[[JobRunner], Any] | None = None,
    ) -> None:
        """``report_app(runner)``: the ASGI app of the worker route for this runner, which an
        executor may serve on a listener of its own (the local one does)."""
        self._report_app = report_app
        self.store = store
        self.settings = settings
        self.broadcaster = broadcaster
        self.executor = executor if executor is not None else make_executor(settings)
        self._pending: deque[str] = deque()
        self._running: dict[str, _Run] = {}
        self._lock = threading.RLock()
        self._ingest = threading.Lock()  # one batch of reports applied at a time, in order
        self._stopping = False
        self._stop_pump = threading.Event()
        self._pump_thread = threading.Thread(target=self._pump, name="ssdboard-pump", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Recover after a stop and start the pump.

        A job left running is reattached when its executor still runs it (a Ray job), else it
        becomes ``interrupted``; queued jobs are queued again.
        """
        self._loop = loop
        self.executor.open(self._report_app(self) if self._report_app is not None else None)
        events = []
        for job_id in self.store.job_ids(status=JobStatus.running):
            handle = None
            hashed, ref = self.store.worker_auth(job_id)
            if self.executor.outlives_server:
                handle = self.executor.reattach(self.get(job_id), ref)
            if handle is None:
                events.append(self._set_status(job_id, JobStatus.interrupted, finished_at=utcnow()))
                continue
            cancelled = self.get(job_id).cancel_requested
            kill_at = time.monotonic() + self.settings.ray_cancel_grace_s if cancelled else None
            self._running[job_id] = _Run(job_id, handle, hashed, True, cancelled, kill_at)
            log.info("job %s: still running in %s (%s): reattached", job_id, self.executor.name, ref)
        self._publish(events)
        with self._lock:
            self._pending.extend(self.store.job_ids(status=JobStatus.queued))
        self._pump_thread.start()
        self._schedule()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the pump; local workers are cancelled first (they checkpoint) and waited for.

        Their jobs become ``interrupted`` (resumable); queued jobs stay queued for the next start.
        Runs of an executor that outlives the server (Ray) go on: the next start reattaches.
        """
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        ends_runs = not self.executor.outlives_server
        with self._lock:
            self._stopping = True
            if ends_runs:
                for run in self._running.values():
                    self.executor.request_stop(run.handle)
        if ends_runs:
            deadline = time.monotonic() + timeout
            while self._running and time.monotonic() < deadline and self._pump_thread.is_alive():
                time.sleep(0.05)
            with self._lock:
                for run in list(self._running.values()):
                    self.executor.kill(run.handle)
            if self._pump_thread.is_alive():
                time.sleep(0.2)  # let the pump record what the terminated workers left behind
        self._stop_pump.set()
        if self._pump_thread.is_alive():
            self._pump_thread.join(5)
        if ends_runs:
            self._reap_dead()
        self.executor.close()

    # ------------------------------------------------------------------ operations
    def submit(self, *, name: str, config: dict[str, Any], total_steps: int, sweep_id: str | None = None) -> Job:
        """Queue a job for a resolved config (one of sweep ``sweep_id``); returns the job."""
        job, event = self.store.create_job(name=name, config=config, total_steps=total_steps, sweep_id=sweep_id)
        self._publish([event])
        with self._lock:
            self._pending.append(job.id)
        self._schedule()
        return self.get(job.id)

    def get(self, job_id: str) -> Job:
        """The job; raises :class:`~app.domain.NotFound`."""
        job = self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    def cancel(self, job_id: str) -> Job:
        """A queued job is cancelled at once; a running one stops after its current step."""
        with self._lock:
            job = self.get(job_id)
            if job.status == JobStatus.queued:
                self._pending.remove(job_id)
                self._publish([self._set_status(job_id, JobStatus.cancelled, finished_at=utcnow())])
            elif job.status == JobStatus.running:
                run = self._running[job_id]
                run.cancel_requested = True
                self.executor.request_stop(run.handle)
                if self.executor.outlives_server and run.kill_at is None:
                    run.kill_at = time.monotonic() + self.settings.ray_cancel_grace_s
                self.store.update_job(job_id, cancel_requested=True)
            else:
                raise Conflict(f"job {job_id} is {job.status}; only queued or running jobs can be cancelled")
        return self.get(job_id)

    def resume(self, job_id: str) -> Job:
        """Queue a failed, cancelled or interrupted job again; it continues from its checkpoint."""
        with self._lock:
            job = self.get(job_id)
            if job.status not in RESUMABLE:
                raise Conflict(
                    f"job {job_id} is {job.status}; only failed, cancelled or interrupted jobs can be resumed"
                )
            step = job.checkpoint_step or 0
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
            if job.status in (JobStatus.queued, JobStatus.running):
                raise Conflict(f"job {job_id} is {job.status}; cancel it before deleting it")
            self.store.delete_job(job_id)
        shutil.rmtree(self.settings.jobs_dir / job_id, ignore_errors=True)

    def worker_pid(self, job_id: str) -> int | None:
        """Process id of a running job's worker, when it runs on this machine."""
        with self._lock:
            run = self._running.get(job_id)
            return self.executor.pid(run.handle) if run else None

    # ------------------------------------------------------------------ reports over HTTP
    def worker_authorized(self, job_id: str, token: str) -> bool:
        """Whether ``token`` is the worker token of ``job_id``'s current run (constant-time)."""
        with self._lock:
            run = self._running.get(job_id)
        hashed = run.token_hash if run is not None else self.store.worker_auth(job_id)[0]
        return hashed is not None and hmac.compare_digest(token_hash(token), hashed)

    def ingest(self, job_id: str, items: Sequence[dict[str, Any]]) -> dict[str, bool]:
        """Apply a batch a worker posted; the answer tells it whether to stop (``cancel``).

        :class:`~app.worker.messages.BadReport` for a batch that is not one, steps past the job's
        ``total_steps`` included (nothing is applied). :class:`NotAccepting` while the runner stops
        and its runs go on (they report to the next server); a local worker's last reports, sent
        as the stop cancels it, are taken. Steps and evaluations the job already has are dropped,
        and a run's second ``started``: a batch may be sent again, never applied twice.
        """
        with self._ingest:
            with self._lock:
                run = self._running.get(job_id)
                if self._stopping and self.executor.outlives_server:
                    raise NotAccepting("the server is stopping")
            if run is None:
                return {"cancel": True}  # the job is not running (any more): its worker should stop
            job = self.get(job_id)
            # A time budget's plan may move total_steps, up to the config's train.steps: steps are
            # checked against the larger (a batch may hold a new plan and the steps it allows).
            cap = job.config.get("train", {}).get("steps") if isinstance(job.config.get("train"), dict) else None
            messages = parse_batch(job_id, items, max_step=max(job.total_steps, cap if isinstance(cap, int) else 0))
            known = job.step
            evaluated = (job.last_eval or {}).get("step", -1)
            kept: list[Message] = []
            for message in messages:
                if isinstance(message, Started):
                    if run.started_seen:
                        continue
                    run.started_seen, known = True, message.step
                elif isinstance(message, Record) and message.kind == "step":
                    if message.data["step"] <= known:
                        continue
                    known = message.data["step"]
                elif isinstance(message, Record):
                    if message.data["step"] <= evaluated:
                        continue
                    evaluated = message.data["step"]
                kept.append(message)
            if kept:
                self._handle(kept)
        return {"cancel": run.cancel_requested}

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
                if job is None or job.status != JobStatus.queued:
                    continue
                self._spawn(job)

    def _spawn(self, job: Job) -> None:
        job_id = job.id
        token = secrets.token_urlsafe(32)  # this run's worker alone holds it; the store keeps its hash
        hashed = token_hash(token)
        step = job.checkpoint_step or 0
        event = self._set_status(
            job_id, JobStatus.running, event={"step": step}, started_at=utcnow(), worker_token_hash=hashed
        )
        self._publish([event])
        try:
            handle = self.executor.submit(job, token=token)
        except Exception as exc:  # noqa: BLE001 - e.g. the Ray cluster cannot be reached: the job says why
            log.exception("job %s: the %s executor could not start it", job_id, self.executor.name)
            error = f"could not start the worker ({self.executor.name} executor): {exc}"
            event = self._set_status(job_id, JobStatus.failed, error=error, finished_at=utcnow())
            self._publish([event])
            return
        ref = self.executor.ref(handle)
        if ref is not None:
            self.store.update_job(job_id, executor_ref=ref)
        self._running[job_id] = _Run(job_id, handle, hashed)
        where = ref or f"pid {self.executor.pid(handle)}"
        log.info("job %s: worker started (%s executor, %s)", job_id, self.executor.name, where)

    def _pump(self) -> None:
        while not self._stop_pump.wait(POLL_S):
            try:
                self._reap_dead()
            except Exception:  # pragma: no cover - never let the pump die silently
                log.exception("pump failed")

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

    def _control(self, message: Started | CheckpointSaved | Planned | Waiting | Done) -> list[Event]:
        job_id = message.job_id
        match message:
            case Waiting(reason=reason):
                return [self._set_status(job_id, JobStatus.running, event={"waiting": reason}, waiting=reason)]
            case Planned(total_steps=total):
                # A status event that says the new length: the pages redraw the progress.
                return [self._set_status(job_id, JobStatus.running, event={"total_steps": total}, total_steps=total)]
            case CheckpointSaved(step=step):
                self.store.update_job(job_id, checkpoint_step=step)
                return []
            case Started(step=step, history=history):
                job = self.get(job_id)
                self.store.reset_to_step(job_id, step, history)
                if step != (job.checkpoint_step or 0) or job.waiting is not None:
                    self.store.update_job(job_id, checkpoint_step=step or None)
                    event = {"step": step, "waiting": None}  # training starts: it waits no more
                    return [self._set_status(job_id, JobStatus.running, event=event, waiting=None)]
                return []
            case Done():
                return [self._finish(message)]
        log.warning("job %s: unknown message %r", job_id, message)  # pragma: no cover - exhaustive match
        return []

    def _finish(self, done: Done) -> Event:
        with self._lock:
            run = self._running.pop(done.job_id)
            self.executor.forget(run.handle)
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

    def _ended_runs(self) -> list[tuple[_Run, str]]:
        """Runs whose worker ended without a ``done`` message, with the executor's reason.

        A cancelled remote run still going after its grace is stopped here. A run that ended is
        given the executor's ``done_grace`` seconds for its last report to arrive.
        """
        now = time.monotonic()
        with self._lock:
            runs = list(self._running.values())
        ended = []
        for run in runs:
            if run.kill_at is not None and now >= run.kill_at:
                log.warning("job %s: still running after its cancel grace: stopping it", run.job_id)
                run.kill_at = None
                self.executor.kill(run.handle)
            if now < run.next_poll:
                continue
            run.next_poll = now + self.executor.poll_interval
            reason = self.executor.poll(run.handle)
            if reason is None:
                run.ended_at = None
                continue
            run.ended_at = run.ended_at or now
            if now - run.ended_at < self.executor.done_grace:
                continue
            ended.append((run, reason))
        return ended

    def _reap_dead(self) -> None:
        """Fail the jobs whose worker died without a ``done`` message; release finished runs."""
        self.executor.reap()
        dead = self._ended_runs()
        if not dead:
            return
        events = []
        with self._ingest, self._lock:  # a batch being applied may hold the run's done message
            for run, reason in dead:
                if self._running.get(run.job_id) is not run:
                    continue  # its done message arrived meanwhile
                del self._running[run.job_id]
                self.executor.forget(run.handle)
                status = JobStatus.failed
                error: str | None = reason
                if self._stopping or isinstance(reason, Lost):
                    status, error = JobStatus.interrupted, None
                elif run.cancel_requested and self.executor.outlives_server:
                    status, error = JobStatus.cancelled, None  # stopped after its grace
                log.warning("job %s: %s", run.job_id, reason)
                events.append(
                    self._set_status(run.job_id, status, error=error, finished_at=utcnow(), cancel_requested=False)
                )
        self._publish(events)
        self._schedule()
