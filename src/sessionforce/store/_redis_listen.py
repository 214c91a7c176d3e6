"""Wake-ups for the Redis store's waiters: a released lease is published (``PUBLISH`` inside the release and
final-save scripts, on the conversation's own channel), and a process that waits for that conversation is
subscribed to it.

One pub/sub connection per store object, subscribed to a conversation's channel only while someone here
waits for it (a process receives only the releases it waits for). Best effort by design: a notification
missed (published before the subscription landed, or while the connection was down) only means the waiter
wakes at its next poll, which the shared lease-wait loop keeps short.

In a cluster the channels are sharded (``SSUBSCRIBE``: a release is published only on the node that owns
its conversation's slot, never broadcast to every node), and redis-py's cluster pub/sub keeps one
connection per node it subscribed on, following a slot to its new owner after a failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReleaseListener"]

logger = logging.getLogger("sessionforce.store")

_SUBSCRIBE_WITHIN = 0.5
"""Seconds a subscription may take before the waiter just polls."""
_PAUSE_AFTER_FAILURE = 1.0
"""Seconds waiters only poll after the pub/sub connection failed (Redis down: no reconnect storm)."""
_SHARD_POLL = 0.05
"""Seconds one read of the cluster's per-node connections waits (redis-py polls them in turn)."""


@dataclass(slots=True)
class _Waiting:
    users: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)


class ReleaseListener:
    """Per-conversation release notifications for :class:`~sessionforce.store.RedisStore` waiters."""

    def __init__(self, client: Any, *, sharded: bool = False) -> None:
        self._client = client
        self._sharded = sharded
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, _Waiting] = {}
        self._idle: set[str] = set()  # subscribed channels nobody waits on any more (dropped with the next wait)
        self._paused_until = 0.0

    async def wait(self, channel: str, timeout: float) -> None:  # noqa: ASYNC109 (the store protocol's shape)
        """Return when ``channel`` gets a message (or the connection fails), or after ``timeout``."""
        waiting = self._waiting.get(channel)
        if waiting is None:
            waiting = self._waiting[channel] = _Waiting()
            if not await self._subscribe(channel):
                self._waiting.pop(channel, None)
                await asyncio.sleep(timeout)
                return
        waiting.users += 1
        event = waiting.event
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
        finally:
            waiting.users -= 1
            if waiting.users == 0 and self._waiting.get(channel) is waiting:
                del self._waiting[channel]
                self._idle.add(channel)

    def wake(self, channel: str) -> None:
        """Wake this process's waiters on ``channel`` now (a release made here: no need for the round trip)."""
        waiting = self._waiting.get(channel)
        if waiting is not None:
            waiting.event.set()
            waiting.event = asyncio.Event()  # later waiters wait for the next release

    async def _subscribe(self, channel: str) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() < self._paused_until:
            return False
        self._idle.discard(channel)
        try:
            async with asyncio.timeout(_SUBSCRIBE_WITHIN):
                if self._pubsub is None:
                    self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                if self._idle:
                    idle, self._idle = list(self._idle), set()
                    await (self._pubsub.sunsubscribe if self._sharded else self._pubsub.unsubscribe)(*idle)
                await (self._pubsub.ssubscribe if self._sharded else self._pubsub.subscribe)(channel)
        except Exception as exc:  # Redis down, frozen or refusing: the waiters poll
            logger.debug("release notifications paused: %s: %s", type(exc).__name__, exc)
            await self._reset(loop.time() + _PAUSE_AFTER_FAILURE)
            return False
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read(self._pubsub))
        return True

    async def _read(self, pubsub: Any) -> None:
        while True:
            try:
                if self._sharded:
                    started = asyncio.get_running_loop().time()
                    message = await pubsub.get_sharded_message(timeout=_SHARD_POLL)
                    if message is None and asyncio.get_running_loop().time() - started < _SHARD_POLL / 2:
                        await asyncio.sleep(_SHARD_POLL)  # nothing subscribed right now: no busy loop
                else:
                    message = await pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("release notifications lost: %s: %s", type(exc).__name__, exc)
                if pubsub is self._pubsub:
                    await self._reset(asyncio.get_running_loop().time() + _PAUSE_AFTER_FAILURE)
                return
            if message is not None and message.get("type") in ("message", "smessage"):
                channel = message["channel"]
                self.wake(channel.decode() if isinstance(channel, bytes) else channel)

    async def _reset(self, paused_until: float) -> None:
        """Drop the connection and every subscription; wake every waiter (each polls once more)."""
        self._paused_until = paused_until
        pubsub, self._pubsub = self._pubsub, None
        reader, self._reader = self._reader, None
        waiting, self._waiting = self._waiting, {}
        self._idle.clear()
        for each in waiting.values():
            each.event.set()
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def aclose(self) -> None:
        """Stop listening and close the pub/sub connection."""
        await self._reset(0.0)
