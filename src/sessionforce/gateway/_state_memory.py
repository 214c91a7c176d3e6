"""The gateway's shared state in this process's memory (``memory://``: one worker, tests, the demo)."""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from sessionforce.gateway._state import Event, MessageClaim, NewEvent, StateUnavailable

__all__ = ["MemoryState"]


class _Log:
    __slots__ = ("events", "last", "touched")

    def __init__(self, keep: int) -> None:
        self.events: deque[Event] = deque(maxlen=keep)
        self.last = 0
        self.touched = 0.0


class MemoryState:
    """Every operation is a few dict operations on the event loop, so atomic by construction.

    Retention is applied lazily: each append and claim drops logs and message ids older than ``retention``
    (their containers are kept in order of last use, so only the front is ever looked at).
    """

    where = "memory"

    def __init__(self, *, event_retention: int, retention: float, clock: Callable[[], float]) -> None:
        self._keep = event_retention
        self._retention = retention
        self._clock = clock
        self._logs: OrderedDict[str, _Log] = OrderedDict()
        self._counters: dict[str, int] = {}
        """Conversation id -> last id handed out: outlives the log, so ids are never reused."""
        self._messages: OrderedDict[tuple[str, str], tuple[MessageClaim, float]] = OrderedDict()
        self._windows: dict[str, tuple[int, float]] = {}
        self._jobs: dict[str, float] = {}

    def _expire(self, now: float) -> None:
        cutoff = now - self._retention
        while self._logs and next(iter(self._logs.values())).touched < cutoff:
            self._logs.popitem(last=False)
        while self._messages and next(iter(self._messages.values()))[1] < cutoff:
            self._messages.popitem(last=False)

    async def append(self, batches: Mapping[str, Sequence[NewEvent]]) -> dict[str, int | StateUnavailable]:
        """See :meth:`GatewayState.append`."""
        now = self._clock()
        self._expire(now)
        result: dict[str, int | StateUnavailable] = {}
        for conversation_id, events in batches.items():
            log = self._logs.get(conversation_id)
            if log is None:
                log = self._logs[conversation_id] = _Log(self._keep)
            else:
                self._logs.move_to_end(conversation_id)
            last = self._counters.get(conversation_id, 0)
            for kind, data, turn in events:
                last += 1
                log.events.append(Event(last, kind, data, turn))
            self._counters[conversation_id] = log.last = last
            log.touched = now
            result[conversation_id] = last
        return result

    async def read(self, conversation_id: str, after: int, limit: int) -> list[Event]:
        """See :meth:`GatewayState.read`."""
        log = self._logs.get(conversation_id)
        if log is None or log.last <= after:
            return []
        events = log.events
        # Ids are consecutive within the deque: index straight to the first one wanted.
        start = max(0, after - events[0].id + 1) if events else 0
        return [events[i] for i in range(start, min(len(events), start + limit))]

    async def last_id(self, conversation_id: str) -> int:
        """See :meth:`GatewayState.last_id`."""
        return self._counters.get(conversation_id, 0)

    async def claim(
        self, conversation_id: str, message_id: str, fingerprint: str, owner: str, ttl: float
    ) -> tuple[bool, MessageClaim]:
        """See :meth:`GatewayState.claim`."""
        now = self._clock()
        self._expire(now)
        held = self._messages.get((conversation_id, message_id))
        if held is not None:
            return False, held[0]
        claim = MessageClaim("running", fingerprint, owner, now + ttl, self._counters.get(conversation_id, 0))
        self._messages[(conversation_id, message_id)] = (claim, now)
        return True, replace(claim)

    async def renew(
        self, conversation_id: str, message_id: str, owner: str, ttl: float, *, take_over_as: str | None = None
    ) -> bool:
        """See :meth:`GatewayState.renew`."""
        held = self._messages.get((conversation_id, message_id))
        now = self._clock()
        if held is None or held[0].owner != owner or held[0].state != "running":
            return False
        if take_over_as is not None:
            if held[0].expires_at > now:
                return False
            held[0].owner = take_over_as
        held[0].expires_at = now + ttl
        return True

    async def settle(self, conversation_id: str, message_id: str, owner: str, outcome: str | None) -> bool:
        """See :meth:`GatewayState.settle`."""
        key = (conversation_id, message_id)
        held = self._messages.get(key)
        now = self._clock()
        if held is None or held[0].owner != owner or held[0].state != "running":
            return False
        if outcome is None:
            del self._messages[key]
        else:
            claim = held[0]
            self._messages[key] = (MessageClaim("done", claim.fingerprint, owner, claim.expires_at, claim.after,
                                                outcome), now)
            self._messages.move_to_end(key)
        return True

    async def message(self, conversation_id: str, message_id: str) -> MessageClaim | None:
        """See :meth:`GatewayState.message`."""
        held = self._messages.get((conversation_id, message_id))
        if held is None:
            return None
        return replace(held[0])

    async def hit(self, counters: Sequence[tuple[str, int, float]]) -> float | None:
        """See :meth:`GatewayState.hit`."""
        now = self._clock()
        wait: float | None = None
        if len(self._windows) > 100_000:  # bounded: drop the windows that are over
            self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        for key, limit, window in counters:
            count, ends = self._windows.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window
            count += 1
            self._windows[key] = (count, ends)
            if count > limit:
                wait = max(wait or 0.0, ends - now)
        return wait

    async def try_job(self, name: str, owner: str, ttl: float) -> bool:
        """See :meth:`GatewayState.try_job`."""
        now = self._clock()
        if self._jobs.get(name, -math.inf) > now:
            return False
        self._jobs[name] = now + ttl
        return True

    async def purge(self) -> None:
        """See :meth:`GatewayState.purge`."""
        self._expire(self._clock())

    async def ping(self) -> None:
        """Always answers."""

    async def listen(self, on_change: Callable[[str | None], None]) -> None:
        """No other process shares this state: nothing to report, ever."""
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        """Nothing to close."""

