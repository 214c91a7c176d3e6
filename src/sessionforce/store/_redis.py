"""`RedisStore`: conversation state in Redis, shared by many workers on many machines.

Key layout (``P`` is the prefix, ``sessionforce:`` by default; ``<id>`` is the conversation id verbatim —
Redis keys may hold any bytes, so no escaping is needed)::

    P rec:<id>       string  the record as JSON                      expires after ``retention``, refreshed on save
    P tx:<id>        list    transcript entries as JSON, oldest first same retention, refreshed on save and append
    P lease:<id>     string  "<owner>|<fence>" of the live lease      expires after the lease TTL (PX)
    P fence:<id>     int     the last fence handed out                same retention, refreshed on acquire
    P wid:<id>       string  the id of the last write                 a minute (recognises redis-py's resends)
    P idx:<status>   zset    conversation ids by last_activity_at     one per status, updated with every save
    P released:<id>  channel a message on every release               (pub/sub, nothing stored)

Every step that must be atomic is one Lua script (:mod:`._redis_scripts`), one round trip: acquire,
save (lease check + version check + write + transcript + index move + release), append, renew, release.
A write carries its whole lease, and fences come from the server's clock and a counter, so neither a
stalled worker nor Redis restarted empty can make a stale write land; each script is harmless when redis-py
resends it after a dropped connection. Unlike redis-py's ``Lock`` nothing lives in thread-local storage:
the :class:`~sessionforce.store.Lease` object carries owner and fence, one per acquisition.

Index entries outlive records that expire through ``retention``; ``list_conversations`` skips them and
removes them (only if the record is still absent, so a concurrent re-creation is never unlisted).

Waiting for a lease is the shared loop; :meth:`RedisStore.wait_released` is woken by a release anywhere
(pub/sub, :mod:`._redis_listen`), else by the loop's poll.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from itertools import count
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessionforce.errors import ConfigError, CorruptRecord, InvalidArgument
from sessionforce.errors._build import corrupt_record, lease_lost, stale_record, store_unavailable, unstorable
from sessionforce.errors._redact import redact_url, remember_secret
from sessionforce.store import _redis_scripts as lua
from sessionforce.store._lease_wait import check_ttl, check_write
from sessionforce.store._protocol import Store
from sessionforce.store._records import ConversationRecord, ConversationStatus, Held, Lease, TranscriptEntry
from sessionforce.store._redis_listen import ReleaseListener

__all__ = ["RedisStore"]

T = TypeVar("T")

logger = logging.getLogger("sessionforce.store")


def _describe(client: aioredis.Redis) -> str:
    """Where ``client`` points, never with a password."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    scheme = "rediss" if issubclass(client.connection_pool.connection_class, aioredis.SSLConnection) else "redis"
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStore(Store):
    """A :class:`~sessionforce.store.Store` in Redis (a single primary), for many workers on many machines.

    ``retention`` (seconds) is how long an untouched record and transcript are kept. A client passed in is
    not closed by :meth:`aclose`; one made by :meth:`from_url` is.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "sessionforce:",
        retention: float = 30 * 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not retention > 0:
            raise InvalidArgument(f"retention={retention!r}: give the seconds to keep idle records (> 0).")
        self._client = client
        self._prefix = prefix
        self._retention_ms = max(1, int(retention * 1000))
        self._clock = clock
        self._where = _describe(client)
        remember_secret(client.connection_pool.connection_kwargs.get("password"))  # scrubbed from every error
        self._owns_client = False
        self._acquire = client.register_script(lua.ACQUIRE)
        self._save = client.register_script(lua.SAVE)
        self._append = client.register_script(lua.APPEND)
        self._renew = client.register_script(lua.RENEW)
        self._release = client.register_script(lua.RELEASE)
        self._prune = client.register_script(lua.PRUNE)
        self._listener = ReleaseListener(client)
        # Write ids: unique to this store object, so a resent write recognises itself and no one else's.
        self._writer = os.urandom(6).hex() + ":"
        self._writes = count()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "sessionforce:",
        retention: float = 30 * 24 * 3600,
        clock: Callable[[], float] = time.time,
        **client_kwargs: Any,
    ) -> RedisStore:
        """A store on a new client for ``url`` (``redis://``, ``rediss://`` or ``unix://``); extra keyword
        arguments go to ``redis.asyncio.Redis.from_url``. Nothing connects until the first call.

        Unless told otherwise (``retry=``, ``retry_on_error=``), a command whose connection broke is sent
        again up to three times (a pooled connection dropped by a Redis restart or a network blip then costs
        no failed turn): every script is harmless when it runs twice."""
        client_kwargs.setdefault("retry", Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), 3))
        client_kwargs.setdefault("retry_on_error", [RedisConnectionError])
        try:
            client = aioredis.Redis.from_url(url, **client_kwargs)
        except ValueError as exc:
            raise ConfigError(
                f"Store URL {redact_url(url)!r} is not a valid Redis URL ({exc}). "
                "What to do: use redis://[:password@]host:6379/0 (a password before the host, ending in @)."
            ) from None
        store = cls(client, prefix=prefix, retention=retention, clock=clock)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self._prefix!r})"

    def _key(self, kind: str, conversation_id: str) -> str:
        return f"{self._prefix}{kind}:{conversation_id}"

    def _write_id(self) -> str:
        return f"{self._writer}{next(self._writes)}"

    async def _io(self, call: Awaitable[T], doing: str) -> T:
        """Await one Redis call, turning its failures into our errors."""
        try:
            return await call
        except RedisError as exc:
            cause = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, RedisConnectionError | RedisTimeoutError):
                cause = f"it cannot be reached or did not answer in time; {cause}"
                advice = "check that Redis runs and that the store URL (SESSIONFORCE_STORE) points to it, then retry"
            else:
                advice = "check the Redis server's version and that no other data uses this key prefix"
            raise store_unavailable(f"Redis at {self._where}", doing, cause, advice=advice) from exc
        except UnicodeEncodeError as exc:  # a str that is not Unicode text (a lone surrogate) cannot be sent
            raise unstorable(f"conversation id {exc.object!r}", exc) from None

    # -- the Store protocol ---------------------------------------------------------------------------

    async def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        blob = await self._io(self._client.get(self._key("rec", conversation_id)), "loading a conversation")
        if blob is None:
            return None
        return ConversationRecord.from_stored(blob, store=f"Redis at {self._where}", conversation_id=conversation_id)

    async def save(
        self,
        record: ConversationRecord,
        *,
        lease: Lease | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        release: bool = False,
    ) -> ConversationRecord:
        """Compare-and-save by version under the exact lease (appending ``transcript``, giving the lease up
        with ``release``) in one Lua script; see ``Store``."""
        check_write(record.conversation_id, lease, release)
        saved = record.replace(version=record.version + 1)
        cid = record.conversation_id
        keys = [self._key("rec", cid), self._key("lease", cid), self._key("tx", cid), self._key("wid", cid)]
        keys.append(self._idx(saved.status))
        keys += [self._idx(s) for s in ConversationStatus if s != saved.status]
        args: list[Any] = [record.version, saved.to_json(), "" if lease is None else f"{lease.owner}|{lease.fence}"]
        args += [self._retention_ms, cid, repr(saved.last_activity_at), "1" if release else "", self._write_id()]
        args.append(self._key("released", cid))
        args += [entry.to_json() for entry in transcript]
        result = await self._io(self._save(keys=keys, args=args), "saving a conversation")
        if result[0] == -1:
            raise lease_lost(cid, lease)
        if result[0] == -2:
            raise stale_record(cid, record.version, int(result[1]))
        if result[0] == -3:
            where = f"Redis at {self._where}"
            raise corrupt_record(where, cid, "record", ValueError("it is not a sessionforce record"))
        if release:
            self._listener.wake(self._key("released", cid))
        return saved

    async def append_transcript(
        self, conversation_id: str, entry: TranscriptEntry, *, lease: Lease | None = None
    ) -> None:
        """Append one transcript entry (with ``lease``: only while it is exactly the current one)."""
        check_write(conversation_id, lease)
        keys = [self._key(kind, conversation_id) for kind in ("lease", "tx", "wid")]
        held = "" if lease is None else f"{lease.owner}|{lease.fence}"
        args: list[Any] = [held, entry.to_json(), self._retention_ms, self._write_id()]
        if not await self._io(self._append(keys=keys, args=args), "appending to a transcript"):
            raise lease_lost(conversation_id, lease)

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The whole transcript, oldest first."""
        blobs = await self._io(self._client.lrange(self._key("tx", conversation_id), 0, -1), "reading a transcript")
        where = f"Redis at {self._where}"
        return [TranscriptEntry.from_stored(blob, store=where, conversation_id=conversation_id) for blob in blobs]

    async def list_conversations(
        self,
        *,
        status: ConversationStatus | None = None,
        idle_for: float | None = None,
        now: float | None = None,
        limit: int = 1000,
    ) -> list[ConversationRecord]:
        """Records filtered by status and idle time, oldest activity first (from the per-status indexes)."""
        if limit <= 0:
            return []
        cutoff = (now if now is not None else self._clock()) - idle_for if idle_for is not None else None
        found: list[ConversationRecord] = []
        for each in [status] if status is not None else list(ConversationStatus):
            found += await self._list_status(each, cutoff, limit)
        found.sort(key=lambda r: r.last_activity_at)
        return found[:limit]

    async def _list_status(
        self, status: ConversationStatus, cutoff: float | None, limit: int
    ) -> list[ConversationRecord]:
        index = self._idx(status)
        top: Any = "+inf" if cutoff is None else repr(cutoff)
        out: list[ConversationRecord] = []
        offset = 0
        where = f"Redis at {self._where}"
        while len(out) < limit:
            want = limit - len(out)
            raw: list[Any] = await self._io(
                self._client.zrangebyscore(index, "-inf", top, start=offset, num=want), "listing conversations"
            )
            if not raw:
                break
            ids = [_text(r) for r in raw]
            blobs = await self._io(self._client.mget([self._key("rec", cid) for cid in ids]), "listing conversations")
            missing: list[str] = []
            for cid, blob in zip(ids, blobs, strict=True):
                if blob is None:
                    missing.append(cid)  # expired through retention; its index entry is stale
                    continue
                try:
                    record = ConversationRecord.from_stored(blob, store=where, conversation_id=cid)
                except CorruptRecord as exc:  # never hides the others
                    logger.warning("left out of the listing: %s", exc)
                    continue
                # The script keeps index and record in step; re-check anyway against a save that raced us.
                if record.status == status and (cutoff is None or record.last_activity_at <= cutoff):
                    out.append(record)
            offset += len(ids)
            if missing:
                stale_keys = [self._key("rec", cid) for cid in missing]
                await self._io(self._prune(keys=[*stale_keys, index], args=missing), "listing conversations")
                offset -= len(missing)
            if len(ids) < want:
                break
        return out

    async def delete(self, conversation_id: str) -> None:
        """Forget the record, its transcript and its lease (fences handed out stay dead: they come from the
        clock and the counter, which stays until its retention runs out)."""
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self._key("rec", conversation_id), self._key("tx", conversation_id))
        pipe.delete(self._key("lease", conversation_id), self._key("wid", conversation_id))
        for status in ConversationStatus:
            pipe.zrem(self._idx(status), conversation_id)
        pipe.publish(self._key("released", conversation_id), "")
        await self._io(pipe.execute(), "deleting a conversation")
        self._listener.wake(self._key("released", conversation_id))

    async def try_acquire(self, conversation_id: str, *, owner: str, ttl: float) -> Lease | float:
        """A new lease, or how long the current holder's lasts (one script; see ``Store``)."""
        check_ttl(ttl)
        keys = [self._key("lease", conversation_id), self._key("fence", conversation_id)]
        # Read the clock first: the lease's real expiry is a little later than the one we report.
        now = self._clock()
        args: list[Any] = [owner, max(1, int(ttl * 1000)), self._retention_ms]
        result = await self._io(self._acquire(keys=keys, args=args), "taking a conversation's lease")
        if result[0] == 1:
            return Lease(conversation_id, owner, int(result[1]), now + ttl)
        pttl = int(result[2])  # < 0 only when someone removed the expiry by hand
        return Held(pttl / 1000 if pttl > 0 else float("inf"), _text(result[1]).rpartition("|")[0])

    async def wait_released(self, conversation_id: str, timeout: float) -> None:  # noqa: ASYNC109 (protocol)
        """Return at the conversation's next release (in any process: pub/sub), or after ``timeout``."""
        if timeout > 0:
            await self._listener.wait(self._key("released", conversation_id), timeout)

    async def renew(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend ``lease``; ``LeaseLost`` unless it is exactly the current, unexpired one."""
        check_ttl(ttl)
        now = self._clock()
        keys = [self._key("lease", lease.conversation_id)]
        args: list[Any] = [f"{lease.owner}|{lease.fence}", max(1, int(ttl * 1000))]
        if not await self._io(self._renew(keys=keys, args=args), "renewing a lease"):
            raise lease_lost(lease.conversation_id, lease)
        return Lease(lease.conversation_id, lease.owner, lease.fence, now + ttl)

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up; a no-op unless it is exactly the current one."""
        cid = lease.conversation_id
        args: list[Any] = [f"{lease.owner}|{lease.fence}", self._key("released", cid)]
        if await self._io(self._release(keys=[self._key("lease", cid)], args=args), "releasing a lease"):
            self._listener.wake(self._key("released", cid))

    async def aclose(self) -> None:
        """Stop listening for releases, and close the client's connections if this store made the client
        (:meth:`from_url`)."""
        await self._listener.aclose()
        if self._owns_client:
            await self._client.aclose()

    def _idx(self, status: ConversationStatus) -> str:
        return f"{self._prefix}idx:{status.value}"
