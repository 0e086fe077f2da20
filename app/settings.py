"""Server settings from ``SSDBOARD_*`` environment variables (pydantic-settings).

:func:`app.main.create_app` reads them once (or takes a :class:`Settings` from tests and
``serve``) and keeps them on ``app.state`` for the routes (``app.api.deps``) and the services.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ssd.datasets.limits import DEFAULT_ANNOTATION_BYTES, DEFAULT_BOXES, DEFAULT_IMAGES

MIN_TOKEN_CHARS = 16  # SSDBOARD_TOKEN: a shorter one could be guessed by trying
SERVER_RESERVE_GIB = 1.0  # the server itself, with TensorFlow loaded for the detections viewer
IMPORT_MEMORY_GIB = 4.0  # a dataset import's address space: benchmarks/import_memory.py sizes it


def machine_memory_bytes() -> int:
    """Physical memory, or the cgroup's memory limit (v2 ``memory.max``, v1) when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = Path(path).read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            total = min(total, int(limit))
    return total


def job_memory_gib() -> float:
    """What one training job may use: 75% of the machine's memory less the server's reserve, in GiB."""
    return round(max(0.75 * machine_memory_bytes() / 2**30 - SERVER_RESERVE_GIB, 1.0), 1)


def default_import_memory_gib() -> float:
    """An import's memory limit: 4 GiB, or what a job may use (:func:`job_memory_gib`) when less."""
    return min(IMPORT_MEMORY_GIB, job_memory_gib())


class Settings(BaseSettings):
    """Where the data lives, how many jobs run at once, and the limits of a job."""

    model_config = SettingsConfigDict(env_prefix="SSDBOARD_")

    data_dir: Path = Field(Path("data"), description="Holds the SQLite database and jobs/{id} directories.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///{data_dir}/ssdboard.db. PostgreSQL: "
        "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (pip install 'ssdboard[postgres]'). The server migrates "
        "the database to its schema at start.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    max_concurrent_jobs: int = Field(
        1, ge=0, description="Jobs training at the same time; 0 queues jobs without starting any (testing)."
    )
    worker_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="Niceness of worker processes. 0: the server and the worker share the CPU evenly "
        "(pages answer in milliseconds either way; a niced worker loses more training speed to many "
        "watchers); raise it to favour the dashboard, e.g. detections while training.",
    )
    shutdown_timeout: float = Field(20.0, description="Seconds a stopping server waits for workers to checkpoint.")
    max_connections: int = Field(
        2048,
        ge=1,
        description="Open connections (live streams included) the server serves; a request beyond is 503. "
        "Lowered at start-up to what the open-files limit leaves after the database, workers and files.",
    )
    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a client has to send its request headers; a slower connection is closed."
    )
    keep_alive_timeout: int = Field(5, ge=1, description="Seconds an idle keep-alive connection stays open.")
    max_priors: int = Field(1_000_000, description="Reject configs with more prior boxes than this.")
    max_memory_gib: float = Field(
        default_factory=job_memory_gib,
        gt=0,
        description="Reject configs whose estimated training memory (app.services.limits.memory_estimate, a "
        "worker's peak resident memory) exceeds this many GiB. Default: 75% of the machine's memory (or of "
        "the cgroup's limit when lower) less 1 GiB for the server, e.g. 16.7 on a 23.5 GiB machine.",
    )
    worker_memory_gib: float = Field(
        default_factory=job_memory_gib,
        gt=0,
        description="A worker whose resident memory exceeds this many GiB stops before the kernel's "
        "out-of-memory killer acts: its job fails with 'out of memory: ...', keeping its last checkpoint "
        "and metrics. Default: the same machine-derived figure as max_memory_gib.",
    )
    max_train_images: int = Field(10**9, description="Reject configs whose steps * batch_size exceeds this.")
    token: SecretStr | None = Field(
        None,
        description="When set, every POST/PUT/PATCH/DELETE under /api/ needs 'Authorization: Bearer TOKEN'; "
        f"printable ASCII, no spaces, at least {MIN_TOKEN_CHARS} characters.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated origins allowed to call the API from other sites; empty: CORS off.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Host names the server answers to besides the loopback names "
        "(e.g. ssdboard.example.org, *.example.org); bound to a non-loopback address with none listed: any.",
    )
    max_body_bytes: int = Field(1 << 20, ge=1, description="Largest request body (JSON) in bytes; larger is 413.")
    max_upload_bytes: int = Field(
        5 << 20, ge=1, description="Largest body of an upload route (multipart) in bytes; larger is 413."
    )
    max_dataset_bytes: int = Field(
        2 << 30,
        ge=1,
        description="Largest dataset .zip uploaded to POST /api/datasets in bytes (only that route); larger is 413.",
    )
    max_dataset_unpacked_bytes: int = Field(
        16 << 30, ge=1, description="Most bytes an uploaded dataset .zip may unpack to; more fails the import."
    )
    max_dataset_annotation_bytes: int = Field(
        DEFAULT_ANNOTATION_BYTES,
        ge=1,
        description="Largest COCO JSON file an uploaded dataset may hold, in bytes, checked before it is parsed "
        "(COCO train2017's is 448 MB); larger fails the import.",
    )
    max_dataset_images: int = Field(
        DEFAULT_IMAGES, ge=1, description="Most images one uploaded dataset may list (train2017: 118,287)."
    )
    max_dataset_boxes: int = Field(
        DEFAULT_BOXES, ge=1, description="Most boxes one uploaded dataset may list (train2017: 860,001)."
    )
    import_memory_gib: float = Field(
        default_factory=default_import_memory_gib,
        gt=0,
        description="The address space (RLIMIT_AS) of the process that imports an uploaded dataset, in GiB: past "
        "it the import fails, saying so, and the server goes on. Default: 4, or 75% of the machine's memory "
        "less 1 GiB for the server when that is less (an import of COCO train2017's size took 1.04 GiB; of "
        "500,000 images and 2,000,000 boxes, the default limits, 2.74 GiB).",
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="Where jobs train: 'local' (a spawned process per job on this machine) or 'ray' (a Ray "
        "job per run through Ray's Jobs API at ray_address; install ssdboard[ray]).",
    )
    ray_address: str = Field(
        "http://127.0.0.1:8265", description="The Ray cluster's dashboard (Jobs API) address, for executor 'ray'."
    )
    ray_cpus_per_job: float = Field(
        1.0, gt=0, description="CPUs per worker process of a Ray job (entrypoint_num_cpus; each peer actor's too)."
    )
    ray_gpus_per_job: float = Field(
        0.0, ge=0, description="GPUs per worker process of a Ray job (entrypoint_num_gpus; each peer actor's too)."
    )
    ray_python: str = Field("python", description="The Python a Ray job's entrypoint runs (ssdboard installed).")
    ray_placement_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Seconds a multi-worker Ray job's chief waits for the cluster to have room for its other "
        "workers; the job page says it is waiting meanwhile, and the job fails after it, saying so.",
    )
    ray_cancel_grace_s: float = Field(
        60.0, gt=0, description="Seconds a cancelled Ray job's worker has to checkpoint before its Ray job is stopped."
    )
    server_url: str | None = Field(
        None,
        description="The URL workers report to (POST /api/jobs/{id}/worker/events); default http://HOST:PORT "
        "(127.0.0.1 when bound to every address). Set it to an address every Ray node reaches.",
    )
    artifact_dir: Path | None = Field(
        None,
        description="The storage root that the server and every worker see: jobs/{id} (checkpoints, metrics) "
        "and the dataset registry live under it. Default: data_dir. On a cluster, a mount on every node "
        "at the same path (e.g. NFS).",
    )
    max_eval_images: int = Field(
        1000, ge=1, description="Most validation images one evaluation request may ask for (n); more is 422."
    )
    max_heavy_reads: int = Field(
        2,
        ge=1,
        description="Heavy reads run at once (model runs for detections and evaluations, checkpoint loads, "
        "uploads' detections, export conversions); one more is a 503 with Retry-After. Cached answers are free.",
    )

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("token", mode="after")
    @classmethod
    def _blank_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        token = value.get_secret_value()
        # A client sends "Authorization: Bearer <token>"; spaces or control characters in the
        # token would be trimmed or refused on the way, and then nobody could authenticate.
        if not token.isascii() or not token.isprintable() or any(ch.isspace() for ch in token):
            raise ValueError("must be printable ASCII without spaces (it travels in an HTTP header)")
        if len(token) < MIN_TOKEN_CHARS:  # a short one is guessed; `openssl rand -hex 16` gives 32
            raise ValueError(f"must be at least {MIN_TOKEN_CHARS} characters, e.g. $(openssl rand -hex 16)")
        return value

    @property
    def db_url(self) -> str:
        """The database URL, the SQLite file under ``data_dir`` unless ``database_url`` is set."""
        return self.database_url or f"sqlite:///{self.data_dir / 'ssdboard.db'}"

    @property
    def artifact_root(self) -> Path:
        """Where job files and imported datasets live: ``artifact_dir``, else ``data_dir``."""
        return self.artifact_dir if self.artifact_dir is not None else self.data_dir

    @property
    def jobs_dir(self) -> Path:
        """Parent of the per-job directories (checkpoint, metrics.jsonl), under the artifact root."""
        return self.artifact_root / "jobs"

    @property
    def worker_server_url(self) -> str:
        """The server's URL as workers reach it (``server_url``, else from ``host`` and ``port``)."""
        if self.server_url:
            return self.server_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"


def byte_size(n: int) -> str:
    """``5 MiB``, ``1.5 KiB`` or ``300 bytes``: a byte count for people."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.4g} {unit}"
    return f"{n} bytes"
