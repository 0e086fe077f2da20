"""A job's worker as a command, for executors that start it elsewhere (a Ray job's entrypoint).

``python -m app.worker_main --job ID --server URL --job-dir DIR --data-dir DIR [--known-step N]``
trains the job with :func:`app.worker.run_job`, the same function a local worker runs, reporting
over HTTP through :class:`app.worker_client.HttpReporter`. The job's config and its worker token
come from the environment (``SSDBOARD_WORKER_CONFIG``, JSON; ``SSDBOARD_WORKER_TOKEN``), not the
command line, which process lists and Ray's job table show. SIGTERM (Ray stopping the job) asks
the trainer to stop after its current step, which checkpoints. The exit status is 0 once every
report was delivered, 1 when the server could not be reached within ``--flush-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from types import FrameType

from app.worker import run_job
from app.worker_client import HttpReporter

TOKEN_ENV = "SSDBOARD_WORKER_TOKEN"
CONFIG_ENV = "SSDBOARD_WORKER_CONFIG"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of a remote worker."""
    parser = argparse.ArgumentParser(prog="python -m app.worker_main", description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, help="the job's id")
    parser.add_argument("--server", required=True, help="the server's URL as this node reaches it")
    parser.add_argument("--job-dir", required=True, help="the job's directory under the shared artifact root")
    parser.add_argument("--data-dir", required=True, help="the artifact root (its registry holds datasets)")
    parser.add_argument("--known-step", type=int, default=0, help="the last step the server had at submit")
    parser.add_argument("--memory-gib", type=float, default=None, help="stop the job past this resident memory")
    parser.add_argument("--flush-timeout", type=float, default=600.0, help="seconds to deliver the last reports")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one job's worker; the exit status says whether every report reached the server."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = os.environ.get(TOKEN_ENV, "")
    config = json.loads(os.environ.get(CONFIG_ENV, "null"))
    if not token or not isinstance(config, dict):
        logging.getLogger("ssdboard.worker").error("%s and %s (a JSON object) must be set", TOKEN_ENV, CONFIG_ENV)
        return 2
    reporter = HttpReporter(args.server, args.job, token).start()

    def stop(signum: int, frame: FrameType | None) -> None:
        reporter.cancel.set()  # the trainer checkpoints and stops after its current step

    signal.signal(signal.SIGTERM, stop)
    run_job(
        args.job,
        config,
        args.job_dir,
        reporter,
        reporter.cancel,
        None,  # no parent to watch: the server may restart while this job trains on
        0,
        args.known_step,
        args.memory_gib,
        data_dir=args.data_dir,
    )
    delivered = reporter.close(timeout=args.flush_timeout)
    if not delivered:
        logging.getLogger("ssdboard.worker").error("some reports never reached %s", args.server)
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
