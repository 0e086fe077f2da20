"""Why a running job has not started training yet.

Revision ID: 0005_waiting
Revises: 0004_worker_auth
Create Date: 2026-12-06

A multi-worker Ray job's chief may wait minutes for the cluster to have room for its other
workers; ``waiting`` holds the worker's reason (with the timeout) until training starts, so the
job page says so instead of showing a run that does not move.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_waiting"
down_revision: str | None = "0004_worker_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("waiting", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("waiting")
