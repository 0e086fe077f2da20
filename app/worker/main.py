"""Every job's worker: :func:`run_reporting`, and the command that runs it elsewhere (a Ray job's
entrypoint). A local worker process runs the same function (:mod:`app.execution.executors.local`).

``python -m app.worker.main --job ID --server URL --job-dir DIR --data-dir DIR [--known-step N]
[--ray-peers CPUS GPUS] [--ray-placement-timeout S]``
trains the job with :func:`app.worker.job.run_job`, the same function a local worker runs, reporting
over HTTP through :class:`app.worker.reporter.HttpReporter`. The job's config and its worker token
come from the environment (``SSDBOARD_WORKER_CONFIG``, JSON; ``SSDBOARD_WORKER_TOKEN``), not the
command line, which process lists and Ray's job table show. SIGTERM (Ray stopping the job) asks
the trainer to stop after its current step, which checkpoints. The exit status is 0 once every
report was delivered and the job did not fail, 4 when it failed (its traceback is in this
process's log, so in ``ray job logs``, and Ray's status says FAILED as the job's does), 1 when
the server could not be reached within ``--flush-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from app.worker.job import MakePeers, run_job
from app.worker.messages import Outcome
from app.worker.reporter import HttpReporter

TOKEN_ENV = "SSDBOARD_WORKER_TOKEN"
CONFIG_ENV = "SSDBOARD_WORKER_CONFIG"
ORPHAN_FLUSH_S = 5.0  # seconds an orphaned local worker tries to deliver its last reports

log = logging.getLogger("ssdboard.worker")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of a remote worker."""
    parser = argparse.ArgumentParser(prog="python -m app.worker.main", description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, help="the job's id")
    parser.add_argument("--server", required=True, help="the server's URL as this node reaches it")
    parser.add_argument("--job-dir", required=True, help="the job's directory under the shared artifact root")
    parser.add_argument("--data-dir", required=True, help="the artifact root (its registry holds datasets)")
    parser.add_argument("--known-step", type=int, default=0, help="the last step the server had at submit")
    parser.add_argument("--memory-gib", type=float, default=None, help="stop the job past this resident memory")
    parser.add_argument("--flush-timeout", type=float, default=600.0, help="seconds to deliver the last reports")
    parser.add_argument(
        "--ray-peers",
        nargs=2,
        type=float,
        metavar=("CPUS", "GPUS"),
        default=None,
        help="train.workers > 1: start workers 1..N-1 as Ray actors asking for these resources each",
    )
    parser.add_argument(
        "--ray-placement-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds to wait for the cluster to have room for workers 1..N-1 before the job fails",
    )
    return parser.parse_args(argv)


class _Either:
    """Set when either flag is: the server's cancel (in a report's answer) or a local cancel event."""

    def __init__(self, *flags: Any) -> None:
        self.flags = flags

    def is_set(self) -> bool:
        return any(flag.is_set() for flag in self.flags)


FAILED_EXIT = 4  # the job failed in training: Ray lists the job FAILED, as the dashboard does (3: out of memory)


@dataclass(frozen=True)
class Reported:
    """How a worker's run ended: whether every report reached the server, and the job's outcome."""

    delivered: bool
    outcome: Outcome | None


def run_reporting(
    job_id: str,
    config: dict[str, Any],
    job_dir: str,
    server_url: str,
    token: str,
    *,
    data_dir: str,
    known_step: int = 0,
    memory_gib: float | None = None,
    parent_pid: int | None = None,
    cancel: Any = None,
    nice: int = 0,
    batch_s: float = 0.2,
    flush_timeout: float = 600.0,
    on_reporter: Callable[[HttpReporter], None] | None = None,
    make_peers: MakePeers | None = None,
) -> Reported:
    """Train one job with :func:`app.worker.job.run_job`, reporting over HTTP; whether every report
    reached the server, and how the job ended. Every worker runs this, wherever it is placed.

    ``parent_pid``/``cancel``/``nice``: a local worker's server pid (it stops when the server is
    gone), its executor's cancel event (faster than the next report's answer) and niceness.
    ``on_reporter``: called with the reporter before training (the command installs its SIGTERM
    handler there). ``make_peers``: see :func:`app.worker.job.run_job` (None: local peers).
    """
    reporter = HttpReporter(server_url, job_id, token, batch_s=batch_s).start()
    if on_reporter is not None:
        on_reporter(reporter)
    flag = reporter.cancel if cancel is None else _Either(reporter.cancel, cancel)
    outcome = run_job(
        job_id,
        config,
        job_dir,
        reporter,
        flag,
        parent_pid,
        nice,
        known_step,
        memory_gib,
        data_dir=data_dir,
        make_peers=make_peers,
    )
    orphaned = parent_pid is not None and os.getppid() != parent_pid
    # An orphan's server is gone: its last reports are tried briefly, not for the full timeout.
    delivered = reporter.close(timeout=ORPHAN_FLUSH_S if orphaned else flush_timeout)
    if not delivered:
        log.error("some reports of job %s never reached %s", job_id, server_url)
    return Reported(delivered, outcome)


def main(argv: list[str] | None = None) -> int:
    """Run one job's worker; the exit status says whether every report reached the server."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = os.environ.get(TOKEN_ENV, "")
    config = json.loads(os.environ.get(CONFIG_ENV, "null"))
    if not token or not isinstance(config, dict):
        log.error("%s and %s (a JSON object) must be set", TOKEN_ENV, CONFIG_ENV)
        return 2

    def on_reporter(reporter: HttpReporter) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            reporter.cancel.set()  # the trainer checkpoints and stops after its current step

        signal.signal(signal.SIGTERM, stop)

    make_peers = None
    if args.ray_peers is not None:
        cpus, gpus = args.ray_peers
        timeout = args.ray_placement_timeout

        def make_peers(parsed: Any, out: Path, waiting: Callable[[str], None], cancelled: Callable[[], bool]) -> Any:
            from app.worker.ray_peers import RayPeers  # Ray is imported only by a multi-worker job's chief

            return RayPeers(
                parsed, out, args.data_dir, cpus=cpus, gpus=gpus, timeout=timeout, on_wait=waiting, cancelled=cancelled
            )

    reported = run_reporting(
        args.job,
        config,
        args.job_dir,
        args.server,
        token,
        data_dir=args.data_dir,
        known_step=args.known_step,
        memory_gib=args.memory_gib,
        flush_timeout=args.flush_timeout,
        on_reporter=on_reporter,
        make_peers=make_peers,
    )  # no parent pid: the server may restart while this job trains on
    if not reported.delivered:
        return 1
    return FAILED_EXIT if reported.outcome == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
