"""Runs as a table: tags, notes and sweep of a job, its best mAP and duration; the sweeps table.

Revision ID: 0002_runs_table
Revises: 0001_initial
Create Date: 2026-11-30

New columns get server defaults so existing rows are valid at once; then the best mAP@.5 and
mAP (value and step) are computed from the stored evaluations, and the duration of finished jobs
from their last run (``finished_at - started_at``: the time of earlier runs of a resumed job was
not recorded before this revision).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002_runs_table"
down_revision: str | None = "0001_initial"
branch_labels = None
depends_on = None

NEW_JOB_COLUMNS = ("tags", "notes", "sweep_id", "best_map50", "best_map50_step", "best_map", "best_map_step")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("tags", sa.JSON, nullable=False, server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("notes", sa.Text, nullable=False, server_default=sa.text("''")))
        batch.add_column(sa.Column("sweep_id", sa.String(32)))
        batch.add_column(sa.Column("best_map50", sa.Float))
        batch.add_column(sa.Column("best_map50_step", sa.Integer))
        batch.add_column(sa.Column("best_map", sa.Float))
        batch.add_column(sa.Column("best_map_step", sa.Integer))
        batch.add_column(sa.Column("run_seconds", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("duration_s", sa.Float, nullable=False, server_default="0"))
    op.create_index("ix_jobs_sweep_id", "jobs", ["sweep_id"])
    # ssdboard added this index after the tables existed (creating it when missing): a database
    # from before then lacks it.
    if "ix_events_job_step" not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("events")}:
        op.create_index("ix_events_job_step", "events", ["job_id", "step"])
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("base", sa.JSON, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("job_ids", sa.JSON, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """Best mAP from the evals table and the duration of finished jobs, for the rows already there."""
    meta = sa.MetaData()
    jobs = sa.Table("jobs", meta, autoload_with=conn)
    evals = sa.Table("evals", meta, autoload_with=conn)
    best: dict[str, dict[str, Any]] = {}
    for job_id, step, data in conn.execute(sa.select(evals.c.job_id, evals.c.step, evals.c.data)):
        values = best.setdefault(job_id, {})
        for key in ("map50", "map"):
            value = (data or {}).get(key)
            # The best value, at the first step that reached it.
            if isinstance(value, int | float) and (
                values.get(f"best_{key}") is None
                or value > values[f"best_{key}"]
                or (value == values[f"best_{key}"] and step < values[f"best_{key}_step"])
            ):
                values[f"best_{key}"], values[f"best_{key}_step"] = float(value), step
    for job_id, values in best.items():
        if values:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
    finished = sa.select(jobs.c.id, jobs.c.started_at, jobs.c.finished_at).where(
        jobs.c.started_at.is_not(None), jobs.c.finished_at.is_not(None)
    )
    for job_id, started, ended in conn.execute(finished).all():
        seconds = max((_utc(ended) - _utc(started)).total_seconds(), 0.0)
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(run_seconds=seconds, duration_s=seconds))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def downgrade() -> None:
    op.drop_table("sweeps")
    op.drop_index("ix_jobs_sweep_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in (*NEW_JOB_COLUMNS, "run_seconds", "duration_s"):
            batch.drop_column(column)
