"""Alembic's environment: run the revisions on the connection :func:`app.store.migrations.upgrade` hands over.

Migrations run in code (``alembic.command`` with a :class:`~alembic.config.Config` built by
:func:`app.store.migrations.alembic_config`), never from an ``alembic.ini``: the server migrates its
own store when it opens it. ``render_as_batch`` lets a later revision alter a column on SQLite
(which rebuilds the table) with the same script that alters it in place on PostgreSQL.
"""

from __future__ import annotations

from alembic import context

from app.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only app.store.migrations runs these scripts
    raise RuntimeError(
        "app.store.migrations runs the revisions on an open connection (config.attributes['connection'])"
    )

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
