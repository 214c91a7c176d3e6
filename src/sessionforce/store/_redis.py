"""`RedisStore`: conversation state in Redis, shared by many workers on many machines.

Key layout (``P`` is the prefix, ``sessionforce:`` by default; ``<id>`` is the conversation id verbatim —
Redis keys may hold any bytes, so no escaping is needed)::

    P rec:<id>      string  the record as JSON                      expires after ``retention``, refreshed on save
    P tx:<id>       list    transcript entries as JSON, oldest first same retention, refreshed on save and append
    P lease:<id>    string  "<owner>|<fence>" of the live lease      expires after the lease TTL (PX)
    P fence:<id>    int     the last fence handed out (INCR)         never expires, never reset
    P idx:<status>  zset    conversation ids by last_activity_at     one per status, updated with every save

Every write that must be atomic is one Lua script (registered once with ``register_script``): acquire
(``GET`` the lease, ``INCR`` the fence, ``SET ... PX``), save (fence check + version check + write +
index move), fenced append, and release/renew, which act only when the lease still holds the exact
``owner|fence`` value. Unlike redis-py's ``Lock`` nothing lives in thread-local storage: the
:class:`~sessionforce.store.Lease` object carries owner and fence, one per acquisition.

Index entries outlive records that expire through ``retention``; ``list_conversations`` skips them and
removes them (only if the record is still absent, so a concurrent re-creation is never unlisted).

Waiting in :meth:`RedisStore.acquire` polls (2 ms growing to 50 ms, never past the holder's PTTL or the
wait bound): a blocking pop on a notification list would hold one pool connection per waiting
conversation, which does not scale to thousands of conversations per process. A release through the
same store object wakes its local waiters at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessionforce.errors import ConfigError, ConversationBusy, InvalidArgument, LeaseLost, StaleRecord, StoreUnavailable
from sessionforce.store._records import ConversationRecord, ConversationStatus, Lease, TranscriptEntry

__all__ = ["RedisStore"]

T = TypeVar("T")

_FENCE_OF = "local function fence_of(v) if v then return string.match(v, '|(%d+)$') end return nil end\n"

# KEYS: lease, fence. ARGV: owner, ttl_ms. -> {1, fence} or {0, held_value, pttl_ms}
_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held then return {0, held, redis.call('PTTL', KEYS[1])} end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. fence, 'PX', ARGV[2])
return {1, fence}
"""

# KEYS: rec, lease, tx, idx of the new status, idx of every other status.
# ARGV: expected version, json, fence ('' = unfenced), retention_ms, id, score,
#       lease to release as "owner|fence" ('' = none), transcript entries...
# -> {1} | {-1} lost | {-2, stored}
_SAVE = (
    _FENCE_OF
    + """
if ARGV[3] ~= '' and fence_of(redis.call('GET', KEYS[2])) ~= ARGV[3] then return {-1} end
local current = redis.call('GET', KEYS[1])
local stored = 0
if current then stored = cjson.decode(current)['version'] end
if stored ~= tonumber(ARGV[1]) then return {-2, stored} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
for i = 8, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
for i = 5, #KEYS do redis.call('ZREM', KEYS[i], ARGV[5]) end
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[5])
if ARGV[7] ~= '' and redis.call('GET', KEYS[2]) == ARGV[7] then redis.call('DEL', KEYS[2]) end
return {1}
"""
)

# KEYS: lease, tx. ARGV: fence ('' = unfenced), entry json, retention_ms. -> 1 | 0 lost
_APPEND = (
    _FENCE_OF
    + """
if ARGV[1] ~= '' and fence_of(redis.call('GET', KEYS[1])) ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""
)

# KEYS: lease. ARGV: exact "owner|fence", ttl_ms. -> 1 | 0
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
# KEYS: lease. ARGV: exact "owner|fence". -> 1 | 0
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# KEYS: rec keys..., idx. ARGV: ids (same order). Unlists ids whose record is (still) gone.
_PRUNE = """
for i, id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('ZREM', KEYS[#KEYS], id) end
end
"""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable Redis URL>"


def _describe(client: aioredis.Redis) -> tuple[str, str | None]:
    """Where ``client`` points (never with a password), and the password to scrub from messages."""
    kwargs = client.connection_pool.connection_kwargs
    password = kwargs.get("password")
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}", password
    scheme = "rediss" if issubclass(client.connection_pool.connection_class, aioredis.SSLConnection) else "redis"
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}", password


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStore:
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
        self._where, self._password = _describe(client)
        self._owns_client = False
        self._acquire = client.register_script(_ACQUIRE)
        self._save = client.register_script(_SAVE)
        self._append = client.register_script(_APPEND)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._prune = client.register_script(_PRUNE)
        self._released: dict[str, asyncio.Event] = {}

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
        arguments go to ``redis.asyncio.Redis.from_url``. Nothing connects until the first call."""
        try:
            client = aioredis.Redis.from_url(url, **client_kwargs)
        except ValueError as exc:
            raise ConfigError(
                f"Store URL {redact_url(url)!r} (SESSIONFORCE_STORE) is not a valid Redis URL ({exc}). "
                "What to do: use redis://[:password@]host:6379/0."
            ) from None
        store = cls(client, prefix=prefix, retention=retention, clock=clock)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self._prefix!r})"

    def _key(self, kind: str, conversation_id: str) -> str:
        return f"{self._prefix}{kind}:{conversation_id}"

    async def _io(self, call: Awaitable[T]) -> T:
        """Await one Redis call, turning Redis failures into :class:`StoreUnavailable`."""
        try:
            return await call
        except RedisError as exc:
            detail = f"{type(exc).__name__}: {exc}"
            if self._password:
                detail = detail.replace(self._password, "***")
            if isinstance(exc, RedisConnectionError | RedisTimeoutError):
                what = "cannot be reached"
                todo = "check that Redis runs and that the store URL (SESSIONFORCE_STORE) points to it"
            else:
                what = "answered with an error"
                todo = "check the Redis server's version and that no other data uses this key prefix"
            raise StoreUnavailable(
                f"Redis at {self._where} {what} ({detail}); nothing was sent to the agent and nothing was lost. "
                f"What to do: {todo}, then retry."
            ) from exc

    def _lost(self, conversation_id: str, fence: int) -> LeaseLost:
        return LeaseLost(
            f"The lease on conversation {conversation_id!r} was lost (fence {fence}); the write was refused. "
            "What to do: nothing was overwritten; retry the turn, it will see the newer state."
        )

    # -- the Store protocol ---------------------------------------------------------------------------

    async def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        blob = await self._io(self._client.get(self._key("rec", conversation_id)))
        return None if blob is None else ConversationRecord.from_json(blob)

    async def save(
        self,
        record: ConversationRecord,
        *,
        fence: int | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        release: Lease | None = None,
    ) -> ConversationRecord:
        """Compare-and-save by version and fence (appending ``transcript``, giving ``release`` up) in one
        Lua script; see ``Store``."""
        saved = record.replace(version=record.version + 1)
        cid = record.conversation_id
        keys = [self._key("rec", cid), self._key("lease", cid), self._key("tx", cid), self._idx(saved.status)]
        keys += [self._idx(s) for s in ConversationStatus if s != saved.status]
        args: list[Any] = [record.version, saved.to_json(), "" if fence is None else fence]
        args.append(self._retention_ms)
        args += [cid, repr(saved.last_activity_at), "" if release is None else f"{release.owner}|{release.fence}"]
        args += [entry.to_json() for entry in transcript]
        result = await self._io(self._save(keys=keys, args=args))
        if result[0] == -1:
            raise self._lost(cid, fence or 0)
        if result[0] == -2:
            raise StaleRecord(
                f"Conversation {cid!r} was saved by someone else (version {result[1]}, this write expected "
                f"{record.version}). What to do: reload it and apply the change again."
            )
        if release is not None:
            self._wake(cid)
        return saved

    async def append_transcript(
        self, conversation_id: str, entry: TranscriptEntry, *, fence: int | None = None
    ) -> None:
        """Append one transcript entry (refused with ``LeaseLost`` when ``fence`` is not the live lease's)."""
        keys = [self._key("lease", conversation_id), self._key("tx", conversation_id)]
        args: list[Any] = ["" if fence is None else fence, entry.to_json(), self._retention_ms]
        if not await self._io(self._append(keys=keys, args=args)):
            raise self._lost(conversation_id, fence or 0)

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The whole transcript, oldest first."""
        blobs = await self._io(self._client.lrange(self._key("tx", conversation_id), 0, -1))
        return [TranscriptEntry.from_json(blob) for blob in blobs]

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
        while len(out) < limit:
            want = limit - len(out)
            raw: list[Any] = await self._io(self._client.zrangebyscore(index, "-inf", top, start=offset, num=want))
            if not raw:
                break
            ids = [_text(r) for r in raw]
            rec_keys = [self._key("rec", cid) for cid in ids]
            blobs = await self._io(self._client.mget(rec_keys))
            missing: list[str] = []
            for cid, blob in zip(ids, blobs, strict=True):
                if blob is None:
                    missing.append(cid)  # expired through retention; its index entry is stale
                    continue
                record = ConversationRecord.from_json(blob)
                # The script keeps index and record in step; re-check anyway against a save that raced us.
                if record.status == status and (cutoff is None or record.last_activity_at <= cutoff):
                    out.append(record)
            offset += len(ids)
            if missing:
                stale_keys = [self._key("rec", cid) for cid in missing]
                await self._io(self._prune(keys=[*stale_keys, index], args=missing))
                offset -= len(missing)
            if len(ids) < want:
                break
        return out

    async def delete(self, conversation_id: str) -> None:
        """Forget the record, its transcript and its lease (the fence counter stays, so old fences stay dead)."""
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self._key("rec", conversation_id), self._key("tx", conversation_id))
        pipe.delete(self._key("lease", conversation_id))
        for status in ConversationStatus:
            pipe.zrem(self._idx(status), conversation_id)
        await self._io(pipe.execute())
        self._wake(conversation_id)

    async def acquire(self, conversation_id: str, *, owner: str, ttl: float, wait: float) -> Lease:
        """Take the lease (``SET NX PX`` with a fence from ``INCR``), polling for up to ``wait`` seconds."""
        if not ttl > 0:
            raise InvalidArgument(f"ttl={ttl!r}: a lease needs a positive time to live in seconds.")
        keys = [self._key("lease", conversation_id), self._key("fence", conversation_id)]
        args: Sequence[Any] = [owner, max(1, int(ttl * 1000))]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait, 0.0)
        delay = 0.002
        while True:
            # Read the clock first: the lease's real expiry is a little later than the one we report.
            now = self._clock()
            result = await self._io(self._acquire(keys=keys, args=args))
            if result[0] == 1:
                return Lease(conversation_id, owner, int(result[1]), now + ttl)
            holder = _text(result[1]).rpartition("|")[0]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConversationBusy(
                    f"Conversation {conversation_id!r} stayed busy for {wait:.1f}s (a turn by {holder} holds it "
                    f"in Redis at {self._where}). What to do: retry later, or raise the wait bound (lock_wait)."
                )
            event = self._released.setdefault(conversation_id, asyncio.Event())
            try:
                # Never sleep past the holder's expiry (PTTL < 0 only when someone removed the PX by hand).
                pttl = int(result[2])
                async with asyncio.timeout(min(delay, remaining, max(pttl, 1) / 1000 if pttl >= 0 else delay)):
                    await event.wait()
            except TimeoutError:
                pass
            delay = min(delay * 1.5, 0.05)

    async def renew(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend a held lease; ``LeaseLost`` if it expired or was taken over."""
        if not ttl > 0:
            raise InvalidArgument(f"ttl={ttl!r}: a lease needs a positive time to live in seconds.")
        now = self._clock()
        keys = [self._key("lease", lease.conversation_id)]
        args: list[Any] = [f"{lease.owner}|{lease.fence}", max(1, int(ttl * 1000))]
        if not await self._io(self._renew(keys=keys, args=args)):
            raise self._lost(lease.conversation_id, lease.fence)
        return Lease(lease.conversation_id, lease.owner, lease.fence, now + ttl)

    async def release(self, lease: Lease) -> None:
        """Give the lease up; a no-op when it expired or a newer lease replaced it."""
        keys = [self._key("lease", lease.conversation_id)]
        if await self._io(self._release(keys=keys, args=[f"{lease.owner}|{lease.fence}"])):
            self._wake(lease.conversation_id)

    async def aclose(self) -> None:
        """Close the client's connections if this store made the client (:meth:`from_url`)."""
        if self._owns_client:
            await self._client.aclose()

    def _idx(self, status: ConversationStatus) -> str:
        return f"{self._prefix}idx:{status.value}"

    def _wake(self, conversation_id: str) -> None:
        event = self._released.pop(conversation_id, None)
        if event is not None:
            event.set()
