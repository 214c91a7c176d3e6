"""Find a real PostgreSQL for the tests, or start a throwaway cluster (a plain helper, no fixtures).

The shared server: ``POSTGRES_URL`` if set, else ``postgresql://postgres@127.0.0.1:5432/test`` (trust
auth). Others use it at the same time, so every test works in a schema of its own (:func:`unique_schema`)
and drops it afterwards. When none answers: skip, except under ``CI`` where the PostgreSQL tests must
run, so fail.

Tests that restart or starve a server start their *own* cluster (:func:`throwaway_cluster`): ``initdb``
and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` on a free loopback port in a temporary directory, run
as the ``postgres`` user when we are root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

__all__ = [
    "Cluster",
    "PostgresUnavailable",
    "drop_schema",
    "postgres_url_or_skip",
    "throwaway_cluster",
    "unique_schema",
]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


class PostgresUnavailable(Exception):
    """No PostgreSQL could be found or started; the message says why."""


def answers(url: str) -> str | None:
    """``None`` when the server at ``url`` answers, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def skip_or_fail(why: str) -> None:
    """Skip a test that needs PostgreSQL (fail instead under ``CI``, where it must run)."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests must run in CI, but: {why}")
    pytest.skip(f"no PostgreSQL available: {why}")


def postgres_url_or_skip() -> str:
    """The shared server's URL, or skip (fail under ``CI``)."""
    url = os.environ.get("POSTGRES_URL") or DEFAULT_URL
    why = answers(url)
    if why is not None:
        skip_or_fail(f"{url} does not answer ({why}); set POSTGRES_URL or start the server")
    return url


def unique_schema() -> str:
    """A schema name no other test uses."""
    return f"sftest_{uuid.uuid4().hex[:16]}"


def drop_schema(url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it (only ever one a test made)."""
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    """A PostgreSQL cluster of a test's own: start, stop and restart it at will."""

    bindir: Path
    datadir: Path
    port: int
    user: str | None
    """Who runs the server (``postgres`` when the tests run as root), or ``None`` for ourselves."""

    @property
    def url(self) -> str:
        """Its ``postgres`` database, as the ``postgres`` superuser (trust auth on loopback)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "30", *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def start(self) -> None:
        """Start the server (waits until it accepts connections)."""
        log = self.datadir.parent / "server.log"
        self._pg_ctl("-l", str(log), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions, close connections; ``immediate``: crash)."""
        self._pg_ctl("-m", mode, "stop")

    def restart(self) -> None:
        """Stop (fast) and start again: every connection is closed, every commit kept."""
        self._pg_ctl("-m", "fast", "restart", "-l", str(self.datadir.parent / "server.log"))


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def throwaway_cluster(*, max_connections: int = 20) -> Iterator[Cluster]:
    """A new cluster on a free loopback port, stopped and deleted on exit; raises
    :class:`PostgresUnavailable` saying why when none can be made here."""
    bindir = _bindir()
    if bindir is None:
        raise PostgresUnavailable("no initdb under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    user: str | None = None
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run a server") from None
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root and runuser is missing")
        user = "postgres"
    with tempfile.TemporaryDirectory(prefix="sessionforce-pg-") as workdir:
        root = Path(workdir)
        datadir = root / "data"
        if user is not None:
            os.chown(root, entry.pw_uid, entry.pw_gid)
        init = [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "-A", "trust", "--no-sync"]
        if user is not None:
            init = ["runuser", "-u", user, "--", *init]
        done = subprocess.run(init, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        port = _free_port()
        settings = [f"port = {port}", "listen_addresses = '127.0.0.1'", f"unix_socket_directories = '{root}'",
                    f"max_connections = {max_connections}", "fsync = off", "shared_buffers = 16MB"]
        with (datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")
        cluster = Cluster(bindir, datadir, port, user)
        try:
            cluster.start()
        except subprocess.SubprocessError as exc:
            log = root / "server.log"
            why = log.read_text()[-500:] if log.exists() else str(exc)
            raise PostgresUnavailable(f"the server did not start: {why}") from None
        try:
            deadline = time.monotonic() + 30
            while (why := answers(cluster.url)) is not None:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"the new cluster does not answer ({why})")
                time.sleep(0.05)
            yield cluster
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop("immediate")
