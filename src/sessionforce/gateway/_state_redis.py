"""The gateway's shared state in Redis: many workers on many hosts.

Keys (``P`` is the store URL's prefix, ``sessionforce:`` by default, then ``gw:``)::

    P ev:<conversation>      stream  the event log; entry ids 0-<n>, so the event id is the sequence part;
                                     trimmed to about ``event_retention`` entries, expires after ``retention``
    P evn:<conversation>     int     the last event id handed out (never expires: ids are never reused)
    P msg:<conversation>:<id> hash   a client message id's claim, expires ``retention`` after its last change
    P rl:<key>               int     a rate-limit window (INCR, expires with the window)
    P job:<name>             string  who runs a periodic job (SET NX PX)
    P events                 channel "<origin> <conversation>" after each append

Each append is one Lua script (count, XADD each event, trim, expire, PUBLISH), and the appends of several
conversations go in one pipeline. One subscriber connection per process hears every append: a blocking
XREAD per open event stream would hold a connection per browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from sessionforce.errors import ConfigError
from sessionforce.gateway._state import Event, MessageClaim, NewEvent, StateUnavailable

__all__ = ["RedisState"]

logger = logging.getLogger("sessionforce.gateway")
T = TypeVar("T")

# KEYS: stream, counter. ARGV: maxlen, ttl_ms, channel, notice, then (type, data, turn) triples. -> last id
_APPEND = """
local n = (#ARGV - 4) / 3
local last = redis.call('INCRBY', KEYS[2], n)
local id = last - n
for i = 5, #ARGV, 3 do
  id = id + 1
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-' .. id, 't', ARGV[i], 'd', ARGV[i + 1], 'm', ARGV[i + 2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return last
"""

# KEYS: claim, counter. ARGV: fingerprint, owner, expires_at, retention_ms. -> {1, after} | HGETALL of the claim
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGETALL', KEYS[1]) end
local after = redis.call('GET', KEYS[2]) or '0'
redis.call('HSET', KEYS[1], 'state', 'running', 'fingerprint', ARGV[1], 'owner', ARGV[2], 'expires_at', ARGV[3],
           'after', after)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, after}
"""

# KEYS: claim. ARGV: owner, now, action ('renew' | 'keep' | 'drop'), value (expires_at | outcome), new owner
# ('' = none: else only an expired claim), retention_ms. -> 1 | 0
_CHANGE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
if ARGV[5] ~= '' and tonumber(redis.call('HGET', KEYS[1], 'expires_at')) > tonumber(ARGV[2]) then return 0 end
if ARGV[3] == 'renew' then
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[4])
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'owner', ARGV[5]) end
elseif ARGV[3] == 'drop' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'state', 'done', 'outcome', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
return 1
"""

# KEYS: one per counter. ARGV: (limit, window_ms) pairs. -> the longest wait in ms, or -1
_HIT = """
local wait = -1
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, ARGV[2 * i]) end
  if count > tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then redis.call('PEXPIRE', key, ARGV[2 * i]); ttl = tonumber(ARGV[2 * i]) end
    if ttl > wait then wait = ttl end
  end
end
return wait
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _claim_from(pairs: list[Any]) -> MessageClaim:
    fields = {_text(pairs[i]): _text(pairs[i + 1]) for i in range(0, len(pairs), 2)}
    return MessageClaim(
        state="done" if fields.get("state") == "done" else "running", fingerprint=fields.get("fingerprint", ""),
        owner=fields.get("owner", ""), expires_at=float(fields.get("expires_at", 0)),
        after=int(fields.get("after", 0)), outcome=fields.get("outcome"),
    )


class RedisState:
    """A :class:`~sessionforce.gateway._state.GatewayState` in Redis (a single primary)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, origin: str, event_retention: int, retention: float,
                 clock: Callable[[], float], where: str) -> None:
        self._client = client
        self._prefix = prefix + "gw:"
        self._origin = origin
        self._keep = event_retention
        self._retention_ms = max(1, int(retention * 1000))
        self._clock = clock
        self.where = where
        self._channel = self._prefix + "events"
        self._scripts = {name: (source, client.register_script(source)) for name, source in
                         (("append", _APPEND), ("claim", _CLAIM), ("change", _CHANGE), ("hit", _HIT))}

    @classmethod
    def from_url(cls, url: str, *, origin: str, event_retention: int, retention: float,
                 clock: Callable[[], float]) -> RedisState:
        """A state on a new client for ``url``; ``?prefix=`` as the conversation store reads it."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [v for k, v in query if k == "prefix"]
        rest = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"])))
        # A host cut off from Redis must fail its calls, not hang them: bounded unless the URL says otherwise.
        keys = {k for k, _ in query}
        options: dict[str, Any] = {}
        if "socket_timeout" not in keys:
            options["socket_timeout"] = 5.0
        if "socket_connect_timeout" not in keys:
            options["socket_connect_timeout"] = 2.0
        try:
            client = aioredis.Redis.from_url(rest, **options)
        except ValueError as exc:
            raise ConfigError(f"The store URL is not a valid Redis URL ({exc}). What to do: use "
                              "redis://[:password@]host:6379/0.") from None
        pool = client.connection_pool.connection_kwargs
        where = f"Redis at {pool.get('host', pool.get('path', 'localhost'))}:{pool.get('port', 6379)}"
        return cls(client, prefix=prefixes[-1] if prefixes else "sessionforce:", origin=origin,
                   event_retention=event_retention, retention=retention, clock=clock, where=where)

    def _key(self, kind: str, *parts: str) -> str:
        return self._prefix + kind + ":" + ":".join(parts)

    async def _io(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except RedisError as exc:
            # Never the exception's text: redis-py's can quote the URL, password included.
            raise StateUnavailable(f"The gateway's {self.where} cannot be used ({type(exc).__name__}). What to do: "
                                   "check that Redis runs and the store URL points to it.") from exc

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self._io(self._scripts[name][1](keys=keys, args=args))

    # -- operations -----------------------------------------------------------------------------------

    async def append(self, batches: Mapping[str, Sequence[NewEvent]]) -> dict[str, int | StateUnavailable]:
        """See :meth:`GatewayState.append`: one pipeline, one script per conversation."""
        items = list(batches.items())
        source, script = self._scripts["append"]
        results = await self._pipeline(items, script.sha)
        if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted empty: load it, go again
            await self._io(self._client.script_load(source))
            results = await self._pipeline(items, script.sha)
        out: dict[str, int | StateUnavailable] = {}
        for (conversation_id, _), result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                out[conversation_id] = StateUnavailable(
                    f"The gateway's {self.where} refused an append ({type(result).__name__}).")
            else:
                out[conversation_id] = int(result)
        return out

    async def _pipeline(self, items: list[tuple[str, Sequence[NewEvent]]], sha: str) -> list[Any]:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for conversation_id, events in items:
                    args: list[Any] = [self._keep, self._retention_ms, self._channel,
                                       f"{self._origin} {conversation_id}"]
                    for event in events:
                        args.extend(event)
                    pipe.evalsha(sha, 2, self._key("ev", conversation_id), self._key("evn", conversation_id), *args)
                return list(await pipe.execute(raise_on_error=False))
        except RedisError as exc:
            failed = StateUnavailable(f"The gateway's {self.where} cannot be reached ({type(exc).__name__}).")
            return [failed] * len(items)

    async def read(self, conversation_id: str, after: int, limit: int) -> list[Event]:
        """See :meth:`GatewayState.read`."""
        rows: Any = await self._io(self._client.xrange(self._key("ev", conversation_id), f"(0-{after}", "+",
                                                        count=limit))
        events = []
        for entry_id, fields in rows or ():
            get = fields.get
            events.append(Event(int(_text(entry_id).partition("-")[2]), _text(get(b"t", b"")), _text(get(b"d", b"")),
                                _text(get(b"m", b""))))
        return events

    async def last_id(self, conversation_id: str) -> int:
        """See :meth:`GatewayState.last_id`."""
        value = await self._io(self._client.get(self._key("evn", conversation_id)))
        return int(value) if value is not None else 0

    async def claim(
        self, conversation_id: str, message_id: str, fingerprint: str, owner: str, ttl: float
    ) -> tuple[bool, MessageClaim]:
        """See :meth:`GatewayState.claim`."""
        expires_at = self._clock() + ttl
        result = await self._script("claim", [self._key("msg", conversation_id, message_id),
                                              self._key("evn", conversation_id)],
                                    [fingerprint, owner, repr(expires_at), self._retention_ms])
        if result and result[0] == 1:
            return True, MessageClaim("running", fingerprint, owner, expires_at, int(result[1]))
        return False, _claim_from(result)

    async def _change(self, conversation_id: str, message_id: str, owner: str, action: str, value: str,
                      new_owner: str) -> bool:
        result = await self._script("change", [self._key("msg", conversation_id, message_id)],
                                    [owner, repr(self._clock()), action, value, new_owner, self._retention_ms])
        return bool(result)

    async def renew(
        self, conversation_id: str, message_id: str, owner: str, ttl: float, *, take_over_as: str | None = None
    ) -> bool:
        """See :meth:`GatewayState.renew`."""
        return await self._change(conversation_id, message_id, owner, "renew", repr(self._clock() + ttl),
                                  take_over_as or "")

    async def settle(self, conversation_id: str, message_id: str, owner: str, outcome: str | None) -> bool:
        """See :meth:`GatewayState.settle`."""
        return await self._change(conversation_id, message_id, owner, "drop" if outcome is None else "keep",
                                  outcome or "", "")

    async def message(self, conversation_id: str, message_id: str) -> MessageClaim | None:
        """See :meth:`GatewayState.message`."""
        pairs = await self._io(self._client.hgetall(self._key("msg", conversation_id, message_id)))
        if not pairs:
            return None
        flat: list[Any] = [item for pair in pairs.items() for item in pair]
        return _claim_from(flat)

    async def hit(self, counters: Sequence[tuple[str, int, float]]) -> float | None:
        """See :meth:`GatewayState.hit`."""
        keys = [self._key("rl", key) for key, _, _ in counters]
        args = [value for _, limit, window in counters for value in (limit, max(1, int(window * 1000)))]
        wait = int(await self._script("hit", keys, args))
        return None if wait < 0 else wait / 1000

    async def try_job(self, name: str, owner: str, ttl: float) -> bool:
        """See :meth:`GatewayState.try_job`."""
        return bool(await self._io(self._client.set(self._key("job", name), owner, nx=True,
                                                     px=max(1, int(ttl * 1000)))))

    async def purge(self) -> None:
        """Redis expires keys itself."""

    async def ping(self) -> None:
        """See :meth:`GatewayState.ping`."""
        await self._io(self._client.ping())

    async def listen(self, on_change: Callable[[str | None], None]) -> None:
        """Hear every append on the channel; after each (re)subscription, report that some may be missed."""
        delay = 0.1
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await self._hear(pubsub, on_change)
            except (RedisError, OSError, TimeoutError) as exc:
                logger.warning("event notifications from %s lost (%s); reconnecting", self.where, type(exc).__name__)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            on_change(None)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _hear(self, pubsub: Any, on_change: Callable[[str | None], None]) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=1.0)
            now = loop.time()
            if message is None:
                # A silent channel may be a dead link: ask, and give up on it if the answer does not come.
                if now - heard > 5.0:
                    if pinged:
                        raise TimeoutError("no answer to a ping on the notification channel")
                    await pubsub.ping()
                    pinged = True
                continue
            heard, pinged = now, False
            kind = message.get("type")
            if kind == "subscribe":
                on_change(None)  # (re)subscribed: whatever was appended meanwhile went unheard
            elif kind == "message":
                origin, _, conversation_id = _text(message["data"]).partition(" ")
                if origin != self._origin:
                    on_change(conversation_id)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()
