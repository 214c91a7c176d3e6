"""A clock the test moves by hand: lease renewal timers and sleeps wait on it, never on real time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class _Timer:
    when: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeTime:
    """A :class:`~sessionforce.lifecycle._locks.LeaseClock` (and a wall clock for stores and options)
    that only moves when :meth:`advance` is awaited."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self._timers: list[_Timer] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(when, next(self._order), callback)
        heapq.heappush(self._timers, timer)
        return timer

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        self.call_at(self.now + max(0.0, seconds), lambda: woken.done() or woken.set_result(None))
        await woken

    def pending(self) -> int:
        """Timers set and not cancelled."""
        return sum(1 for t in self._timers if not t.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move time forward, firing each timer due on the way (in order) and letting what it woke run."""
        target = self.now + seconds
        while self._timers and self._timers[0].when <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.now = max(self.now, timer.when)
            timer.callback()
            await settle()
        self.now = target
        await settle()


async def settle() -> None:
    """Let every task that can run, run (the memory store answers without waiting)."""
    for _ in range(20):
        await asyncio.sleep(0)
