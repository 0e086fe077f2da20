"""The schema from before Alembic: jobs, metrics, evals and the events log.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-30

Written out in full rather than from :mod:`app.store.tables` (which follows the newest revision), so
this revision always creates exactly what ssdboard created before it used migrations: a database
from then is stamped at this revision and upgraded from here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision: str | None = None
branch_labels = None
depends_on = None

METRIC_KEYS = ("pos_clf", "neg_clf", "loc", "total", "num_pos", "num_neg", "lr", "images_per_sec", "time")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("total_steps", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("checkpoint_step", sa.Integer),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("last_metrics", sa.JSON),
        sa.Column("last_eval", sa.JSON),
        sa.Column("event_seq", sa.Integer, nullable=False),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_table(
        "metrics",
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        *(sa.Column(key, sa.Float) for key in METRIC_KEYS),
    )
    op.create_table(
        "evals",
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_events_job_step", "events", ["job_id", "step"])


def downgrade() -> None:
    for table in ("events", "evals", "metrics", "jobs"):
        op.drop_table(table)
