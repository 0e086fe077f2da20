"""A loopback listener for the reports of this machine's workers.

Local workers report over HTTP like every other worker (:class:`app.worker.reporter.HttpReporter`,
``POST /api/jobs/{id}/worker/events`` with the run's token), so there is one worker code path and
one ingest path (:meth:`app.execution.runner.JobRunner.ingest`: idempotent by step, token per job). They
post to this listener rather than to the dashboard's own port because the server does not always
have one a worker can reach: under a test client it has none, behind ``--host 0.0.0.0`` and a
TLS proxy its own address is not the one to dial, and the admin token guards its other routes.
The listener is a second, private uvicorn server on ``127.0.0.1`` and a free port, in a thread of
the server's process, that serves the worker route alone (:func:`app.api.worker.report_app`,
which the composition root hands to the runner), behind the route's gate
(:class:`app.api.worker.WorkerGate`): the run's token before any byte of the body is read, then a
bounded body, as on the dashboard's port.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import uvicorn

log = logging.getLogger("ssdboard.reports")

START_TIMEOUT = 10.0  # seconds the listener may take to accept connections


class ReportListener:
    """uvicorn serving ``app`` (the worker route) on a loopback socket, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))  # a free port, chosen by the kernel, never a fixed one
        host, port = self._socket.getsockname()
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="ssdboard-reports", daemon=True)

    def _serve(self) -> None:
        # Its own event loop: the dashboard's may not exist (a test client) or must not block on it.
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> ReportListener:
        """Serve, returning once connections are accepted."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            raise RuntimeError(f"the workers' report listener did not start on {self.url}")
        log.debug("worker reports on %s", self.url)
        return self

    def close(self) -> None:
        """Stop serving (after the workers are gone) and release the port."""
        self._server.should_exit = True
        self._thread.join(5)
        self._socket.close()
