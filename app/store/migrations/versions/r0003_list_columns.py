"""The runs table's speed: ``jobs.dataset`` (the config's ``data.dataset``) and an index on ``created_at``.

Revision ID: 0003_list_columns
Revises: 0002_runs_table
Create Date: 2026-11-30

Measured with 1,000 jobs (``benchmarks.jobs_list``): filtering on the config's JSON path parsed
every config (4-9 ms a query), and the default newest-first order sorted whole rows (9 ms);
a column with an index and an index on ``created_at`` make both a lookup. The new column is
filled from the configs already stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_list_columns"
down_revision: str | None = "0002_runs_table"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("dataset", sa.String(200)))
    op.create_index("ix_jobs_dataset", "jobs", ["dataset"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    conn = op.get_bind()
    jobs = sa.Table("jobs", sa.MetaData(), autoload_with=conn)
    for job_id, config in conn.execute(sa.select(jobs.c.id, jobs.c.config)).all():
        dataset = ((config or {}).get("data") or {}).get("dataset")
        if isinstance(dataset, str):
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(dataset=dataset[:200]))


def downgrade() -> None:
    op.drop_index("ix_jobs_created_at", table_name="jobs")
    op.drop_index("ix_jobs_dataset", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("dataset")
