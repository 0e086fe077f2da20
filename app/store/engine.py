"""Database engines: SQLite in WAL mode with a fixed pool of open connections, or PostgreSQL.

A SQLite file gets a fixed pool of :data:`POOL_SIZE` connections, opened when the store is and
kept open: a request never opens a database file, so a server short of file descriptors (many
clients) cannot fail a request with "unable to open database file".

PostgreSQL (``postgresql+psycopg://...``, the ``postgres`` extra) gets SQLAlchemy's pool with a
ping before use (a server restarted under a running ssdboard) and sessions in UTC: ``timestamptz``
values come back in the session's time zone, and the store hands out UTC.

JSON is written compact and strict on both: a NaN or infinity (which ``json.dumps`` writes as the
non-JSON ``NaN``) becomes ``null``, since PostgreSQL's ``json`` type refuses it and SQLite's JSON
functions (the runs table's sort on the last step's losses) fail on it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

POOL_SIZE = 8  # SQLite connections the server keeps open (2 file descriptors each: the file and its WAL)


def _compact_json(value: Any) -> str:
    # Stored the way a live SSE frame carries it, so a replay sends the stored text as it is.
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or infinity somewhere: rare, so only then walk the value
        return json.dumps(_finite(value), separators=(",", ":"), allow_nan=False)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (lists, tuples and dicts walked)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class DatabaseUnavailable(RuntimeError):
    """The store's database cannot be opened: its driver is missing or the server cannot be reached."""

    def __init__(self, url: str, reason: str) -> None:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        super().__init__(f"cannot open the database {shown}: {reason}")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, synchronous=NORMAL, a busy timeout and, for a file,
    a fixed pool of :data:`POOL_SIZE` connections that stay open (a busy server waits for one
    instead of opening the file again)."""
    if not url.startswith("sqlite"):
        options: dict[str, Any] = {}
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "postgresql" and "options" not in parsed.query:
            options["connect_args"] = {"options": "-c timezone=UTC"}
        try:
            return sa.create_engine(url, pool_pre_ping=True, json_serializer=_compact_json, **options)
        except ModuleNotFoundError as exc:  # the dialect's driver, e.g. psycopg without the postgres extra
            hint = "for postgresql+psycopg: pip install 'ssdboard[postgres]'"
            raise DatabaseUnavailable(url, f"its driver {exc.name} is not installed ({hint})") from exc
    path = url.split("///", 1)[-1]
    pool: dict[str, Any] = {}
    if path and path != ":memory:" and "mode=memory" not in url:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pool = {"poolclass": sa.QueuePool, "pool_size": POOL_SIZE, "max_overflow": 0, "pool_timeout": 60}
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, json_serializer=_compact_json, **pool
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine
