"""The store's tables at the newest schema revision (SQLAlchemy Core, portable types).

These definitions are what the code reads and writes; the database gets them through the
Alembic revisions in :mod:`app.store.migrations` (revision 1 is the schema from before Alembic,
revision 2 adds tags, notes, sweeps and the columns the runs table sorts on, revision 3 the
dataset column and the index that make the runs table fast, revision 4 the worker's token hash
and the executor's id of a run, revision 5 why a running job waits). A test checks that
a database migrated to the head revision matches these tables exactly, so the two never drift.

Only plain types (String, Text, Integer, Float, Boolean, DateTime, JSON), composite primary keys
and server defaults written as portable SQL, so the same schema runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

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
    # Revision 2: what people write about a run, and the sweep that queued it.
    sa.Column("tags", sa.JSON, nullable=False, server_default=sa.text("'[]'")),
    sa.Column("notes", sa.Text, nullable=False, server_default=sa.text("''")),
    sa.Column("sweep_id", sa.String(32), index=True),
    # Revision 2: kept up to date as evaluations and status changes arrive, so the runs table
    # sorts 1,000 jobs by their best mAP or duration without reading the evals table.
    sa.Column("best_map50", sa.Float),
    sa.Column("best_map50_step", sa.Integer),
    sa.Column("best_map", sa.Float),
    sa.Column("best_map_step", sa.Integer),
    sa.Column("run_seconds", sa.Float, nullable=False, server_default="0"),  # finished run segments
    sa.Column("duration_s", sa.Float, nullable=False, server_default="0"),  # through the latest step
    # Revision 3: the config's data.dataset as a plain column (filtering on a JSON path parsed
    # every config: 4-9 ms for 1,000 jobs), and the default sort's index.
    sa.Column("dataset", sa.String(200), index=True),
    sa.Index("ix_jobs_created_at", "created_at"),
    # Revision 4: a job's worker reports with a token of its own (its SHA-256 here), and the
    # executor's id of the run (a Ray job's submission id) for reconciling after a restart.
    sa.Column("worker_token_hash", sa.String(64)),
    sa.Column("executor_ref", sa.String(200)),
    # Revision 5: why a running job has not started training yet (its worker waits for resources).
    sa.Column("waiting", sa.Text),
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
    # The replay of a client that drew the history up to a step reads the steps after it here.
    sa.Index("ix_events_job_step", "job_id", "step"),
)

sweeps = sa.Table(
    "sweeps",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("base", sa.JSON, nullable=False),  # the base config as posted
    sa.Column("spec", sa.JSON, nullable=False),  # grid / random / max_jobs / seed as posted
    sa.Column("job_ids", sa.JSON, nullable=False),  # in queue order
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
)
