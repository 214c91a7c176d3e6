"""Events in and out of the shared log: a batching writer, and a hub that wakes this process's readers.

Writing: every event of every turn in this process goes through one :class:`EventWriter`, which appends
whatever queued up while its previous append was in flight in one call (one Redis pipeline, one SQLite
transaction), in order per conversation. Reading: an event stream waits on its :class:`Watch`; the hub
sets it when an append lands, here (at once) or in another process (through
:meth:`~sessionforce.gateway._state.GatewayState.listen`), and the stream reads the log from its last id.
A wake-up carries no data, so a missed or doubled one costs a read, never an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from sessionforce.gateway._state import Event, GatewayState, StateUnavailable

__all__ = ["EventWriter", "Hub", "Watch", "follow"]

logger = logging.getLogger("sessionforce.gateway")

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
READ_BATCH = 500


class Watch:
    """One reader's wake-up flag for one conversation."""

    __slots__ = ("changed", "conversation_id")

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.changed = asyncio.Event()


class Hub:
    """The readers of this process, by conversation; the listener task that hears other processes."""

    def __init__(self, state: GatewayState) -> None:
        self._state = state
        self._watches: dict[str, set[Watch]] = {}
        self._task: asyncio.Task[None] | None = None
        self.draining = False
        """Set on shutdown: every reader is woken and sees it."""

    def start(self) -> None:
        """Start hearing other processes' appends."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="sessionforce-gateway-hub")

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._state.listen(self.notify)
            except StateUnavailable as exc:
                logger.warning("cannot hear other workers' events: %s", exc)
            self.notify(None)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def watch(self, conversation_id: str) -> Watch:
        """A new watch on ``conversation_id``; give it back with :meth:`unwatch`."""
        watch = Watch(conversation_id)
        self._watches.setdefault(conversation_id, set()).add(watch)
        return watch

    def unwatch(self, watch: Watch) -> None:
        """Stop waking ``watch``."""
        watches = self._watches.get(watch.conversation_id)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.conversation_id]

    def notify(self, conversation_id: str | None) -> None:
        """Wake the readers of ``conversation_id`` (``None``: every reader)."""
        if conversation_id is None:
            for watches in self._watches.values():
                for watch in watches:
                    watch.changed.set()
            return
        for watch in self._watches.get(conversation_id, ()):
            watch.changed.set()

    def drain(self) -> None:
        """Shutdown begins: wake every reader so that it tells its client to re-attach elsewhere."""
        self.draining = True
        self.notify(None)

    @property
    def readers(self) -> int:
        """How many readers are waiting (for /readyz and the logs)."""
        return sum(len(w) for w in self._watches.values())

    async def aclose(self) -> None:
        """Stop the listener."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def follow(
    hub: Hub, state: GatewayState, conversation_id: str, after: int, *, keepalive: float, until_drained: bool = True
) -> AsyncIterator[Event | None]:
    """The conversation's events after id ``after``, in order, each once, then new ones as they come;
    ``None`` every ``keepalive`` seconds without one. Ends when the hub drains (if ``until_drained``)."""
    watch = hub.watch(conversation_id)
    try:
        while True:
            watch.changed.clear()  # before reading: an append landing during the read wakes the next wait
            events = await state.read(conversation_id, after, READ_BATCH)
            for event in events:
                yield event
                after = event.id
            if len(events) == READ_BATCH:
                continue
            if until_drained and hub.draining:
                return
            try:
                async with asyncio.timeout(keepalive):
                    await watch.changed.wait()
            except TimeoutError:
                yield None
    finally:
        hub.unwatch(watch)


class EventWriter:
    """Appends events to the shared log in order, batching all that queued during the previous append."""

    def __init__(self, state: GatewayState, hub: Hub) -> None:
        self._state = state
        self._hub = hub
        self._queued: dict[str, list[tuple[str, str, str, asyncio.Future[int] | None]]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def publish(self, conversation_id: str, kind: str, data: dict[str, Any], turn: str = "", *,
                wait: bool = False) -> asyncio.Future[int] | None:
        """Queue one event; with ``wait``, a future for its id (or the :class:`StateUnavailable` that lost it)."""
        future = asyncio.get_running_loop().create_future() if wait else None
        self._queued.setdefault(conversation_id, []).append((kind, _encode(data), turn, future))
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sessionforce-gateway-writer")
        return future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queued:
                batch, self._queued = self._queued, {}
                try:
                    results = await self._state.append(
                        {cid: [(kind, data, turn) for kind, data, turn, _ in events] for cid, events in batch.items()})
                except Exception as exc:  # the state failed in a way it did not map: report it, lose nothing else
                    logger.exception("appending events failed")
                    results = dict.fromkeys(batch, StateUnavailable(f"appending events failed ({type(exc).__name__})"))
                for conversation_id, events in batch.items():
                    result = results.get(conversation_id)
                    if isinstance(result, int):
                        first = result - len(events) + 1
                        for index, (_, _, _, future) in enumerate(events):
                            if future is not None and not future.done():
                                future.set_result(first + index)
                        self._hub.notify(conversation_id)
                    else:
                        error = result or StateUnavailable("the append got no answer")
                        logger.warning("lost %d event(s) of conversation %s: %s", len(events), conversation_id,
                                       error, extra={"conversationId": conversation_id})
                        for _, _, _, future in events:
                            if future is not None and not future.done():
                                future.set_exception(error)
            self._idle.set()

    async def aclose(self, grace: float = 5.0) -> None:
        """Write what is queued (for at most ``grace`` seconds), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
