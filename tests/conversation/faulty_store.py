"""A memory store that fails on cue, as a store does when its backend goes away (the real backends are
broken for real in tests/conversation/test_redis_down.py and tests/adversarial/)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sessionforce.errors._build import store_unavailable
from sessionforce.store import MemoryStore

WRITES = ("save", "append_transcript", "release")


class FaultyStore(MemoryStore):
    """``store.broken`` names the operations that fail (all of them, until mended); ``store.fail(op,
    skip=n)`` fails the next ``op`` after letting ``n`` through, once."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.broken: set[str] = set()
        self._once: dict[str, int] = {}
        self.failures: list[str] = []

    def break_(self, *operations: str) -> None:
        self.broken.update(operations or WRITES)

    def mend(self) -> None:
        self.broken.clear()
        self._once.clear()

    def fail(self, operation: str, *, skip: int = 0) -> None:
        self._once[operation] = skip

    def _check(self, operation: str) -> None:
        if operation in self._once:
            if self._once[operation] == 0:
                del self._once[operation]
                self._raise(operation)
            self._once[operation] -= 1
        if operation in self.broken:
            self._raise(operation)

    def _raise(self, operation: str) -> None:
        self.failures.append(operation)
        raise store_unavailable("FaultyStore", operation, "injected failure")

    async def save(self, *args: Any, **kwargs: Any) -> Any:
        self._check("save")
        return await super().save(*args, **kwargs)

    async def append_transcript(self, *args: Any, **kwargs: Any) -> None:
        self._check("append_transcript")
        await super().append_transcript(*args, **kwargs)

    async def acquire(self, *args: Any, **kwargs: Any) -> Any:
        self._check("acquire")
        return await super().acquire(*args, **kwargs)

    async def release(self, *args: Any, **kwargs: Any) -> None:
        self._check("release")
        await super().release(*args, **kwargs)

    async def load(self, *args: Any, **kwargs: Any) -> Any:
        self._check("load")
        return await super().load(*args, **kwargs)
