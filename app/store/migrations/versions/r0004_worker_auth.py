"""Jobs run by an executor elsewhere: the worker's token (hashed) and the executor's id for the run.

Revision ID: 0004_worker_auth
Revises: 0003_list_columns
Create Date: 2026-11-30

A worker on another node reports over HTTP with a token of its own job (``worker_token_hash``:
its SHA-256, never the token); ``executor_ref`` names the run in the executor (a Ray job's
submission id), so a restarted server can ask the executor whether it still runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_worker_auth"
down_revision: str | None = "0003_list_columns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("worker_token_hash", sa.String(64)))
        batch.add_column(sa.Column("executor_ref", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("executor_ref")
        batch.drop_column("worker_token_hash")
