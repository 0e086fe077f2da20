"""The ``ray`` executor: each run of a job is a Ray job, submitted through Ray's Jobs API.

The entrypoint is :mod:`app.worker.main` (``python -m app.worker.main --job ID --server URL ...``),
which trains with the same :func:`app.worker.job.run_job` as a local worker and reports over HTTP
with the run's worker token. The token and the job's config travel in the Ray job's
``runtime_env`` environment variables. Resources: ``entrypoint_num_cpus`` is
``SSDBOARD_RAY_CPUS_PER_JOB`` and ``entrypoint_num_gpus`` ``SSDBOARD_RAY_GPUS_PER_JOB`` (when
above 0): one worker's share. A multi-worker job (``train.workers = N > 1``) is one Ray job whose
entrypoint is the chief; it starts the other N-1 workers as Ray actors with a share each, in a
placement group spread over the nodes (:mod:`app.worker.ray_peers`). Job files go to the job's
directory under the artifact root (``SSDBOARD_ARTIFACT_DIR``), which every node must mount at
the same path.

A cancel reaches the worker in the answer to its next report (it checkpoints and stops); a run
still going ``SSDBOARD_RAY_CANCEL_GRACE_S`` later is stopped with ``stop_job``. Runs outlive the
server: a restarted server asks Ray about each job it left running (the submission id is kept
with the job) and reattaches to those Ray still runs; the others are lost (``interrupted``).
"""

from __future__ import annotations

import json
import logging
import secrets
import shlex
from dataclasses import dataclass
from typing import Any

from app.domain import Job
from app.execution.executors.base import Executor, Lost
from app.settings import Settings
from app.worker.main import CONFIG_ENV, TOKEN_ENV

log = logging.getLogger("ssdboard.executor.ray")

ALIVE = ("PENDING", "RUNNING")


@dataclass
class RayRun:
    """A run of a job as a Ray job."""

    job_id: str
    submission_id: str


def ray_resources(settings: Settings) -> dict[str, float]:
    """``entrypoint_num_cpus`` and, when some are asked for, ``entrypoint_num_gpus`` of a Ray job:
    one worker's share (a multi-worker job's peers are actors with a share each)."""
    resources = {"entrypoint_num_cpus": settings.ray_cpus_per_job}
    if settings.ray_gpus_per_job > 0:
        resources["entrypoint_num_gpus"] = settings.ray_gpus_per_job
    return resources


class RayExecutor(Executor):
    """Ray jobs through ``ray.job_submission.JobSubmissionClient`` at ``SSDBOARD_RAY_ADDRESS``."""

    name = "ray"
    outlives_server = True
    done_grace = 3.0  # its last report may still be on its way when Ray says the job ended
    poll_interval = 1.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The Jobs API client, connected on first use (the cluster may come up after the server)."""
        if self._client is None:
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise RuntimeError("SSDBOARD_EXECUTOR=ray needs Ray: pip install 'ssdboard[ray]'") from exc
            self._client = JobSubmissionClient(self.settings.ray_address)
        return self._client

    def open(self, report_app: Any | None = None) -> None:
        """Connect now if the cluster is there; a cluster that is not is retried on first use."""
        try:
            self.client  # noqa: B018 - connects
        except Exception as exc:  # noqa: BLE001 - the server starts anyway; submits will say why
            log.warning("the Ray cluster at %s cannot be reached yet: %s", self.settings.ray_address, exc)

    def entrypoint(self, job: Job) -> str:
        """The shell command of a job's Ray job."""
        settings = self.settings
        argv = [
            *shlex.split(settings.ray_python),
            "-m",
            "app.worker.main",
            "--job",
            job.id,
            "--server",
            settings.worker_server_url,
            "--job-dir",
            str((settings.jobs_dir / job.id).resolve()),
            "--data-dir",
            str(settings.artifact_root.resolve()),
            "--known-step",
            str(job.step),
            "--ray-peers",  # a multi-worker job's peers: Ray actors, one share of resources each
            str(settings.ray_cpus_per_job),
            str(settings.ray_gpus_per_job),
            "--ray-placement-timeout",
            str(settings.ray_placement_timeout_s),
        ]
        return shlex.join(argv)

    def submit(self, job: Job, *, token: str) -> RayRun:
        """Submit the job's run as a Ray job ``ssdboard-<job id>-<random>``."""
        submission_id = f"ssdboard-{job.id}-{secrets.token_hex(4)}"
        self.client.submit_job(
            entrypoint=self.entrypoint(job),
            submission_id=submission_id,
            runtime_env={"env_vars": {TOKEN_ENV: token, CONFIG_ENV: json.dumps(job.config)}},
            metadata={"ssdboard_job": job.id, "ssdboard_name": job.name[:100]},
            **ray_resources(self.settings),
        )
        return RayRun(job.id, submission_id)

    def ref(self, handle: RayRun) -> str:
        """The Ray job's submission id."""
        return handle.submission_id

    def request_stop(self, handle: RayRun) -> None:
        """Nothing to do here: the answer to the worker's next report carries the cancel."""

    def kill(self, handle: RayRun) -> None:
        """Stop the Ray job (Ray sends SIGTERM, then SIGKILL)."""
        try:
            self.client.stop_job(handle.submission_id)
        except Exception as exc:  # noqa: BLE001 - already gone, or the cluster is away: polls decide
            log.warning("stopping Ray job %s: %s", handle.submission_id, exc)

    def _status(self, submission_id: str) -> str | None:
        """The Ray job's status name; None when the cluster cannot say; :class:`Lost` when it has no such job."""
        try:
            return str(self.client.get_job_status(submission_id).value)
        except RuntimeError as exc:  # the Jobs API answers 404 as a RuntimeError
            if "does not exist" in str(exc) or "404" in str(exc):
                return Lost(f"the Ray cluster lost the job's run ({submission_id})")
            log.warning("Ray job %s: %s", submission_id, exc)
            return None
        except Exception as exc:  # noqa: BLE001 - the cluster is away: ask again later
            log.warning("Ray job %s: %s", submission_id, exc)
            return None

    def poll(self, handle: RayRun) -> str | None:
        """None while Ray runs the job (or cannot be asked), else why it ended without a report."""
        status = self._status(handle.submission_id)
        if status is None or status in ALIVE:
            return None
        if isinstance(status, Lost):
            return status
        if status == "SUCCEEDED":
            return "worker process exited without reporting a result"
        if status == "STOPPED":
            return f"the Ray job {handle.submission_id} was stopped"
        message = ""
        try:
            message = self.client.get_job_info(handle.submission_id).message or ""
        except Exception:  # noqa: BLE001 - the status says enough
            pass
        first = message.strip().splitlines()[0][:300] if message.strip() else ""  # Ray appends the log's tail
        return f"the Ray job {handle.submission_id} failed: {first}".rstrip(": ")

    def reattach(self, job: Job, ref: str | None) -> RayRun | None:
        """The run if Ray still runs it (or cannot be asked yet: polls decide later), else None."""
        if not ref:
            return None
        status = self._status(ref)
        if isinstance(status, Lost) or (status is not None and status not in ALIVE):
            log.info("job %s: its Ray job %s is %s", job.id, ref, status)
            return None
        return RayRun(job.id, ref)
