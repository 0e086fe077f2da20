"""A worker's reports over HTTP: batched, retried with back-off, delivered in order.

:class:`HttpReporter` stands where a local worker has its multiprocessing queue
(:func:`app.worker.job.run_job` calls ``put``), so one worker code path serves both executors. A
sender thread posts what was put, in order, as ``{"messages": [...]}`` (:func:`app.worker.messages.to_wire`)
to ``POST /api/jobs/{id}/worker/events`` with the job's worker token, ``max_batch`` messages at
a time: a message put after a quiet spell goes at once, and the next post waits until
``batch_s`` seconds after the last (0: as soon as the last one is answered; one post is in flight
at a time, so what arrives meanwhile goes together). A batch leaves the buffer only once the
server has answered 200, so nothing is lost while the server is away (connection refused, 5xx,
503 while it stops): the same batch is sent again after 0.5, 1, 2, ... up to ``max_backoff_s``
seconds. The server drops what it already has (steps and evaluations by step), so a batch
applied whose answer was lost does no harm when it comes again.

With nothing to send it posts an empty batch every ``heartbeat_s`` seconds: the answer carries
``cancel`` when someone cancelled the job, which sets :attr:`HttpReporter.cancel` (the trainer
checkpoints and stops). An answer 401, 403, 404 or 409 means the server no longer takes this
run's reports (the job was resumed elsewhere, deleted, or given up as lost): the reporter drops
its buffer and sets both :attr:`cancel` and :attr:`gone`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import httpx

from app.worker.messages import Message, to_wire

log = logging.getLogger("ssdboard.worker")

GONE = frozenset({401, 403, 404, 409, 410, 422})


class HttpReporter:
    """Posts a job's messages to the server; ``put`` never blocks on the network."""

    def __init__(
        self,
        server_url: str,
        job_id: str,
        token: str,
        *,
        batch_s: float = 0.2,
        max_batch: int = 500,
        heartbeat_s: float = 2.0,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = f"{server_url.rstrip('/')}/api/jobs/{job_id}/worker/events"
        self.batch_s, self.max_batch, self.heartbeat_s = batch_s, max_batch, heartbeat_s
        self.min_backoff_s, self.max_backoff_s = min_backoff_s, max_backoff_s
        self._http = httpx.Client(
            timeout=httpx.Timeout(30.0, connect=5.0),
            headers={"Authorization": f"Bearer {token}"},
            transport=transport,
        )
        self._buffer: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._closing = False
        self.cancel = threading.Event()  # the server asked this worker to stop
        self.gone = threading.Event()  # the server takes no more reports of this run
        self.posts = 0  # batches the server accepted
        self.retries = 0  # sends that failed and were repeated
        self._thread = threading.Thread(target=self._run, name="ssdboard-reporter", daemon=True)

    def start(self) -> HttpReporter:
        """Start the sender thread."""
        self._thread.start()
        return self

    def put(self, message: Message) -> None:
        """Queue a message for the server (dropped once the server has given up on this run)."""
        with self._cond:
            if self.gone.is_set():
                return
            self._buffer.append(to_wire(message))
            if len(self._buffer) == 1 or len(self._buffer) >= self.max_batch:
                self._cond.notify_all()  # an idle sender wakes: the post goes once its linger is over

    def pending(self) -> int:
        """Messages not yet accepted by the server."""
        with self._cond:
            return len(self._buffer)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything put so far is delivered; whether it was (False: timed out or gone)."""
        with self._cond:
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._buffer or self.gone.is_set(), timeout)
            return not self._buffer and not self.gone.is_set()

    def close(self, timeout: float | None = None) -> bool:
        """Deliver what is buffered (waiting up to ``timeout``), then end the sender thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        delivered = self.pending() == 0 and not self.gone.is_set()
        with self._cond:
            self.gone.set()  # a thread still retrying stops at its next turn
            self._cond.notify_all()
        self._http.close()
        return delivered

    # The multiprocessing queue's methods that app.worker.job.run_job calls.
    def join_thread(self) -> None:
        """Wait for the sender thread (after :meth:`close`)."""
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def cancel_join_thread(self) -> None:
        """Nothing to do: :meth:`close` bounds its own wait."""

    # ------------------------------------------------------------------ sender thread
    def _run(self) -> None:
        delay = self.min_backoff_s
        last_post = time.monotonic()
        while True:
            with self._cond:
                while True:  # until a batch is due: linger batch_s after the last post, or heartbeat
                    if self.gone.is_set() or (self._closing and not self._buffer):
                        return
                    if self._closing or len(self._buffer) >= self.max_batch:
                        break
                    due = last_post + (self.batch_s if self._buffer else self.heartbeat_s)
                    now = time.monotonic()
                    if now >= due:
                        break
                    self._cond.wait(due - now)
                batch = self._buffer[: self.max_batch]
            outcome = self._post(batch)
            if outcome == "retry":
                self.retries += 1
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.max_backoff_s)
                continue
            delay, last_post = self.min_backoff_s, time.monotonic()
            with self._cond:
                if outcome == "gone":
                    self._buffer.clear()
                    self.gone.set()
                    self.cancel.set()
                else:
                    del self._buffer[: len(batch)]
                self._cond.notify_all()

    def _post(self, batch: list[dict[str, Any]]) -> str:
        """``ok``, ``retry`` (the server is away or busy) or ``gone`` (it refuses this run's reports)."""
        try:
            response = self._http.post(self.url, json={"messages": batch})
        except httpx.HTTPError as exc:
            log.info("reporting to %s failed (%s); retrying", self.url, exc)
            return "retry"
        if response.status_code == 200:
            self.posts += 1
            if response.json().get("cancel"):
                self.cancel.set()
            return "ok"
        if response.status_code in GONE:
            log.warning("the server refused this run's reports (%s): %s", response.status_code, response.text[:300])
            return "gone"
        log.info("the server answered %s; retrying", response.status_code)
        return "retry"
