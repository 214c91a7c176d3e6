"""`PostgresStore`: conversation state in PostgreSQL, shared by many workers on many machines.

``postgresql://user:password@host:5432/dbname?schema=myapp`` (or ``postgres://``). Our own query
parameters: ``schema`` (default ``sessionforce``), ``pool_min``/``pool_max`` (connections, default 1 and
10), ``pool_timeout`` (seconds to wait for a connection, default 5), ``command_timeout`` (seconds one
statement may take, default 10), ``notify`` (``off``: waiters poll, e.g. behind a transaction-pooling
PgBouncer); every other parameter is libpq's (``sslmode``, ``options``, ``target_session_attrs``, ...).

psycopg 3 in async mode on a psycopg-pool pool, autocommit: every call is one statement, one round
trip, its own transaction (what must be atomic is written as one statement; see
:mod:`._postgres_schema`). The schema is created and upgraded by the store on first use, under an
advisory lock, and needs no superuser: the role needs ``CREATE`` on the schema (or on the database,
for the store to create the schema).

A waiter for a lease is woken by ``LISTEN/NOTIFY`` (:mod:`._postgres_listen`), polling only as the
fallback for a missed notification. Failures become :class:`~sessionforce.errors.StoreUnavailable`
naming the server (never the password) and what to do; whether the agent got the turn is for the
caller to say, since the store cannot know.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from sessionforce.errors import ConfigError, CorruptRecord, InvalidArgument, StoreUnavailable
from sessionforce.errors._build import lease_lost, stale_record, unstorable
from sessionforce.errors._redact import redact_url
from sessionforce.store._lease_wait import acquire_lease, check_ttl, check_write
from sessionforce.store._postgres_listen import Listener, channel_for, key_for
from sessionforce.store._postgres_pool import Database
from sessionforce.store._protocol import Store
from sessionforce.store._records import ConversationRecord, ConversationStatus, Held, Lease, TranscriptEntry

__all__ = ["PostgresStore"]

logger = logging.getLogger("sessionforce.store")

def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "on", "yes"):
        return True
    if value.lower() in ("0", "false", "off", "no"):
        return False
    raise ValueError(value)

_OWN_PARAMS: dict[str, Callable[[str], Any]] = {
    "schema": str, "pool_min": int, "pool_max": int, "pool_timeout": float, "command_timeout": float,
    "notify": _flag,
}
_EXPECTED = {"pool_min": "a whole number", "pool_max": "a whole number", "pool_timeout": "a number of seconds",
             "command_timeout": "a number of seconds", "notify": "on or off"}
_TRIES = 3  # tries of a lease whose row a concurrent insert hid from the statement's snapshot


class PostgresStore(Store):
    """A :class:`~sessionforce.store.Store` in PostgreSQL, for many workers on many machines.

    ``retention`` (seconds) is how long a conversation idle since its last activity is kept; the purge
    runs in the background every ``purge_every`` seconds per process after its first save (see :meth:`purge`).
    ``notify=False`` turns the release notifications off (waiters then poll). Nothing connects until
    the first call.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "sessionforce",
        pool_min: int = 1,
        pool_max: int = 10,
        pool_timeout: float = 5.0,
        command_timeout: float = 10.0,
        retention: float = 30 * 24 * 3600,
        purge_every: float = 3600.0,
        notify: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not retention > 0 or not purge_every > 0:
            raise InvalidArgument(
                f"retention={retention!r}, purge_every={purge_every!r}: give numbers of seconds greater than 0."
            )
        self._db = Database(conninfo, schema=schema, pool_min=pool_min, pool_max=pool_max,
                            pool_timeout=pool_timeout, command_timeout=command_timeout)
        self._sql = self._db.sql
        self._run = self._db.run
        self._channel = channel_for(schema)
        self._retention, self._purge_every = retention, purge_every
        self._notify = notify
        self._clock = clock
        self._listener: Listener | None = None
        self._next_purge = 0.0
        self._background: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PostgresStore:
        """A store for ``url`` (``postgresql://`` or ``postgres://``); our own query parameters (``schema``,
        ``pool_min``, ``pool_max``, ``pool_timeout``, ``command_timeout``, ``notify``) are taken out, the
        rest is libpq's.
        Keyword arguments override the URL's."""
        try:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
        except ValueError as exc:
            raise ConfigError(
                f"Store URL {redact_url(url)!r} is not a valid PostgreSQL URL ({exc}). "
                "What to do: use postgresql://user:password@host:5432/dbname?schema=myapp."
            ) from None
        own: dict[str, Any] = {}
        for key, value in query:
            if key in _OWN_PARAMS:
                try:
                    own[key] = _OWN_PARAMS[key](value)
                except ValueError:
                    raise ConfigError(
                        f"Store URL {redact_url(url)!r}: {key}={value!r} is not valid. What to "
                        f"do: give {key} {_EXPECTED.get(key, 'a value')}."
                    ) from None
        libpq = urlencode([(k, v) for k, v in query if k not in _OWN_PARAMS], quote_via=quote)  # libpq: %20, not +
        rest = urlunsplit(parts._replace(query=libpq))
        return cls(rest, **{**own, **kwargs})

    def __repr__(self) -> str:
        return f"PostgresStore({self._db.where!r}, schema={self._sql.schema!r})"

    # -- plumbing -------------------------------------------------------------------------------------

    async def _listening(self) -> Listener | None:
        if not self._notify:
            return None
        if self._listener is None or self._listener.loop is not asyncio.get_running_loop():
            # (A listener of an event loop that has gone is left behind with it.)
            self._listener = Listener(self._db.conninfo, self._db.connect_kwargs, self._channel)
        await self._listener.start(self._db.pool_timeout)
        return self._listener

    def _release_params(self, conversation_id: str) -> dict[str, Any]:
        return {"channel": self._channel, "key": key_for(conversation_id)}

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        if not self._next_purge:  # the first save: the first purge comes one period later
            self._next_purge = now + self._purge_every
            return
        self._next_purge = now + self._purge_every
        task = asyncio.get_running_loop().create_task(self._purge_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _purge_quietly(self) -> None:
        with contextlib.suppress(StoreUnavailable):  # the next purge tries again; nothing depends on this one
            await self.purge()

    # -- the Store protocol (v2) ----------------------------------------------------------------------

    async def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        rows = await self._run("loading a conversation", self._sql.load, {"id": _id(conversation_id)})
        if not rows:
            return None
        return ConversationRecord.from_stored(rows[0][0], store=repr(self), conversation_id=conversation_id)

    async def save(
        self,
        record: ConversationRecord,
        *,
        lease: Lease | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        release: bool = False,
    ) -> ConversationRecord:
        """Compare-and-save by version and by the exact current lease (owner and fence, not expired),
        appending ``transcript`` and, with ``release``, giving the lease up and waking its waiters: one
        statement, so all of it happens or none of it."""
        check_write(record.conversation_id, lease, release)
        saved = record.replace(version=record.version + 1)
        cid = record.conversation_id
        params: dict[str, Any] = {
            "id": _id(cid), "expected": record.version, "status": str(saved.status),
            "last": saved.last_activity_at, "data": saved.to_json(),
            "entries": [entry.to_json() for entry in transcript], "release": release,
            **self._release_params(cid),
        }
        if lease is not None:
            params.update(owner=lease.owner, fence=lease.fence)
        statement = self._sql.save[(record.version == 0, lease is not None)]
        [(written, lease_ok, _, stored)] = await self._run("saving a conversation", statement, params)
        if not written:
            if not lease_ok:
                assert lease is not None
                raise lease_lost(cid, lease)
            raise stale_record(cid, record.version, int(stored or 0))
        self._maybe_purge()
        return saved

    async def append_transcript(
        self, conversation_id: str, entry: TranscriptEntry, *, lease: Lease | None = None
    ) -> None:
        """Append one transcript entry (refused with ``LeaseLost`` unless ``lease`` is exactly the current one)."""
        check_write(conversation_id, lease)
        params: dict[str, Any] = {"id": _id(conversation_id), "entry": entry.to_json()}
        if lease is None:
            await self._run("appending to a transcript", self._sql.append, params)
            return
        params.update(owner=lease.owner, fence=lease.fence)
        if not await self._run("appending to a transcript", self._sql.append_fenced, params):
            raise lease_lost(conversation_id, lease)

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The whole transcript, oldest first."""
        rows = await self._run("reading a transcript", self._sql.transcript, {"id": _id(conversation_id)})
        return [TranscriptEntry.from_stored(entry, store=repr(self), conversation_id=conversation_id)
                for (entry,) in rows]

    async def list_conversations(
        self,
        *,
        status: ConversationStatus | None = None,
        idle_for: float | None = None,
        now: float | None = None,
        limit: int = 1000,
    ) -> list[ConversationRecord]:
        """Records filtered by status and by ``last_activity_at <= now - idle_for``, oldest activity first
        (walking the (status, last_activity_at) index in order)."""
        if limit <= 0:
            return []
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = str(status)
        if idle_for is not None:
            params["cutoff"] = (now if now is not None else self._clock()) - idle_for
        statement = self._sql.list[(status is not None, idle_for is not None)]
        rows = await self._run("listing conversations", statement, params)
        records = []
        for data, _, raw_id in rows:
            try:
                records.append(ConversationRecord.from_stored(data, store=repr(self), conversation_id=_text(raw_id)))
            except CorruptRecord as exc:  # logged and left out: one damaged row never hides the others
                logger.warning("left out of the listing: %s", exc)
        return records

    async def delete(self, conversation_id: str) -> None:
        """Forget the record, its transcript and its lease (the fence stays, so old fences stay dead)."""
        await self._run("deleting a conversation", self._sql.delete,
                        {"id": _id(conversation_id), **self._release_params(conversation_id)})

    async def purge(self, *, now: float | None = None, batch: int = 500) -> int:
        """Delete conversations whose last activity is more than ``retention`` ago and that nobody leases:
        record, transcript and lease row. Returns how many. Runs by itself in the background after saves,
        at most every ``purge_every`` seconds per process; call it from a job of your own if you prefer."""
        cutoff = (now if now is not None else self._clock()) - self._retention
        purged = 0
        for status in ConversationStatus:
            while True:
                params = {"status": str(status), "cutoff": cutoff, "batch": batch}
                [(count,)] = await self._run("purging old conversations", self._sql.purge, params)
                purged += count
                if count < batch:
                    break
        return purged

    async def try_acquire(self, conversation_id: str, *, owner: str, ttl: float) -> Lease | float:
        """One atomic step: a new lease (its fence above every earlier one), also when ``owner`` itself
        holds a live one it lost track of; or, while another owner holds it, a :class:`Held`: the seconds
        until that lease expires, and who holds it."""
        check_ttl(ttl)
        cid = _id(conversation_id)
        listener = await self._listening()
        key = key_for(conversation_id)
        if listener is not None:
            listener.arm(key)  # before the statement: a release right after it must still wake us
        params = {"id": cid, "owner": owner, "ttl": float(ttl)}
        for _ in range(_TRIES):
            # The client's clock is read first: the lease's real (server) expiry is a little later.
            now = self._clock()
            rows = await self._run("taking a conversation's lease", self._sql.try_acquire, params)
            if rows:
                took, fence, holder, left = rows[0]
                if took:
                    if listener is not None:
                        listener.disarm(key)
                    return Lease(conversation_id, owner, int(fence), now + ttl)
                return Held(float(left), str(holder))
        return Held(0.001, "another worker")

    async def wait_released(self, conversation_id: str, timeout: float) -> None:  # noqa: ASYNC109 (protocol v2)
        """Return when the lease may have been released (a notification), or after ``timeout`` seconds.
        Without a listening connection (notifications off, or it is reconnecting) this sleeps ``timeout``."""
        if timeout <= 0:
            return
        key = key_for(conversation_id)
        listener = self._listener
        if listener is None or not listener.armed(key):
            # Not after a try of the lease (which arms and marks it wanted): listen and say we wait.
            listener = await self._listening()
            if listener is not None:
                listener.arm(key)
                [(held,)] = await self._run("waiting for a lease", self._sql.want, {"id": _id(conversation_id)})
                if not held:
                    listener.disarm(key)
                    return
        if listener is None or not listener.healthy:
            await asyncio.sleep(timeout)
            return
        await listener.wait(key, timeout)

    async def acquire(self, conversation_id: str, *, owner: str, ttl: float, wait: float) -> Lease:
        """Take the lease, waiting up to ``wait`` seconds (the shared loop, woken by notifications);
        ``ConversationBusy`` after that."""
        return await acquire_lease(self, conversation_id, owner=owner, ttl=ttl, wait=wait)

    async def renew(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend a held lease; ``LeaseLost`` unless it is exactly the current, unexpired one."""
        check_ttl(ttl)
        now = self._clock()
        params = {"id": _id(lease.conversation_id), "owner": lease.owner, "fence": lease.fence, "ttl": float(ttl)}
        if not await self._run("renewing a lease", self._sql.renew, params):
            raise lease_lost(lease.conversation_id, lease)
        return Lease(lease.conversation_id, lease.owner, lease.fence, now + ttl)

    async def release(self, lease: Lease) -> None:
        """Give the lease up (waking waiters); a no-op unless it is exactly the current one."""
        params = {"id": _id(lease.conversation_id), "owner": lease.owner, "fence": lease.fence,
                  **self._release_params(lease.conversation_id)}
        await self._run("releasing a lease", self._sql.release, params)

    async def aclose(self) -> None:
        """Close the pool and the notification connection (a later call opens them again)."""
        for task in list(self._background):
            task.cancel()
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.aclose()
        await self._db.aclose()


def _id(conversation_id: str) -> bytes:
    try:
        return conversation_id.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate: not Unicode text
        raise unstorable(f"conversation id {conversation_id!r}", exc) from None


def _text(raw_id: bytes) -> str:
    return bytes(raw_id).decode("utf-8", "replace")
