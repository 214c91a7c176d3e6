"""Stores that fail in the middle of a turn, on cue: an emulated agent breaks the store the moment it
accepts the turn (so the pending turn is already written and the request has provably reached the agent),
then answers after ``latency_ms``.

Kinds: ``redis-killed`` (SIGKILL of our redis-server), ``sqlite-full`` (the tmpfs under the database is
filled to the last byte) and ``sqlite-locked`` (another connection holds the write lock).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import pytest

from sessionforce.emulator import CallableAgent, TurnContext
from tests.adversarial import _harness
from tests.adversarial._disk import SmallDisk, WriteLockHolder, small_disk_or_skip
from tests.adversarial._redis_proc import RedisProcess, redis_binary_or_skip

__all__ = ["KINDS", "StoreFault", "breaking_agent", "store_fault"]

KINDS = ("redis-killed", "sqlite-full", "sqlite-locked")


class StoreFault(Protocol):
    """A store, and how to break and mend it."""

    name: str

    def store(self) -> _harness.Store:
        """A store on the backend this fault breaks."""
        ...

    def break_(self) -> None:
        """Make the store fail (called from the emulator's thread, mid-turn)."""
        ...

    def mend(self) -> None:
        """Make it work again."""
        ...


class _RedisKilled:
    name = "redis-killed"

    def __init__(self, process: RedisProcess) -> None:
        self.process = process

    def store(self) -> _harness.Store:
        return _harness.redis_store(self.process.url, socket_timeout=1.0, socket_connect_timeout=0.5)

    def break_(self) -> None:
        self.process.kill()

    def mend(self) -> None:
        if self.process.process is None or self.process.process.poll() is not None:
            self.process.start()


class _DiskFull:
    name = "sqlite-full"

    def __init__(self, disk: SmallDisk) -> None:
        self.disk = disk

    def store(self) -> _harness.Store:
        return _harness.sqlite_store(self.disk.path / "sessions.db")

    def break_(self) -> None:
        self.disk.fill()

    def mend(self) -> None:
        self.disk.free()


class _Locked:
    name = "sqlite-locked"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.holder = WriteLockHolder(path)

    def store(self) -> _harness.Store:
        return _harness.sqlite_store(self.path, busy_timeout=0.5)

    def break_(self) -> None:
        self.holder.take()

    def mend(self) -> None:
        self.holder.release()


class store_fault:
    """``with store_fault(kind, tmp_path) as fault:`` the fault's backend for the block (skips when the
    machine cannot provide it: no redis-server outside CI, no tmpfs without root)."""

    def __init__(self, kind: str, scratch: Path) -> None:
        self.kind = kind
        self.scratch = scratch
        self._exit: list[object] = []

    def __enter__(self) -> StoreFault:
        if self.kind == "redis-killed":
            process = RedisProcess(redis_binary_or_skip()).start()
            self._exit.append(process)
            self.fault: StoreFault = _RedisKilled(process)
        elif self.kind == "sqlite-full":
            disk_cm = small_disk_or_skip("2m")
            disk = disk_cm.__enter__()
            self._exit.append(disk_cm)
            self.fault = _DiskFull(disk)
        elif self.kind == "sqlite-locked":
            self.fault = _Locked(self.scratch / "sessions.db")
        else:  # pragma: no cover - a typo in a test
            pytest.fail(f"unknown store fault {self.kind!r}")
        return self.fault

    def __exit__(self, *exc_info: object) -> None:
        self.fault.mend()
        for resource in reversed(self._exit):
            resource.__exit__(None, None, None)  # type: ignore[attr-defined]


def breaking_agent(fault: StoreFault, *, latency_ms: float, trigger: str = "break") -> CallableAgent:
    """An echo agent that breaks ``fault``'s store when it accepts a turn whose text starts with ``trigger``
    (once), then answers after ``latency_ms``."""
    fired = threading.Event()

    def respond(ctx: TurnContext) -> str:
        if ctx.text.startswith(trigger) and not fired.is_set():
            fired.set()
            fault.break_()
        return f"You said: {ctx.text}"

    return CallableAgent(respond, name=f"Breaker-{fault.name}", latency_ms=latency_ms)
