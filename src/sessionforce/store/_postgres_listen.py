"""Released-lease notifications for the PostgreSQL store: one ``LISTEN`` connection per store.

A release that a waiter asked for (the lease row's ``wanted`` flag) sends ``pg_notify(channel, key)``
in the releasing statement itself, delivered when it commits; ``key`` is a short hash of the
conversation id. This connection listens on the schema's channel and wakes the local waiters of that
key. It is only a hint: a waiter always re-tries the lease, and falls back to polling whenever this
connection is down (it reconnects by itself, waking every waiter, since it may have missed a release).

A waiter *arms* its key before the statement that finds the lease held, so a release committed between
that statement and the wait still wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg

__all__ = ["Listener", "channel_for", "key_for"]

logger = logging.getLogger("sessionforce.store.postgres")

# Slots kept for keys nobody waits on (a waiter that gave up after an armed try) are dropped past this.
_MAX_SLOTS = 4096


def channel_for(schema: str) -> str:
    """The notification channel of a schema's store (an identifier: lowercase, short, never quoted)."""
    return "sessionforce_released_" + hashlib.blake2b(schema.encode(), digest_size=8).hexdigest()


def key_for(conversation_id: str) -> str:
    """The notification payload naming a conversation (its id can be long, or hold anything)."""
    return hashlib.blake2b(conversation_id.encode(), digest_size=12).hexdigest()


@dataclass(slots=True)
class _Slot:
    event: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0


class Listener:
    """The ``LISTEN`` connection and the waiters it wakes. Started on the first contended acquire."""

    def __init__(self, conninfo: str, connect_kwargs: dict[str, Any], channel: str) -> None:
        self._conninfo = conninfo
        self._kwargs = connect_kwargs
        self._channel = channel
        self._slots: dict[str, _Slot] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._listening = asyncio.Event()
        self.healthy = False
        """True while the connection listens: waiters may then trust a notification to come."""
        self.loop = asyncio.get_running_loop()
        """The event loop it serves."""

    async def start(self, within: float) -> None:
        """Start listening (once); wait up to ``within`` seconds for the first ``LISTEN`` to be in place."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sessionforce-pg-listen")
        if not self.healthy:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._listening.wait()

    def arm(self, key: str) -> None:
        """Be ready for ``key``'s release from now on (before the statement that may find it held)."""
        if key not in self._slots:
            if len(self._slots) >= _MAX_SLOTS:
                self._slots = {k: s for k, s in self._slots.items() if s.waiting}
            self._slots[key] = _Slot()

    def armed(self, key: str) -> bool:
        """Whether ``key`` is armed (a try of its lease came first)."""
        return key in self._slots

    def disarm(self, key: str) -> None:
        """The lease was taken: forget ``key`` unless another task waits on it."""
        slot = self._slots.get(key)
        if slot is not None and not slot.waiting:
            del self._slots[key]

    async def wait(self, key: str, seconds: float) -> None:
        """Until ``key`` is released (or the connection is lost), at most ``seconds``."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        slot.waiting += 1
        try:
            async with asyncio.timeout(seconds):
                await slot.event.wait()
        except TimeoutError:
            pass
        finally:
            slot.waiting -= 1
            if not slot.waiting and self._slots.get(key) is slot:
                del self._slots[key]

    def _wake(self, key: str) -> None:
        slot = self._slots.pop(key, None)
        if slot is not None:
            slot.event.set()

    def _wake_all(self) -> None:
        slots, self._slots = self._slots, {}
        for slot in slots.values():
            slot.event.set()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, **self._kwargs)
            except psycopg.Error as exc:
                logger.debug("store notifications: cannot connect (%s); waiters poll", type(exc).__name__)
            else:
                self._conn = conn
                try:
                    await conn.execute(f"LISTEN {self._channel}".encode())
                    self.healthy = True
                    self._listening.set()
                    self._wake_all()  # anything released while we were not listening
                    delay = 0.1
                    async for notify in conn.notifies():
                        self._wake(notify.payload)
                except psycopg.Error as exc:
                    logger.debug("store notifications: connection lost (%s); waiters poll", type(exc).__name__)
                finally:
                    self.healthy = False
                    self._listening.clear()
                    self._conn = None
                    self._wake_all()
                    with contextlib.suppress(psycopg.Error):
                        await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def aclose(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.healthy = False
        self._wake_all()
