"""Schema migrations: a fresh store at the head revision, a pre-Alembic database upgraded with its
rows, a database from a newer ssdboard refused, and the head revision equal to app.store.tables. Each
test runs on SQLite and on PostgreSQL (``database_url``, tests/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.store import migrations
from app.store.jobs import JobStore
from app.store.tables import metadata

HEAD = "0005_waiting"
METRIC_KEYS = ("pos_clf", "neg_clf", "loc", "total", "num_pos", "num_neg", "lr", "images_per_sec", "time")


def _pre_alembic_tables() -> sa.MetaData:
    """The tables exactly as app/store/jobs.py defined them before Alembic (revision 1)."""
    meta = sa.MetaData()
    sa.Table(
        "jobs",
        meta,
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
    )
    sa.Table(
        "metrics",
        meta,
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        *(sa.Column(key, sa.Float) for key in METRIC_KEYS),
    )
    sa.Table(
        "evals",
        meta,
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("data", sa.JSON, nullable=False),
    )
    sa.Table(
        "events",
        meta,
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Index("ix_events_job_step", "job_id", "step"),
    )
    return meta


def _json_defaults_as_text(
    context: MigrationContext,
    inspected_column: sa.Column[Any],
    metadata_column: sa.Column[Any],
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Alembic's server-default comparison, except a JSON column's on PostgreSQL: it has no ``=`` on
    ``json``, so compare the text (``'[]'::json`` there, ``'[]'`` in app.store.tables). None: Alembic's own."""
    if isinstance(metadata_column.type, sa.JSON) and context.dialect.name == "postgresql":
        return (inspected_default or "").split("::")[0] != (rendered_metadata_default or "")
    return None


def test_a_fresh_database_is_created_at_the_head_revision(database_url: str) -> None:
    store = JobStore(database_url)
    try:
        assert store.revisions == (None, migrations.head_revision())
        assert migrations.current_revision(store.engine) == HEAD
        with store.engine.connect() as conn:
            # The migrated schema is the one the code reads and writes: no difference at all.
            context = MigrationContext.configure(conn, opts={"compare_server_default": _json_defaults_as_text})
            assert compare_metadata(context, metadata) == []
    finally:
        store.close()


def test_a_database_from_before_alembic_is_stamped_upgraded_and_keeps_its_rows(database_url: str) -> None:
    old = _pre_alembic_tables()
    engine = sa.create_engine(database_url)
    started, finished = datetime(2026, 1, 1, 12, 0, tzinfo=UTC), datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(
            old.tables["jobs"].insert(),
            [
                {
                    "id": "abc123",
                    "name": "before",
                    "config": {"data": {"dataset": "mnist"}},
                    "status": "succeeded",
                    "created_at": started,
                    "started_at": started,
                    "finished_at": finished,
                    "step": 3,
                    "total_steps": 3,
                    "cancel_requested": False,
                    "last_metrics": {"step": 3, "total": 1.5},
                    "last_eval": {"step": 3, "map50": 0.7, "map": 0.4},
                    "event_seq": 1,
                }
            ],
        )
        conn.execute(
            old.tables["evals"].insert(),
            [
                {"job_id": "abc123", "step": 2, "data": {"step": 2, "map50": 0.8, "map": 0.3}},
                {"job_id": "abc123", "step": 3, "data": {"step": 3, "map50": 0.7, "map": 0.4}},
            ],
        )
        conn.execute(old.tables["metrics"].insert(), [{"job_id": "abc123", "step": 3, "total": 1.5}])
    engine.dispose()

    store = JobStore(database_url)
    try:
        assert store.revisions == (None, HEAD)  # no alembic_version before
        job = store.get_job("abc123")
        assert job is not None
        assert (job.name, job.status, job.step, job.last_eval["map50"]) == ("before", "succeeded", 3, 0.7)
        assert (job.tags, job.notes, job.sweep_id) == ((), "", None)
        # The best value and its step from the stored evaluations, not the last evaluation.
        assert job.best.to_dict() == {"map50": 0.8, "map50_step": 2, "map": 0.4, "map_step": 3}
        assert job.duration_s == 300.0
        assert store.metrics("abc123")[0]["total"] == 1.5
        assert store.list_jobs(sort="-best_map50")[0].id == "abc123"
        assert [j.id for j in store.list_jobs(dataset="mnist")] == ["abc123"]  # filled from the config
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        store.close()


def test_a_database_at_a_newer_revision_is_refused_naming_both(database_url: str) -> None:
    JobStore(database_url).close()
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    engine.dispose()
    with pytest.raises(migrations.SchemaTooNew) as refused:
        JobStore(database_url)
    message = str(refused.value)
    assert "0099_from_the_future" in message and HEAD in message
    assert "newer ssdboard" in message


def test_reopening_a_store_at_the_head_changes_nothing(database_url: str) -> None:
    JobStore(database_url).close()
    store = JobStore(database_url)
    try:
        assert store.revisions == (HEAD, HEAD)
    finally:
        store.close()


def test_a_database_from_before_the_step_index_gets_it(database_url: str) -> None:
    old = _pre_alembic_tables()
    old.tables["events"].indexes.clear()  # ssdboard added it later, creating it when missing
    engine = sa.create_engine(database_url)
    old.create_all(engine)
    engine.dispose()
    store = JobStore(database_url)
    try:
        assert "ix_events_job_step" in {ix["name"] for ix in sa.inspect(store.engine).get_indexes("events")}
    finally:
        store.close()


def test_serve_refuses_a_database_from_a_newer_ssdboard(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    url = sa.make_url(database_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(password="secret")  # trust authentication ignores it; the message must hide it
    monkeypatch.setenv("SSDBOARD_DATABASE_URL", url.render_as_string(hide_password=False))
    JobStore(database_url).close()
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    engine.dispose()
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--data-dir", str(tmp_path), "--port", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    shown = url.render_as_string(hide_password=True)  # sqlite:///.../ssdboard.db, postgresql+psycopg://ssdboard:***@...
    assert f"{shown} is at schema revision 0099_from_the_future" in err and f"its newest is {HEAD}" in err
    assert "secret" not in err


def test_an_older_revision_is_upgraded(database_url: str) -> None:
    from alembic import command

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0002_runs_table")
        jobs = sa.Table("jobs", sa.MetaData(), autoload_with=conn)
        now = datetime(2026, 1, 1, tzinfo=UTC)
        row = {"id": "j2", "name": "at 2", "config": {"data": {"dataset": "trees"}}, "status": "queued"}
        conn.execute(
            jobs.insert().values(**row, created_at=now, step=0, total_steps=1, cancel_requested=False, event_seq=0)
        )
    engine.dispose()
    store = JobStore(database_url)
    try:
        assert store.revisions == ("0002_runs_table", HEAD)
        assert [j.id for j in store.list_jobs(dataset="trees")] == ["j2"]
    finally:
        store.close()


def test_serve_names_a_database_it_cannot_reach_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main
    from benchmarks.server import free_port

    port = free_port()  # nothing listens there
    monkeypatch.setenv("SSDBOARD_DATABASE_URL", f"postgresql+psycopg://ssdboard:secret@127.0.0.1:{port}/ssdboard")
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--data-dir", str(tmp_path), "--port", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"cannot open the database postgresql+psycopg://ssdboard:***@127.0.0.1:{port}/ssdboard: " in err
    assert "Connection refused" in err and "secret" not in err and "Traceback" not in err

    monkeypatch.setenv("SSDBOARD_DATABASE_URL", "postgresql+pg8000://ssdboard:secret@127.0.0.1/ssdboard")
    with pytest.raises(SystemExit):
        main(["serve", "--data-dir", str(tmp_path), "--port", "0"])
    err = capsys.readouterr().err
    assert "ssdboard:***@127.0.0.1/ssdboard: its driver pg8000 is not installed (for postgresql+psycopg: pip" in err
