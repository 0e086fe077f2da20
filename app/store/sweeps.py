"""The sweeps table's records: a sweep's name, base config, spec and its jobs in queue order.

A mixin of :class:`app.store.jobs.JobStore` (same engine, same write lock), kept apart so each module
holds one concept; what a sweep means (expanding the grid, queueing, cancelling) is
:mod:`app.services.sweeps`'s.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.store.tables import sweeps


def _sweep_dict(row: sa.Row[Any]) -> dict[str, Any]:
    sweep = dict(row._mapping)
    created: datetime = sweep["created_at"]
    if created.tzinfo is None:  # SQLite returns naive datetimes; everything stored is UTC
        sweep["created_at"] = created.replace(tzinfo=UTC)
    return sweep


class SweepRecords:
    """Sweep rows; each method is one transaction."""

    engine: Engine
    _write: threading.Lock

    def create_sweep(
        self,
        *,
        name: str,
        base: dict[str, Any],
        spec: dict[str, Any],
        job_ids: Sequence[str] = (),
        sweep_id: str | None = None,
    ) -> dict[str, Any]:
        """Insert a sweep (``sweep_id`` or a new id); its jobs can follow with :meth:`add_sweep_jobs`."""
        new_id = sweep_id or uuid.uuid4().hex[:12]
        row = {
            "id": new_id,
            "name": name,
            "created_at": datetime.now(UTC),
            "base": base,
            "spec": spec,
            "job_ids": list(job_ids),
            "cancel_requested": False,
        }
        with self._write, self.engine.begin() as conn:
            conn.execute(sweeps.insert().values(**row))
            return self._get_sweep(conn, new_id)  # type: ignore[return-value]

    def add_sweep_jobs(self, sweep_id: str, job_ids: Sequence[str]) -> dict[str, Any] | None:
        """Append jobs to a sweep's ``job_ids`` (queue order); the sweep, or None."""
        with self._write, self.engine.begin() as conn:
            sweep = self._get_sweep(conn, sweep_id)
            if sweep is None:
                return None
            ids = [*sweep["job_ids"], *job_ids]
            conn.execute(sweeps.update().where(sweeps.c.id == sweep_id).values(job_ids=ids))
            return {**sweep, "job_ids": ids}

    def get_sweep(self, sweep_id: str) -> dict[str, Any] | None:
        """The sweep (``id``, ``name``, ``created_at``, ``base``, ``spec``, ``job_ids``, ``cancel_requested``).

        None for an unknown id.
        """
        with self.engine.connect() as conn:
            return self._get_sweep(conn, sweep_id)

    def list_sweeps(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Sweeps, newest first."""
        query = sa.select(sweeps).order_by(sweeps.c.created_at.desc(), sweeps.c.id).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [_sweep_dict(row) for row in conn.execute(query)]

    def set_sweep_cancel(self, sweep_id: str) -> dict[str, Any] | None:
        """Mark a sweep cancelled (its jobs are the caller's to cancel); the sweep, or None."""
        with self._write, self.engine.begin() as conn:
            conn.execute(sweeps.update().where(sweeps.c.id == sweep_id).values(cancel_requested=True))
            return self._get_sweep(conn, sweep_id)

    @staticmethod
    def _get_sweep(conn: Connection, sweep_id: str) -> dict[str, Any] | None:
        row = conn.execute(sa.select(sweeps).where(sweeps.c.id == sweep_id)).first()
        return _sweep_dict(row) if row else None
