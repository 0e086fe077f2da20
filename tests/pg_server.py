"""A throw-away PostgreSQL server for the store tests: ``initdb`` in a temporary directory, started
on a free loopback port, a fresh database per test, stopped and deleted at the end of the session.

Uses Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``, or ``pg_ctl`` on the
PATH). PostgreSQL refuses to run as root: under root (CI) the server runs as the package's
``postgres`` user through ``runuser``, in a directory made for it outside pytest's private
``/tmp/pytest-of-root``. ``SSDBOARD_TEST_POSTGRES_URL`` (a superuser URL such as
``postgresql+psycopg://me@127.0.0.1:5432/postgres``) uses a running server instead of starting one.

The server's time zone is not UTC on purpose (``America/New_York``): the store must hand back UTC
times whatever the server's setting.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa

SUPERUSER = "ssdboard"
PREFIX = "ssdboard-pg-"  # of the temporary directories
TIMEZONE = "America/New_York"
# Settings for a server that holds nothing worth keeping: no fsync, and room for the tests'
# connection pools (a store opens 5; a test that fails before closing its store keeps them).
SERVER_OPTIONS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
    "timezone": TIMEZONE,
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why and what to install."""


def find_bin_dir() -> Path:
    """The directory with ``initdb`` and ``pg_ctl``: Debian's newest ``/usr/lib/postgresql/N/bin``, else the PATH."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parent.parent.name))
    if versions:
        return Path(versions[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    raise PostgresUnavailable(
        "PostgreSQL is not installed (no pg_ctl in /usr/lib/postgresql/*/bin or on the PATH): "
        "apt-get install postgresql to run the store tests on it too"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster: :meth:`start` it, :meth:`create_database` per test, :meth:`stop` it."""

    def __init__(self, admin_url: str | None = None) -> None:
        self.admin_url = admin_url  # a superuser URL of the "postgres" database once started
        self.root: Path | None = None
        self.bin_dir: Path | None = None
        self.run_as: str | None = None
        self._admin: sa.Engine | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> PostgresServer:
        """``initdb`` a cluster in a new temporary directory and start it; PostgresUnavailable when it cannot."""
        if importlib.util.find_spec("psycopg") is None:
            raise PostgresUnavailable("psycopg is not installed: pip install -e '.[postgres]' (in the test extras)")
        if self.admin_url is not None:  # a server someone else runs
            return self
        self.bin_dir = find_bin_dir()
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "PostgreSQL refuses to run as root and there is no 'postgres' user to run it as"
                ) from None
            if not shutil.which("runuser"):
                raise PostgresUnavailable("PostgreSQL refuses to run as root and runuser is missing")
            self.run_as = "postgres"
        # The postgres user must reach the directory: /tmp, not a TMPDIR only root can enter.
        parent = "/tmp" if self.run_as else None
        self.stop_orphans(Path(parent or tempfile.gettempdir()))
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
        (self.root / "owner.pid").write_text(str(os.getpid()))
        if self.run_as:
            shutil.chown(self.root, user=self.run_as)
        data, sockets, port = self.root / "data", self.root / "sockets", free_port()
        self._run(["initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
        sockets.mkdir()
        if self.run_as:
            shutil.chown(sockets, user=self.run_as)
        options = " ".join(f"-c {key}={value}" for key, value in SERVER_OPTIONS.items())
        for attempt in range(3):  # a free port may be taken by another process before the server binds it
            try:
                self._run(
                    ["pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-w", "-t", "120",
                     "-o", f"-p {port} -k {sockets} {options}", "start"]
                )  # fmt: skip
                break
            except PostgresUnavailable:
                if attempt == 2:
                    raise
                port = free_port()
        self.admin_url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/postgres"
        return self

    def stop_orphans(self, parent: Path) -> None:
        """Stop and delete the servers of earlier test sessions that were killed before their teardown.

        Only directories made here (``PREFIX``) whose ``owner.pid`` names no live process.
        """
        for root in parent.glob(f"{PREFIX}*"):
            try:
                owner = int((root / "owner.pid").read_text())
                os.kill(owner, 0)
                continue  # its session still runs
            except ProcessLookupError:
                pass
            except (OSError, ValueError):
                continue  # not ours to judge: no owner file, or another user's process
            if (root / "data" / "postmaster.pid").exists():
                self.root = root
                self._run(["pg_ctl", "-D", str(root / "data"), "-m", "immediate", "-w", "stop"], check=False)
                self.root = None
            shutil.rmtree(root, ignore_errors=True)

    def stop(self) -> None:
        """Stop the server this object started and delete its directory (a server given by URL stays)."""
        if self._admin is not None:
            self._admin.dispose()
            self._admin = None
        if self.root is None:
            return
        if (self.root / "data" / "postmaster.pid").exists():
            self._run(["pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def restart(self) -> None:
        """Restart the server this object started (``pg_ctl restart -m fast``: every connection is cut)."""
        assert self.root is not None, "only a server this object started can be restarted"
        self._run(
            [
                "pg_ctl",
                "-D",
                str(self.root / "data"),
                "-l",
                str(self.root / "server.log"),
                "-m",
                "fast",
                "-w",
                "restart",
            ]
        )

    def _run(self, argv: list[str], *, check: bool = True) -> None:
        assert self.bin_dir is not None
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=self.root)
        if check and done.returncode != 0:
            log = self.root / "server.log" if self.root else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise PostgresUnavailable(f"{' '.join(argv[:1])} failed ({done.returncode}): {done.stderr[-2000:]}{tail}")

    # ------------------------------------------------------------------ databases
    @property
    def admin(self) -> sa.Engine:
        """An autocommit engine on the ``postgres`` database (CREATE and DROP DATABASE run outside transactions)."""
        assert self.admin_url is not None, "start() the server first"
        if self._admin is None:
            self._admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        return self._admin

    def url(self, database: str, *, password: str | None = None) -> str:
        """The URL of ``database`` on this server (a password is accepted and ignored: trust authentication)."""
        url = sa.make_url(self.admin_url or "").set(database=database)
        if password is not None:
            url = url.set(password=password)
        return url.render_as_string(hide_password=False)

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending the connections a test left open."""
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
