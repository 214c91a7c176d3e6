"""`RedisStore`: conversation state in Redis, shared by many workers on many machines: one primary, a
Redis Cluster, or a primary found through Sentinel (:mod:`._redis_connect` reads the URL).

Key layout (``P`` is the prefix, ``sessionforce:`` by default; ``<id>`` is the conversation id verbatim —
Redis keys may hold any bytes, so no escaping is needed; in a cluster every name also carries its
bucket's hash tag after the prefix, ``P{<bucket>}rec:<id>``: :mod:`._redis_keys`)::

    P rec:<id>       string  the record as JSON                      expires after ``retention``, refreshed on save
    P tx:<id>        list    transcript entries as JSON, oldest first same retention, refreshed on save and append
    P lease:<id>     string  "<owner>|<fence>" of the live lease      expires after the lease TTL (PX)
    P fence:<id>     int     the last fence handed out                same retention, refreshed on acquire
    P wid:<id>       string  the id of the last write                 a minute (recognises redis-py's resends)
    P idx:<status>   zset    conversation ids by last_activity_at     per status (and bucket), moved by every save
    P released:<id>  channel a message on every release               (pub/sub, sharded in a cluster; nothing stored)

Every step that must be atomic is one Lua script (:mod:`._redis_scripts`), one round trip, on the keys of
one conversation (one hash slot): acquire, save (lease check + version check + write + transcript + index
move + release), append, renew, release, delete. A write carries its whole lease, and fences come from
the server's clock and a counter, so neither a stalled worker nor Redis restarted empty (or a replica
promoted without the last writes) can make a stale write land; each script is harmless when redis-py
resends it after a dropped connection. Unlike redis-py's ``Lock`` nothing lives in thread-local storage:
the :class:`~sessionforce.store.Lease` object carries owner and fence, one per acquisition.

With ``wait_replicas=N`` the writes a turn is sent on (the lease, its renewals, the write-ahead save of a
pending turn) are followed by ``WAIT N`` on the same connection (one pipeline, on the node that owns the
slot), and fewer acknowledgements within ``wait_timeout`` is :class:`~sessionforce.errors.StoreUnavailable`
(the turn is not sent).

Index entries outlive records that expire through ``retention``; ``list_conversations`` skips them and
removes them (only if the record is still absent, so a concurrent re-creation is never unlisted).

Waiting for a lease is the shared loop; :meth:`RedisStore.wait_released` is woken by a release anywhere
(pub/sub, :mod:`._redis_listen`), else by the loop's poll.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from itertools import count
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from sessionforce.errors import InvalidArgument
from sessionforce.errors._build import corrupt_record, lease_lost, stale_record, store_unavailable, unstorable
from sessionforce.errors._redact import remember_secret
from sessionforce.store import _redis_scripts as lua
from sessionforce.store._lease_wait import check_ttl, check_write
from sessionforce.store._protocol import Store
from sessionforce.store._records import ConversationRecord, ConversationStatus, Held, Lease, TranscriptEntry
from sessionforce.store._redis_connect import Options, connect, describe
from sessionforce.store._redis_errors import LOWER_ERRORS, out_of_connections, redis_failure
from sessionforce.store._redis_keys import KeyLayout
from sessionforce.store._redis_list import list_status
from sessionforce.store._redis_listen import ReleaseListener

__all__ = ["RedisStore"]

T = TypeVar("T")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStore(Store):
    """A :class:`~sessionforce.store.Store` in Redis: one primary (``redis.asyncio.Redis``, also one that
    Sentinel finds) or a cluster (``redis.asyncio.cluster.RedisCluster``), for many workers on many machines.

    ``retention`` (seconds) is how long an untouched record and transcript are kept. ``wait_replicas``: how
    many replicas must acknowledge a lease and a turn's write-ahead before the turn is sent (``WAIT``, within
    ``wait_timeout`` seconds; 0: do not wait). At most ``pool_max`` calls are in flight per store object;
    more wait up to ``pool_timeout`` seconds for a free one, then fail with ``StoreUnavailable``. A client
    passed in is not closed by :meth:`aclose`; one made by :meth:`from_url` is.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "sessionforce:",
        retention: float = 30 * 24 * 3600,
        clock: Callable[[], float] = time.time,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        pool_max: int = 50,
        pool_timeout: float = 5.0,
    ) -> None:
        if not retention > 0:
            raise InvalidArgument(f"retention={retention!r}: give the seconds to keep idle records (> 0).")
        if wait_replicas < 0 or not wait_timeout > 0:
            raise InvalidArgument(
                f"wait_replicas={wait_replicas!r}, wait_timeout={wait_timeout!r}: give how many replicas must "
                "acknowledge (>= 0) and the seconds to wait for them (> 0)."
            )
        if pool_max < 1 or pool_timeout < 0:
            raise InvalidArgument(f"pool_max={pool_max!r}, pool_timeout={pool_timeout!r}: use pool_max >= 1, "
                                  "pool_timeout >= 0 seconds.")
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._keys = KeyLayout(prefix, tagged=self._cluster)
        self._prefix = prefix
        self._publish = "SPUBLISH" if self._cluster else "PUBLISH"
        self._retention_ms = max(1, int(retention * 1000))
        self._clock = clock
        self._wait_replicas = wait_replicas
        self._wait_ms = max(1, int(wait_timeout * 1000))
        self._slots = asyncio.Semaphore(pool_max)
        self._pool_max = pool_max
        self._pool_timeout = pool_timeout
        self._where = describe(client)
        kwargs = client.connection_kwargs if self._cluster else client.connection_pool.connection_kwargs
        remember_secret(kwargs.get("password"))  # scrubbed from every error
        self._owns_client = False
        self._acquire = client.register_script(lua.ACQUIRE)
        self._save = client.register_script(lua.SAVE)
        self._append = client.register_script(lua.APPEND)
        self._renew = client.register_script(lua.RENEW)
        self._release = client.register_script(lua.RELEASE)
        self._prune = client.register_script(lua.PRUNE)
        self._delete = client.register_script(lua.DELETE)
        self._listener = ReleaseListener(client, sharded=self._cluster)
        # Write ids: unique to this store object, so a resent write recognises itself and no one else's.
        self._writer = os.urandom(6).hex() + ":"
        self._writes = count()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str | None = None,
        retention: float = 30 * 24 * 3600,
        clock: Callable[[], float] = time.time,
        wait_replicas: int | None = None,
        wait_timeout: float | None = None,
        pool_max: int | None = None,
        pool_timeout: float | None = None,
        **client_kwargs: Any,
    ) -> RedisStore:
        """A store on a new client for ``url``: ``redis://``, ``rediss://``, ``unix://``, a cluster
        (``redis+cluster://host1:6379,host2:6379``) or Sentinel (``redis+sentinel://s1:26379,s2:26379/service``),
        see docs/stores.md. Our options come from the URL's query (``prefix``, ``wait_replicas``,
        ``wait_timeout``, ``pool_max``, ``pool_timeout``) or keyword arguments (which win); other keyword
        arguments go to redis-py's client. Nothing connects until the first call.

        Unless told otherwise (``retry=``), a command whose connection broke is sent again up to three times
        (a pooled connection dropped by a restart, a failover or a network blip then costs no failed turn;
        a cluster client also follows MOVED/ASK redirections): every script is harmless when it runs twice."""
        given = {"prefix": prefix, "wait_replicas": wait_replicas, "wait_timeout": wait_timeout,
                 "pool_max": pool_max, "pool_timeout": pool_timeout}
        connected = connect(url, given, client_kwargs)
        o: Options = connected.options
        store = cls(connected.client, prefix=o.prefix, retention=retention, clock=clock,
                    wait_replicas=o.wait_replicas, wait_timeout=o.wait_timeout, pool_max=o.pool_max,
                    pool_timeout=o.pool_timeout)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self._prefix!r})"

    def _key(self, kind: str, conversation_id: str) -> str:
        return self._keys.key(kind, conversation_id)

    def _write_id(self) -> str:
        return f"{self._writer}{next(self._writes)}"

    async def _io(self, call: Awaitable[T], doing: str) -> T:
        """Await one Redis call (at most ``pool_max`` at once), turning its failures into our errors."""
        try:
            if self._slots.locked():  # all in use: wait a bounded time for one
                async with asyncio.timeout(self._pool_timeout):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()
        except BaseException as exc:  # timed out or cancelled: the call is never made
            if asyncio.iscoroutine(call):
                call.close()
            if not isinstance(exc, TimeoutError):
                raise
            raise out_of_connections(self._where, doing, self._pool_max, self._pool_timeout) from None
        try:
            return await call
        except LOWER_ERRORS as exc:
            raise redis_failure(exc, self._where, doing) from exc
        except UnicodeEncodeError as exc:  # a str that is not Unicode text (a lone surrogate) cannot be sent
            raise unstorable(f"conversation id {exc.object!r}", exc) from None
        finally:
            self._slots.release()

    async def _replicated(self, script: Any, keys: list[str], args: list[Any], doing: str) -> tuple[Any, int]:
        """Run ``script``; with ``wait_replicas``, then WAIT on the same connection (one pipeline, on the node
        owning the slot) for the replicas. Returns the script's result and the replicas that acknowledged
        (``wait_replicas`` when not waiting)."""
        if not self._wait_replicas:
            return await self._io(script(keys=keys, args=args), doing), 0
        if self._cluster:  # the slot map names the node to WAIT on (a no-op once the client knows it)
            await self._io(self._client.initialize(), doing)
        for _ in range(2):  # a second time after loading a script the server did not know
            pipe = self._client.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            target = {"target_nodes": self._client.get_node_from_key(keys[0])} if self._cluster else {}
            pipe.execute_command("WAIT", self._wait_replicas, self._wait_ms, **target)
            try:
                result, acked = await self._io(pipe.execute(), doing)
            except Exception as exc:
                if not isinstance(exc.__cause__, NoScriptError):
                    raise
                await self._io(self._client.script_load(script.script), doing)
                continue
            return result, int(acked)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_replicas(self, acked: int, doing: str) -> None:
        if acked < self._wait_replicas:
            cause = (f"only {acked} of {self._wait_replicas} replicas acknowledged the write within "
                     f"{self._wait_ms / 1000:g} s")
            raise store_unavailable(f"Redis at {self._where}", doing, cause,
                                    advice="check the replicas and their link to the primary, or lower wait_replicas")

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
        bucket = self._keys.bucket(cid)
        keys.append(self._keys.index(saved.status, bucket))
        keys += [self._keys.index(s, bucket) for s in ConversationStatus if s != saved.status]
        args: list[Any] = [record.version, saved.to_json(), "" if lease is None else f"{lease.owner}|{lease.fence}"]
        args += [self._retention_ms, cid, repr(saved.last_activity_at), "1" if release else "", self._write_id()]
        args += [self._key("released", cid), self._publish]
        args += [entry.to_json() for entry in transcript]
        # A pending turn is the write-ahead the turn is sent on: with wait_replicas, replicated first.
        if saved.pending is not None and lease is not None:
            result, acked = await self._replicated(self._save, keys, args, "saving a conversation")
        else:
            result, acked = await self._io(self._save(keys=keys, args=args), "saving a conversation"), 0
        if result[0] == -1:
            raise lease_lost(cid, lease)
        if result[0] == -2:
            raise stale_record(cid, record.version, int(result[1]))
        if result[0] == -3:
            where = f"Redis at {self._where}"
            raise corrupt_record(where, cid, "record", ValueError("it is not a sessionforce record"))
        if saved.pending is not None and lease is not None:
            self._check_replicas(acked, "saving a conversation")
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
        where = f"Redis at {self._where}"
        for each in [status] if status is not None else list(ConversationStatus):
            found += await list_status(self._io, self._client, self._keys, self._prune, each, cutoff, limit, where)
        found.sort(key=lambda r: r.last_activity_at)
        return found[:limit]

    async def delete(self, conversation_id: str) -> None:
        """Forget the record, its transcript and its lease (fences handed out stay dead: they come from the
        clock and the counter, which stays until its retention runs out)."""
        cid = conversation_id
        keys = [self._key(kind, cid) for kind in ("rec", "tx", "lease", "wid")] + self._keys.indexes_of(cid)
        args: list[Any] = [cid, self._key("released", cid), self._publish]
        await self._io(self._delete(keys=keys, args=args), "deleting a conversation")
        self._listener.wake(self._key("released", conversation_id))

    async def try_acquire(self, conversation_id: str, *, owner: str, ttl: float) -> Lease | float:
        """A new lease, or how long the current holder's lasts (one script; see ``Store``)."""
        check_ttl(ttl)
        keys = [self._key("lease", conversation_id), self._key("fence", conversation_id)]
        # Read the clock first: the lease's real expiry is a little later than the one we report.
        now = self._clock()
        args: list[Any] = [owner, max(1, int(ttl * 1000)), self._retention_ms]
        doing = "taking a conversation's lease"
        result, acked = await self._replicated(self._acquire, keys, args, doing)
        if result[0] == 1:
            lease = Lease(conversation_id, owner, int(result[1]), now + ttl)
            if acked < self._wait_replicas:  # never run a turn on a lease a failover may forget
                await self.release(lease)
                self._check_replicas(acked, doing)
            return lease
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
        renewed, acked = await self._replicated(self._renew, keys, args, "renewing a lease")
        if not renewed:
            raise lease_lost(lease.conversation_id, lease)
        self._check_replicas(acked, "renewing a lease")
        return Lease(lease.conversation_id, lease.owner, lease.fence, now + ttl)

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up; a no-op unless it is exactly the current one."""
        cid = lease.conversation_id
        args: list[Any] = [f"{lease.owner}|{lease.fence}", self._key("released", cid), self._publish]
        if await self._io(self._release(keys=[self._key("lease", cid)], args=args), "releasing a lease"):
            self._listener.wake(self._key("released", cid))

    async def aclose(self) -> None:
        """Stop listening for releases, and close the client's connections if this store made the client
        (:meth:`from_url`)."""
        await self._listener.aclose()
        if self._owns_client:
            await self._client.aclose()
