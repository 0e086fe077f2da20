"""Schema migrations of the job store (Alembic), run by the store when it opens a database.

:func:`upgrade` brings a database to the newest revision this code knows:

- an empty database gets every revision, in order (so it ends at the head revision);
- a database made before ssdboard used Alembic (its tables exist but no ``alembic_version``)
  is stamped at revision 1, the schema of that time, then upgraded;
- a database at an older revision is upgraded;
- a database at a revision this code does not know (a newer ssdboard wrote it) is refused with
  :class:`SchemaTooNew`, which names both revisions: running old code on it could lose data.

The revisions live in ``versions/`` inside the package (shipped in the wheel); the Alembic
configuration is built here in code, there is no ``alembic.ini``. A new revision: copy the
latest file in ``versions/``, set ``revision`` and ``down_revision``, write its operations, and
change :mod:`app.store.tables` to match (a test compares a migrated database with the tables).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

SCRIPT_DIR = Path(__file__).resolve().parent
INITIAL = "0001_initial"  # the schema from before Alembic


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer ssdboard than this one."""

    def __init__(self, current: str, head: str, database: str = "the database") -> None:
        super().__init__(
            f"{database} is at schema revision {current}, which this ssdboard does not know (its newest is "
            f"{head}): a newer ssdboard migrated it. Run that version, or point SSDBOARD_DATA_DIR "
            "(or SSDBOARD_DATABASE_URL) at another database."
        )
        self.current = current
        self.head = head


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration in code: the scripts in this package, and the connection to run them on."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "app/store/migrations/versions holds no revision"
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """The database's revision, or None when it has no ``alembic_version`` (empty, or from before Alembic)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine) -> tuple[str | None, str]:
    """Bring the database to the head revision; returns ``(revision before, revision after)``.

    Raises :class:`SchemaTooNew` for a revision this code does not know.
    """
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    head = head_revision()
    with engine.begin() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current not in {s.revision for s in script.walk_revisions()}:
            raise SchemaTooNew(current, head, engine.url.render_as_string(hide_password=True))
        if current == head:
            return current, head
        config.attributes["connection"] = conn
        if current is None and sa.inspect(conn).has_table("jobs"):
            command.stamp(config, INITIAL)  # made before Alembic: its tables are revision 1's
        command.upgrade(config, "head")
    return current, head
