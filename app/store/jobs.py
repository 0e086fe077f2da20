"""The job store: jobs, per-step metrics, evaluations, the event log and sweeps, in SQL.

SQLAlchemy Core with a portable schema (:mod:`app.store.tables`: plain types, composite primary keys,
JSON columns), so the same tables run on PostgreSQL; the default is a SQLite file in WAL mode
under the data dir. Opening a store migrates its database to the newest schema revision
(:mod:`app.store.migrations`, Alembic). The server process is the only writer; a lock serialises its
writes.

Each job row also carries what the runs table sorts on, kept current as records arrive so a
list never reads the metrics or evals tables: the best validation mAP@.5 and mAP with their
steps (:meth:`JobStore.record`), and the training wall time (``run_seconds`` of finished runs,
``duration_s`` through the latest step).

The ``events`` table is the log the Server-Sent Events stream replays: every ``step``, ``eval``
and ``status`` event gets the next ``seq`` of its job (``jobs.event_seq`` counts them and never
goes back, so an id is never reused even after stale events are dropped on a resume). SSE ids are
these ``seq`` numbers, which makes ``Last-Event-ID`` a plain ``seq > N`` query. A stream's replay
reads only what its client asked for (:meth:`JobStore.replay_head`, :meth:`JobStore.replay_page`):
nothing for ``from=live``, the steps after a step through the ``(job_id, step)`` index, and the
events' JSON as stored, never decoded.

A SQLite file gets a fixed pool of :data:`POOL_SIZE` connections that stay open
(:func:`app.store.engine.make_engine`).
"""

from __future__ import annotations

import functools
import math
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.domain import Best, Job, JobStatus
from app.store import migrations
from app.store import query as job_query
from app.store.engine import POOL_SIZE, DatabaseUnavailable, make_engine
from app.store.sweeps import SweepRecords
from app.store.tables import METRIC_KEYS, evals, events, jobs, metadata, metrics, sweeps

# The tables live in app.store.tables (at the newest revision); re-exported for the code that reads them here.
__all__ = [
    "MAX_INT",
    "METRIC_KEYS",
    "POOL_SIZE",
    "Event",
    "JobStore",
    "evals",
    "events",
    "jobs",
    "metadata",
    "metrics",
    "sweeps",
    "utcnow",
]

# The best mAP columns become a job's ``best`` (:func:`_job_of`); internal bookkeeping stays out of it
# (``event_seq``, ``run_seconds``; ``dataset`` is in the config; the worker's token hash and the
# executor's reference are the runner's).
BEST_COLUMNS = ("best_map50", "best_map50_step", "best_map", "best_map_step")

REPLAY_PAGE = 250  # events a stream reads from the log at a time
# The largest integer a query binds: SQLite's integers and PostgreSQL's BIGINT are 64-bit, and the
# SQLite driver raises OverflowError for a larger one. Steps and event ids a client sends stop here.
MAX_INT = 2**63 - 1


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
    # SQLite returns naive datetimes (everything stored is UTC); PostgreSQL the session's zone.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _job_of(row: sa.Row[Any]) -> Job:
    """The :class:`~app.domain.Job` of a ``jobs`` row: the best mAP columns as ``best``, bookkeeping left out."""
    status = JobStatus(row.status)
    created_at, started_at = _utc(row.created_at), _utc(row.started_at)
    assert created_at is not None  # NOT NULL
    duration_s = row.duration_s
    if status == JobStatus.running and started_at is not None:
        # Live, rather than through the latest step: a worker loading TensorFlow has no step yet.
        duration_s = row.run_seconds + max((utcnow() - started_at).total_seconds(), 0.0)
    return Job(
        id=row.id,
        name=row.name,
        config=row.config,
        status=status,
        created_at=created_at,
        step=row.step,
        total_steps=row.total_steps,
        started_at=started_at,
        finished_at=_utc(row.finished_at),
        error=row.error,
        checkpoint_step=row.checkpoint_step,
        cancel_requested=row.cancel_requested,
        last_metrics=row.last_metrics,
        last_eval=row.last_eval,
        tags=tuple(row.tags),
        notes=row.notes,
        sweep_id=row.sweep_id,
        duration_s=duration_s,
        best=Best(row.best_map50, row.best_map50_step, row.best_map, row.best_map_step),
        waiting=row.waiting,
    )


def _metric_row(job_id: str, step: dict[str, Any]) -> dict[str, Any]:
    """A ``metrics`` row of a step; a non-finite value is NULL, as SQLite stores it (PostgreSQL would keep NaN)."""
    row = {"job_id": job_id, "step": step["step"]}
    for key in METRIC_KEYS:
        value = step.get(key)
        row[key] = None if isinstance(value, float) and not math.isfinite(value) else value
    return row


def _dataset_of(config: dict[str, Any]) -> str | None:
    dataset = (config.get("data") or {}).get("dataset")
    return dataset[:200] if isinstance(dataset, str) else None


class JobStore(SweepRecords):
    """Typed access to the four tables; every method is one transaction."""

    def __init__(self, url: str) -> None:
        """Open the database at ``url`` and migrate it to the newest revision.

        Raises :class:`app.store.migrations.SchemaTooNew` for a database a newer ssdboard migrated, and
        :class:`app.store.engine.DatabaseUnavailable` for one that cannot be reached (or has no driver here).
        """
        self.engine = make_engine(url)
        try:
            self.revisions = migrations.upgrade(self.engine)  # (before, after)
        except sa.exc.OperationalError as exc:  # e.g. PostgreSQL down, or a wrong host or password
            self.engine.dispose()
            raise DatabaseUnavailable(url, " ".join(str(exc.orig).split())) from exc
        except BaseException:
            self.engine.dispose()
            raise
        self._write = threading.Lock()
        self._open_pool()

    def _open_pool(self) -> None:
        """Open every connection of a fixed pool now, while file descriptors are plenty."""
        pool = self.engine.pool
        if not isinstance(pool, sa.QueuePool) or pool.size() <= 0:
            return
        held = [self.engine.raw_connection() for _ in range(pool.size())]
        for conn in held:
            conn.close()  # back to the pool, still open

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # ------------------------------------------------------------------ jobs
    def create_job(
        self,
        *,
        name: str,
        config: dict[str, Any],
        total_steps: int,
        sweep_id: str | None = None,
        tags: Sequence[str] = (),
    ) -> tuple[Job, Event]:
        """Insert a queued job (of a sweep, with tags) and its first status event."""
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
                    tags=list(tags),
                    notes="",
                    sweep_id=sweep_id,
                    dataset=_dataset_of(config),
                )
            )
            event = self._append(conn, job_id, [("status", None, {"status": "queued"})])[0]
            return self._get(conn, job_id), event  # type: ignore[return-value]

    def get_job(self, job_id: str) -> Job | None:
        """The job, or None."""
        with self.engine.connect() as conn:
            return self._get(conn, job_id)

    def list_jobs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        tag: str | None = None,
        dataset: str | None = None,
        sweep_id: str | None = None,
        name: str | None = None,
        sort: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[Job]:
        """Jobs matching every given filter (:class:`app.store.query.JobFilter`), in ``sort`` order.

        ``sort`` is a key of :data:`app.store.query.SORT_KEYS`, ``-`` first for descending; the
        default is newest first. ValueError for an unknown key. ``limit`` None: all of them.
        """
        where = job_query.JobFilter(status, tag, dataset, sweep_id, name).where()
        # The page's ids first, then their rows: SQLite's sorter would otherwise carry every
        # matching row whole (configs of ~1 kB), 9 ms instead of 0.7 for 1,000 jobs.
        page = sa.select(jobs.c.id).where(*where).order_by(*job_query.order_by(sort)).offset(offset)
        if limit is not None:
            page = page.limit(limit)
        with self.engine.connect() as conn, conn.begin():
            ids = list(conn.scalars(page))
            rows = {row.id: row for row in conn.execute(sa.select(jobs).where(jobs.c.id.in_(ids)))} if ids else {}
        return [_job_of(rows[i]) for i in ids if i in rows]

    def count_jobs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        tag: str | None = None,
        dataset: str | None = None,
        sweep_id: str | None = None,
        name: str | None = None,
    ) -> int:
        """How many jobs :meth:`list_jobs` would list with the same filters and no limit."""
        where = job_query.JobFilter(status, tag, dataset, sweep_id, name).where()
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(jobs).where(*where)) or 0)

    def update_job_meta(
        self,
        job_id: str,
        *,
        name: str | None = None,
        tags: Sequence[str] | None = None,
        notes: str | None = None,
    ) -> Job | None:
        """Rename a job, replace its tags or notes (None leaves a field as it is); the job, or None."""
        values: dict[str, Any] = {"name": name, "tags": None if tags is None else list(tags), "notes": notes}
        values = {key: value for key, value in values.items() if value is not None}
        with self._write, self.engine.begin() as conn:
            if values:
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
            return self._get(conn, job_id)

    def job_ids(self, *, status: str) -> list[str]:
        """Ids of the jobs with ``status``, oldest first (the queue order)."""
        query = sa.select(jobs.c.id).where(jobs.c.status == status).order_by(jobs.c.created_at, jobs.c.id)
        with self.engine.connect() as conn:
            return list(conn.scalars(query))

    def worker_auth(self, job_id: str) -> tuple[str | None, str | None]:
        """A job's worker token hash and executor reference (columns the API never shows)."""
        query = sa.select(jobs.c.worker_token_hash, jobs.c.executor_ref).where(jobs.c.id == job_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return (row.worker_token_hash, row.executor_ref) if row is not None else (None, None)

    def update_job(self, job_id: str, **values: Any) -> None:
        """Set columns of a job without an event."""
        with self._write, self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    def set_status(self, job_id: str, status: str, *, event: dict[str, Any] | None = None, **values: Any) -> Event:
        """Change a job's status (and other columns) and log a ``status`` event in one transaction.

        A job that is not running waits for nothing (``waiting`` is cleared). A job that stops
        running adds the run's wall time to its ``run_seconds`` and ``duration_s`` (an interrupted
        one: through its last step).
        """
        data = {"status": status, **(event or {})}
        if values.get("error"):
            data["error"] = values["error"]
        if status != "running":
            values.setdefault("waiting", None)  # a job that does not run waits for nothing
        with self._write, self.engine.begin() as conn:
            if status != "running":
                columns = (jobs.c.status, jobs.c.started_at, jobs.c.run_seconds, jobs.c.duration_s)
                row = conn.execute(sa.select(*columns).where(jobs.c.id == job_id)).first()
                if row is not None and row.status == "running" and row.started_at is not None:
                    total = row.run_seconds + max((utcnow() - _utc(row.started_at)).total_seconds(), 0.0)  # type: ignore[operator]
                    if status == "interrupted" and row.duration_s > row.run_seconds:
                        # A server that restarts after a crash interrupts the job only now: the
                        # run ended with its last step, not with the downtime.
                        total = row.duration_s
                    values.update(run_seconds=total, duration_s=total)
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
                rows = [_metric_row(job_id, m) for m in steps]
                self._upsert(conn, metrics, rows)
            if evaluations:
                rows = [{"job_id": job_id, "step": e["step"], "data": e} for e in evaluations]
                self._upsert(conn, evals, rows)
            values: dict[str, Any] = {}
            if steps:
                values.update(step=steps[-1]["step"], last_metrics=steps[-1])
            if evaluations:
                values["last_eval"] = evaluations[-1]
            if evaluations or (steps and steps[-1].get("time") is not None):
                values.update(self._running_totals(conn, job_id, steps[-1] if steps else None, evaluations))
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
                rows = [_metric_row(job_id, m) for m in missing]
                conn.execute(metrics.insert(), rows)
                self._append(conn, job_id, [("step", m["step"], m) for m in missing])
            last = conn.execute(
                sa.select(metrics).where(metrics.c.job_id == job_id).order_by(metrics.c.step.desc()).limit(1)
            ).first()
            kept_evals = list(
                conn.scalars(sa.select(evals.c.data).where(evals.c.job_id == job_id).order_by(evals.c.step))
            )
            last_eval = kept_evals[-1] if kept_evals else None
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    step=step,
                    last_metrics={k: getattr(last, k) for k in ("step", *METRIC_KEYS)} if last else None,
                    last_eval=last_eval,
                    # The evaluations dropped above may have held the best values.
                    **job_query.best_after(dict.fromkeys(BEST_COLUMNS), kept_evals),
                )
            )

    def metrics(self, job_id: str, *, after_step: int = 0) -> list[dict[str, Any]]:
        """Step metrics after ``after_step``, in step order."""
        query = (
            sa.select(metrics).where(metrics.c.job_id == job_id, metrics.c.step > after_step).order_by(metrics.c.step)
        )
        with self.engine.connect() as conn:
            return [{"step": r.step, **{k: getattr(r, k) for k in METRIC_KEYS}} for r in conn.execute(query)]

    def metric_rows(self, job_id: str, keys: Sequence[str]) -> list[Sequence[Any]]:
        """``(step, *keys)`` of every step of a job, in step order, as plain rows (no dict per step).

        For bulk readers: the compare page reads 10 jobs of 10,000 steps, where :meth:`metrics`
        (every column, a dict per step) took 70 ms a job. The rows are the DBAPI cursor's tuples:
        SQLAlchemy's ``Row`` per step doubled the time of this read.
        """
        query = (
            sa.select(metrics.c.step, *(metrics.c[k] for k in keys))
            .where(metrics.c.job_id == job_id)
            .order_by(metrics.c.step)
        )
        with self.engine.connect() as conn:
            result = conn.execute(query)
            try:
                return list(result.cursor.fetchall())
            finally:
                result.close()

    def evals(self, job_id: str, *, after_step: int = 0) -> list[dict[str, Any]]:
        """Evaluations after ``after_step``, in step order."""
        query = (
            sa.select(evals.c.data).where(evals.c.job_id == job_id, evals.c.step > after_step).order_by(evals.c.step)
        )
        with self.engine.connect() as conn:
            return list(conn.scalars(query))

    def replay_head(self, job_id: str) -> tuple[str, int, int | None] | None:
        """What a stream needs before replaying: ``(status, last_seq, status_seq)``, or None for no job.

        ``last_seq`` is the job's last event id: every event up to it is committed (and in the
        log, unless a resume dropped it), every later one is not yet (a stream subscribed before
        this read gets it live). ``status_seq`` is the id of the newest status event. One statement.
        """
        newest_status = (
            sa.select(events.c.seq)
            .where(events.c.job_id == job_id, events.c.step.is_(None), events.c.kind == "status")
            .order_by((events.c.seq + 0).desc())  # "+ 0": look the status rows up by the step index
            .limit(1)
            .scalar_subquery()
        )
        query = sa.select(jobs.c.status, jobs.c.event_seq, newest_status).where(jobs.c.id == job_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row[0], row[1], row[2])

    def replay_page(
        self,
        job_id: str,
        *,
        after_seq: int,
        up_to_seq: int,
        after_step: int | None = None,
        keep_seq: int | None = None,
        limit: int = REPLAY_PAGE,
    ) -> list[tuple[int, str, str]]:
        """Up to ``limit`` events with ``after_seq < seq <= up_to_seq`` as ``(seq, kind, JSON text)``, in order.

        With ``after_step``, only the step and eval events after that step, and the event
        ``keep_seq`` (a stream's newest status): found through the ``(job_id, step)`` index, so a
        client that drew the history reads the few events it lacks, not the log.
        """
        data = sa.cast(events.c.data, sa.Text)  # the stored JSON text: a frame needs no decoding
        seq: sa.ColumnElement[int]
        if after_step is None:
            seq = events.c.seq  # the primary key's range
            where = [events.c.job_id == job_id, seq > after_seq, seq <= up_to_seq]
        else:
            seq = events.c.seq + 0  # "+ 0": SQLite would walk the job's whole log by seq
            wanted = events.c.step > after_step  # status events have no step
            if keep_seq is not None:
                wanted = sa.or_(wanted, events.c.seq == keep_seq)
            where = [events.c.job_id == job_id, seq > after_seq, seq <= up_to_seq, wanted]
        query = sa.select(events.c.seq, events.c.kind, data).where(*where).order_by(seq).limit(limit)
        with self.engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(query)]

    def events_after(self, job_id: str, seq: int) -> tuple[list[Event], str | None]:
        """Events with ``seq`` above the given one and the job's current status, read together."""
        with self.engine.connect() as conn, conn.begin():
            status = conn.scalar(sa.select(jobs.c.status).where(jobs.c.id == job_id))
            query = sa.select(events).where(events.c.job_id == job_id, events.c.seq > seq).order_by(events.c.seq)
            rows = [Event(job_id, r.seq, r.kind, r.data) for r in conn.execute(query)]
        return rows, status

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _running_totals(
        conn: Connection, job_id: str, last_step: dict[str, Any] | None, evaluations: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        """The best-mAP and duration columns after a batch of records (one primary-key read)."""
        row = conn.execute(
            sa.select(jobs.c.started_at, jobs.c.run_seconds, *(jobs.c[k] for k in BEST_COLUMNS)).where(
                jobs.c.id == job_id
            )
        ).first()
        if row is None:
            return {}
        values: dict[str, Any] = {}
        if evaluations:
            values.update(job_query.best_after({k: getattr(row, k) for k in BEST_COLUMNS}, evaluations))
        if last_step is not None and row.started_at is not None:
            # Through the step's end in the worker (UNIX seconds), plus the job's earlier runs.
            ran = last_step["time"] - _utc(row.started_at).timestamp()  # type: ignore[union-attr]
            values["duration_s"] = row.run_seconds + max(ran, 0.0)
        return values

    @staticmethod
    def _get(conn: Connection, job_id: str) -> Job | None:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _job_of(row) if row else None

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
