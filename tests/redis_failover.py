"""What the failover tests share: one face over a Redis Cluster and a Sentinel set-up (where does a
conversation live, kill its primary, wait for the promotion), a way to make a promotion lose writes on
purpose, and a gate that holds a store call until the test lets it go.

Losing a write on purpose (:meth:`Topology.cut_replication`): the replicas of the conversation's primary
are stopped (SIGSTOP) and the primary drops its links to them (``CLIENT KILL TYPE replica``); whatever the
primary acknowledges from then on reaches no replica, which cannot reconnect while stopped. Kill the
primary, then :meth:`Topology.thaw`: a replica is promoted without those writes, as a real primary dying
before its replicas caught up would leave it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from tests.redis_topology import (
    ClusterNode,
    RedisCluster,
    RedisSentinel,
    _wait_for,
    running_redis_cluster,
    running_redis_sentinel,
)

__all__ = ["Gate", "Topology", "running_topology"]

class Topology:
    """A Redis Cluster or a Sentinel set-up, as the failover tests use them."""

    def __init__(self, setup: RedisCluster | RedisSentinel) -> None:
        self.setup = setup
        self.kind = "cluster" if isinstance(setup, RedisCluster) else "sentinel"
        self._frozen: list[ClusterNode] = []

    def url(self, prefix: str, wait_replicas: int = 0) -> str:
        """The store URL, with our key prefix and ``wait_replicas``."""
        return f"{self.setup.url}?prefix={prefix}&wait_replicas={wait_replicas}"

    def owner(self, prefix: str, conversation_id: str) -> ClusterNode:
        """The primary holding the conversation's record (whatever hash tag the store gives its keys)."""
        if isinstance(self.setup, RedisSentinel):
            return self.setup.primary()
        for node in self.setup.nodes:
            if node.alive and node.role == "master" and node.client().keys(f"{prefix}*rec:{conversation_id}"):
                return node
        raise AssertionError(f"no primary holds a record of {conversation_id!r} under {prefix!r}")

    def replicas_of(self, primary: ClusterNode) -> list[ClusterNode]:
        """The live replicas of ``primary``."""
        if isinstance(self.setup, RedisCluster):
            return self.setup.replicas_of(primary)
        return [n for n in self.setup.nodes if n.alive and n is not primary]

    def wait_in_sync(self, primary: ClusterNode) -> None:
        """Wait until every replica of ``primary`` acknowledged everything it was sent."""

        def caught_up() -> bool | None:
            info = primary.info("replication")
            offsets = [v.get("offset") for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            want = len(self.replicas_of(primary))
            return True if len(offsets) == want and all(o == info["master_repl_offset"] for o in offsets) else None

        _wait_for(f"the replicas of {primary} catching up", caught_up, 10)

    def cut_replication(self, primary: ClusterNode) -> None:
        """From now on nothing ``primary`` acknowledges reaches a replica (see the module's docstring)."""
        self.wait_in_sync(primary)
        self._frozen = self.replicas_of(primary)
        for replica in self._frozen:
            replica.process.send_signal(19)  # SIGSTOP
        killed = primary.client().client_kill_filter(_type="replica")
        assert killed == len(self._frozen), f"{killed} replica links dropped, {len(self._frozen)} expected"

    def thaw(self) -> None:
        """SIGCONT the replicas :meth:`cut_replication` stopped."""
        for replica in self._frozen:
            replica.process.send_signal(18)  # SIGCONT
        self._frozen = []

    def kill(self, primary: ClusterNode) -> None:
        """SIGKILL ``primary``."""
        if isinstance(self.setup, RedisCluster):
            self.setup.kill(primary, self._frozen or None)
        else:
            primary.kill()

    def wait_promoted(self, old: ClusterNode, timeout: float = 20) -> ClusterNode:
        """Wait until a replica of the killed ``old`` serves in its place; returns it."""
        if isinstance(self.setup, RedisCluster):
            return self.setup.wait_promoted(old, timeout)
        self.setup._old_primary = old
        return self.setup.wait_failover(timeout)

    def heal(self, old: ClusterNode) -> None:
        """Give the promoted primary a replica again: a cluster shard lost its only one (the old primary
        comes back, empty, as its replica); a Sentinel set-up kept the second replica, so nothing to do."""
        if isinstance(self.setup, RedisCluster):
            self.setup.restart(old)

    async def fail_over(self, primary: ClusterNode, *, thaw: bool = False) -> ClusterNode:
        """Kill ``primary`` (thawing the replicas a cut stopped, once it is dead) and wait for the
        promotion, off the event loop (the store's connections keep running meanwhile)."""
        await asyncio.to_thread(self.kill, primary)
        if thaw:
            self.thaw()
        return await asyncio.to_thread(self.wait_promoted, primary)


@contextlib.contextmanager
def running_topology(kind: str) -> Iterator[Topology]:
    """A fresh ``"cluster"`` or ``"sentinel"`` set-up for one test; stopped (replicas thawed) on exit."""
    starter = running_redis_cluster if kind == "cluster" else running_redis_sentinel
    with starter() as setup:
        topology = Topology(setup)
        try:
            yield topology
        finally:
            topology.thaw()


class Gate:
    """Holds the calls of one store method that ``when`` picks (a store object's attribute is replaced)
    until :meth:`open`; :attr:`reached` is set when the first one arrives."""

    def __init__(self, store: Any, method: str, when: Callable[..., bool] = lambda *a, **k: True) -> None:
        self.reached = asyncio.Event()
        self._open = asyncio.Event()
        self.held = 0
        original: Callable[..., Awaitable[Any]] = getattr(store, method)

        async def gated(*args: Any, **kwargs: Any) -> Any:
            if not self._open.is_set() and when(*args, **kwargs):
                self.held += 1
                self.reached.set()
                await self._open.wait()
            return await original(*args, **kwargs)

        setattr(store, method, gated)

    def open(self) -> None:
        """Let the held call (and every later one) through."""
        self._open.set()
