"""The job store: jobs, per-step metrics, evaluations and the event log, in SQL.

SQLAlchemy Core with a portable schema (plain types, composite primary keys, JSON columns), so
the same tables run on PostgreSQL; the default is a SQLite file in WAL mode under the data dir.
The server process is the only writer; a lock serialises its writes.

The ``events`` table is the log the Server-Sent Events stream replays: every ``step``, ``eval``
and ``status`` event gets the next ``seq`` of its job (``jobs.event_seq`` counts them and never
goes back, so an id is never reused even after stale events are dropped on a resume). SSE ids are
these ``seq`` numbers, which makes ``Last-Event-ID`` a plain ``seq > N`` query.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("step", sa.Integer, nullable=False, default=0),
    sa.Column("total_steps", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("checkpoint_step", sa.Integer),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("last_metrics", sa.JSON),
    sa.Column("last_eval", sa.JSON),
    sa.Column("event_seq", sa.Integer, nullable=False, default=0),
)

METRIC_KEYS = ("pos_clf", "neg_clf", "loc", "total", "num_pos", "num_neg", "lr", "images_per_sec", "time")

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    *(sa.Column(key, sa.Float) for key in METRIC_KEYS),
)

evals = sa.Table(
    "evals",
    metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("data", sa.JSON, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("step", sa.Integer),  # step and eval events: the training step (to drop stale ones)
    sa.Column("data", sa.JSON, nullable=False),
)

JOB_COLUMNS = [c.name for c in jobs.columns if c.name != "event_seq"]


@dataclass(frozen=True)
class Event:
    """One entry of a job's event log: ``kind`` is ``step``, ``eval`` or ``status``."""

    job_id: str
    seq: int
    kind: str
    data: dict[str, Any]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; everything stored is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _job_dict(row: sa.Row[Any]) -> dict[str, Any]:
    job = {key: getattr(row, key) for key in JOB_COLUMNS}
    for key in ("created_at", "started_at", "finished_at"):
        job[key] = _utc(job[key])
    return job


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, synchronous=NORMAL and a busy timeout."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class JobStore:
    """Typed access to the four tables; every method is one transaction."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        metadata.create_all(self.engine)
        self._write = threading.Lock()

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # ------------------------------------------------------------------ jobs
    def create_job(self, *, name: str, config: dict[str, Any], total_steps: int) -> tuple[dict[str, Any], Event]:
        """Insert a queued job and its first status event."""
        job_id = uuid.uuid4().hex[:12]
        with self._write, self.engine.begin() as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    name=name,
                    config=config,
                    status="queued",
                    created_at=utcnow(),
                    step=0,
                    total_steps=total_steps,
                    cancel_requested=False,
                    event_seq=0,
                )
            )
            event = self._append(conn, job_id, [("status", None, {"status": "queued"})])[0]
            return self._get(conn, job_id), event  # type: ignore[return-value]

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job, or None."""
        with self.engine.connect() as conn:
            return self._get(conn, job_id)

    def list_jobs(self, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Jobs newest first, optionally of one status."""
        query = sa.select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit)
        if status is not None:
            query = query.where(jobs.c.status == status)
        with self.engine.connect() as conn:
            return [_job_dict(row) for row in conn.execute(query)]

    def job_ids(self, *, status: str) -> list[str]:
        """Ids of the jobs with ``status``, oldest first (the queue order)."""
        query = sa.select(jobs.c.id).where(jobs.c.status == status).order_by(jobs.c.created_at, jobs.c.id)
        with self.engine.connect() as conn:
            return list(conn.scalars(query))

    def update_job(self, job_id: str, **values: Any) -> None:
        """Set columns of a job without an event."""
        with self._write, self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    def set_status(self, job_id: str, status: str, *, event: dict[str, Any] | None = None, **values: Any) -> Event:
        """Change a job's status (and other columns) and log a ``status`` event in one transaction."""
        data = {"status": status, **(event or {})}
        if values.get("error"):
            data["error"] = values["error"]
        with self._write, self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(status=status, **values))
            return self._append(conn, job_id, [("status", None, data)])[0]

    def delete_job(self, job_id: str) -> None:
        """Remove the job and all its rows."""
        with self._write, self.engine.begin() as conn:
            for table in (metrics, evals, events, jobs):
                key = table.c.id if table is jobs else table.c.job_id
                conn.execute(table.delete().where(key == job_id))

    # ------------------------------------------------------------------ training records
    def record(self, job_id: str, items: Sequence[tuple[str, dict[str, Any]]]) -> list[Event]:
        """Persist a batch of ``("step" | "eval", data)`` of one job; return their events.

        Metrics and evaluations are upserted by step (a resumed job redoes the steps after its
        checkpoint); the job's ``step``, ``last_metrics`` and ``last_eval`` follow the batch.
        """
        steps = [data for kind, data in items if kind == "step"]
        evaluations = [data for kind, data in items if kind == "eval"]
        with self._write, self.engine.begin() as conn:
            if steps:
                rows = [{"job_id": job_id, "step": m["step"], **{k: m.get(k) for k in METRIC_KEYS}} for m in steps]
                self._upsert(conn, metrics, rows)
            if evaluations:
                rows = [{"job_id": job_id, "step": e["step"], "data": e} for e in evaluations]
                self._upsert(conn, evals, rows)
            values: dict[str, Any] = {}
            if steps:
                values.update(step=steps[-1]["step"], last_metrics=steps[-1])
            if evaluations:
                values["last_eval"] = evaluations[-1]
            if values:
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
            return self._append(conn, job_id, [(kind, data["step"], data) for kind, data in items])

    def reset_to_step(self, job_id: str, step: int, backfill: Iterable[dict[str, Any]] = ()) -> None:
        """Forget records after ``step`` (a resume redoes them) and add ``backfill`` metrics missing here.

        ``backfill`` is the worker's ``metrics.jsonl`` up to ``step``: steps a killed server never
        persisted. They are logged as step events too, so a replay has every step.
        """
        with self._write, self.engine.begin() as conn:
            for table in (metrics, evals):
                conn.execute(table.delete().where(table.c.job_id == job_id, table.c.step > step))
            conn.execute(events.delete().where(events.c.job_id == job_id, events.c.step > step))
            known = set(conn.scalars(sa.select(metrics.c.step).where(metrics.c.job_id == job_id)))
            missing = [m for m in backfill if m["step"] not in known and m["step"] <= step]
            if missing:
                rows = [{"job_id": job_id, "step": m["step"], **{k: m.get(k) for k in METRIC_KEYS}} for m in missing]
                conn.execute(metrics.insert(), rows)
                self._append(conn, job_id, [("step", m["step"], m) for m in missing])
            last = conn.execute(
                sa.select(metrics).where(metrics.c.job_id == job_id).order_by(metrics.c.step.desc()).limit(1)
            ).first()
            last_eval = conn.execute(
                sa.select(evals.c.data).where(evals.c.job_id == job_id).order_by(evals.c.step.desc()).limit(1)
            ).scalar()
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    step=step,
                    last_metrics={k: getattr(last, k) for k in ("step", *METRIC_KEYS)} if last else None,
                    last_eval=last_eval,
                )
            )

    def metrics(self, job_id: str, *, after_step: int = 0) -> list[dict[str, Any]]:
        """Step metrics after ``after_step``, in step order."""
        query = (
            sa.select(metrics).where(metrics.c.job_id == job_id, metrics.c.step > after_step).order_by(metrics.c.step)
        )
        with self.engine.connect() as conn:
            return [{"step": r.step, **{k: getattr(r, k) for k in METRIC_KEYS}} for r in conn.execute(query)]

    def evals(self, job_id: str, *, after_step: int = 0) -> list[dict[str, Any]]:
        """Evaluations after ``after_step``, in step order."""
        query = (
            sa.select(evals.c.data).where(evals.c.job_id == job_id, evals.c.step > after_step).order_by(evals.c.step)
        )
        with self.engine.connect() as conn:
            return list(conn.scalars(query))

    def events_after(self, job_id: str, seq: int) -> tuple[list[Event], str | None]:
        """Events with ``seq`` above the given one and the job's current status, read together."""
        with self.engine.connect() as conn, conn.begin():
            status = conn.scalar(sa.select(jobs.c.status).where(jobs.c.id == job_id))
            query = sa.select(events).where(events.c.job_id == job_id, events.c.seq > seq).order_by(events.c.seq)
            rows = [Event(job_id, r.seq, r.kind, r.data) for r in conn.execute(query)]
        return rows, status

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _get(conn: Connection, job_id: str) -> dict[str, Any] | None:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _job_dict(row) if row else None

    @staticmethod
    def _append(conn: Connection, job_id: str, items: Sequence[tuple[str, int | None, dict[str, Any]]]) -> list[Event]:
        if not items:
            return []
        last = conn.scalar(sa.select(jobs.c.event_seq).where(jobs.c.id == job_id)) or 0
        out = [Event(job_id, last + i, kind, data) for i, (kind, _, data) in enumerate(items, start=1)]
        conn.execute(
            events.insert(),
            [
                {"job_id": job_id, "seq": e.seq, "kind": e.kind, "step": step, "data": e.data}
                for e, (_, step, _) in zip(out, items, strict=True)
            ],
        )
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(event_seq=last + len(items)))
        return out

    @staticmethod
    def _upsert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows, replacing those with the same primary key (SQLite and PostgreSQL syntax)."""
        dialect = conn.dialect.name
        if dialect in ("sqlite", "postgresql"):
            conn.execute(_upsert_statement(dialect, table), rows)
            return
        for row in rows:  # pragma: no cover - other databases: delete then insert
            conn.execute(table.delete().where(*(table.c[k] == row[k] for k in ("job_id", "step"))))
            conn.execute(table.insert().values(**row))


@functools.cache
def _upsert_statement(dialect: str, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT (primary key) DO UPDATE`` of every other column, built once per table.

    Building it (``excluded`` and its column proxies) cost more than running it, at every step.
    """
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    stmt = insert(table)
    keys = [c.name for c in table.primary_key.columns]
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=keys, set_=update)
