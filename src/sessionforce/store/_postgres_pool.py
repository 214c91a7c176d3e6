"""The PostgreSQL store's connections: one psycopg-pool pool per store and event loop, every call one
statement (one round trip, its own transaction), every failure one :class:`StoreUnavailable`.

Connections the server closed while they sat idle in the pool (a restart, ``pg_terminate_backend``, an
idle timeout) are found before use by one ``poll`` of their socket and replaced, so a restart costs no
failed call; a connection that breaks *during* a statement is reported, never silently retried: the
statement may have been applied (its commit was on its way), and only the caller can tell what that
means for the turn.
"""

from __future__ import annotations

import asyncio
import select
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from sessionforce.errors import ConfigError, InvalidArgument, StoreUnavailable
from sessionforce.errors._build import store_unavailable
from sessionforce.errors._redact import redact_url, remember_secret, scrub
from sessionforce.store._postgres_errors import describe_failure
from sessionforce.store._postgres_schema import SCHEMA_VERSION, Statements, advisory_key

__all__ = ["Database"]

Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


class _IdleCheck:
    """Finds pooled connections the server closed while they sat idle (a restart, ``pg_terminate_backend``,
    an idle timeout) before they are used.

    An idle connection has nothing to read, so a readable socket means the server spoke or hung up (a
    terminated connection first sends its FATAL message; the close may come later). One ``poll`` system
    call on a poll set that already holds the pool's sockets, against a ``SELECT 1`` round trip per use.
    A healthy connection that had something to say (it never does) would cost one reconnect.
    """

    def __init__(self) -> None:
        self._poller = select.poll()
        self._registered: set[int] = set()

    def dead(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        pgconn = conn.pgconn
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            return True
        fd = pgconn.socket
        if fd not in self._registered:
            self._poller.register(fd, select.POLLIN)
            self._registered.add(fd)
        # Other sockets in the set (busy ones, closed ones) may report too: only this one's events count.
        return any(ready == fd for ready, _ in self._poller.poll(0))


class Database:
    """Where a store's statements run: the server (named without its password), the pool, the schema."""

    def __init__(
        self, conninfo: str, *, schema: str, pool_min: int, pool_max: int, pool_timeout: float,
        command_timeout: float,
    ) -> None:
        if not schema or "\x00" in schema:
            raise InvalidArgument(f"schema={schema!r}: give the name of the schema to keep the tables in.")
        if not 0 <= pool_min <= pool_max or pool_max < 1:
            raise InvalidArgument(f"pool_min={pool_min!r}, pool_max={pool_max!r}: need 0 <= pool_min <= pool_max.")
        for name, value in (("pool_timeout", pool_timeout), ("command_timeout", command_timeout)):
            if not value > 0:
                raise InvalidArgument(f"{name}={value!r}: give a number of seconds greater than 0.")
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            # libpq's message quotes the whole URL, password and all.
            raise ConfigError(
                f"Store URL {redact_url(conninfo)!r} is not a valid PostgreSQL URL "
                f"({scrub(str(exc))}). What to do: use "
                "postgresql://user:password@host:5432/dbname?schema=myapp."
            ) from None
        self.conninfo = conninfo
        # Every error sessionforce builds scrubs the password from then on, whatever quotes it.
        remember_secret(str(params.get("password") or "") or None)
        self.where = "postgresql://{user}{host}:{port}/{db}".format(
            user=f"{params['user']}@" if params.get("user") else "",
            host=params.get("host") or "localhost", port=params.get("port") or 5432, db=params.get("dbname") or "")
        # libpq waits forever to connect unless told; a store call must fail in bounded time.
        self.connect_kwargs: dict[str, Any] = {}
        if "connect_timeout" not in params:
            self.connect_kwargs["connect_timeout"] = max(2, round(pool_timeout))
        if "application_name" not in params:
            self.connect_kwargs["application_name"] = "sessionforce"
        self.sql = Statements(schema)
        self._pool_min, self._pool_max, self._pool_timeout = pool_min, pool_max, pool_timeout
        self._command_timeout = command_timeout
        self._pool: Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None
        self._schema_ok = False
        self._idle = _IdleCheck()

    @property
    def pool_timeout(self) -> float:
        """Seconds a call waits for a free connection."""
        return self._pool_timeout

    def unavailable(self, exc: BaseException, doing: str) -> StoreUnavailable:
        """The one error for a failed call: which server, what happened, what to do (no password)."""
        what, todo = describe_failure(exc, self._pool_max)
        cause = f"{what}: {type(exc).__name__}: {exc}".strip().rstrip(":")
        return store_unavailable(f"PostgreSQL at {self.where} (schema {self.sql.schema!r})", doing, cause,
                                 advice=todo)

    async def run(self, doing: str, query: bytes, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement (one round trip, its own transaction) and fetch its rows."""
        try:
            return await self._run_once(doing, query, params)
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            # The schema or a table was dropped under us (a restored backup, an operator): the statement
            # never ran, so make the schema again and run it once more.
            self._schema_ok = False
            try:
                return await self._run_once(doing, query, params)
            except psycopg.Error as exc:
                raise self.unavailable(exc, doing) from exc

    async def _run_once(self, doing: str, query: bytes, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        pool = self._pool if self._schema_ok and self._loop is asyncio.get_running_loop() else await self._ready()
        assert pool is not None
        conn = await self._getconn(pool, doing)
        try:
            async with asyncio.timeout(self._command_timeout):
                cursor = await conn.execute(query, params)
                return await cursor.fetchall()
        except TimeoutError:
            raise self.unavailable(TimeoutError(f"no answer within command_timeout={self._command_timeout:g}s"),
                                   doing) from None
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            raise
        except psycopg.Error as exc:
            raise self.unavailable(exc, doing) from exc
        finally:
            await pool.putconn(conn)

    async def _ready(self) -> Pool:
        """The open pool on this event loop, the schema checked (on first use: opened and upgraded)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise InvalidArgument(
                    f"The store for {self.where} is in use on another event loop. What to do: open one store per "
                    "event loop (or thread)."
                )
            self._loop, self._pool, self._opening, self._schema_ok = loop, None, asyncio.Lock(), False
        assert self._opening is not None
        async with self._opening:
            if self._pool is None:
                pool: Pool = AsyncConnectionPool(
                    self.conninfo, kwargs={"autocommit": True, **self.connect_kwargs}, min_size=self._pool_min,
                    max_size=self._pool_max, timeout=self._pool_timeout, open=False,
                    name=f"sessionforce:{self.sql.schema}",
                )
                await pool.open(wait=False)
                self._pool = pool
            if not self._schema_ok:
                await self._upgrade(self._pool)
                self._schema_ok = True
        return self._pool

    async def _getconn(self, pool: Pool, doing: str) -> psycopg.AsyncConnection[Any]:
        """A live connection: ones the server closed while idle in the pool are dropped, not used."""
        for _ in range(self._pool_max + 1):
            try:
                conn = await pool.getconn()
            except PoolTimeout as exc:
                raise self.unavailable(await self._diagnose(pool, exc), doing) from None
            if not self._idle.dead(conn):
                return conn
            await conn.close()
            await pool.putconn(conn)
        raise self.unavailable(psycopg.OperationalError("every pooled connection was closed by the server"), doing)

    async def _diagnose(self, pool: Pool, exc: PoolTimeout) -> BaseException:
        """Why no connection came: all in use, or the server refuses new ones (then its own reason)."""
        if pool.get_stats().get("pool_size", 0) >= self._pool_max:
            return exc
        try:
            kwargs = {**self.connect_kwargs, "connect_timeout": 2}
            probe = await psycopg.AsyncConnection.connect(self.conninfo, **kwargs)
        except psycopg.Error as failure:
            return failure
        await probe.close()
        return exc

    async def _upgrade(self, pool: Pool) -> None:
        """Create or upgrade the schema; processes starting at once take turns (a transaction-scoped
        advisory lock), and each re-reads the version under it."""
        conn = await self._getconn(pool, "checking its schema")
        sql = self.sql
        try:
            if await self._schema_version(conn) == SCHEMA_VERSION:
                return
            async with conn.transaction():
                await conn.execute(b"SELECT pg_advisory_xact_lock(%s::bigint)", (advisory_key(sql.schema),))
                version = await self._schema_version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreUnavailable(
                        f"PostgreSQL at {self.where}: schema {sql.schema!r} has version {version}, newer than this "
                        f"sessionforce knows ({SCHEMA_VERSION}). What to do: upgrade sessionforce, or use another "
                        "schema (?schema=)."
                    )
                if version < SCHEMA_VERSION:
                    found = await (await conn.execute(
                        b"SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (sql.schema,))).fetchone()
                    if found is None:  # only then: CREATE SCHEMA needs CREATE on the database
                        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {sql.quoted}".encode())
                    for statement in sql.upgrade(version):
                        await conn.execute(statement)
                    await conn.execute(f"INSERT INTO {sql.version_table} (version) VALUES (%s)".encode(),
                                       (SCHEMA_VERSION,))
        except psycopg.Error as exc:
            raise self.unavailable(exc, f"creating or upgrading schema {sql.schema!r}") from exc
        finally:
            await pool.putconn(conn)

    async def _schema_version(self, conn: psycopg.AsyncConnection[Any]) -> int:
        # A catalog query, not to_regclass(): that reads the catalog cache, which an advisory lock does not
        # refresh, so a process that waited for another's upgrade would not see the tables it made.
        row = await (await conn.execute(
            b"SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = 'schema_version'",
            (self.sql.schema,),
        )).fetchone()
        if row is None:
            return 0
        found = await (await conn.execute(f"SELECT max(version) FROM {self.sql.version_table}".encode())).fetchone()
        return int(found[0]) if found is not None and found[0] is not None else 0

    async def aclose(self) -> None:
        """Close the pool (a later call opens a new one)."""
        pool, self._pool = self._pool, None
        self._schema_ok = False
        if pool is not None:
            await pool.close()
