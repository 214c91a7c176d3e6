"""Run the store contract suite and the multi-process tests on a Redis Cluster or a Sentinel set-up.

``test_redis_cluster.py`` and ``test_redis_sentinel.py`` each start one set-up for the whole file (one per
xdist worker: ``--dist loadfile``), then take every contract test of ``test_contract.py`` and both tests of
``test_multiprocess.py`` as their own (:func:`adopt`), with the fixtures ``h`` and ``location`` pointed at
their set-up. So each promise is proved on the real topology: a script or pipeline that touched keys of two
hash slots would be refused by the cluster and fail its test.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from sessionforce.store import RedisStore
from tests.redis_server import unique_prefix
from tests.store import test_contract as contract
from tests.store import test_multiprocess as multiprocess

__all__ = ["TopologyHarness", "adopt", "delete_everywhere", "harness", "primaries"]


def primaries(ports: list[int]) -> list[redis.Redis]:
    """Plain clients on every data node of ``ports`` that is a primary now."""
    clients = []
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=5.0)
        try:
            if client.execute_command("ROLE")[0] in (b"master", "master"):
                clients.append(client)
                continue
        except redis.ConnectionError:
            pass  # a node killed by another test of the file
        client.close()
    return clients


def delete_everywhere(ports: list[int], prefix: str) -> None:
    """Delete every key under ``prefix`` on every primary (one key per DEL: a cluster node refuses a
    multi-key command across slots)."""
    for client in primaries(ports):
        pipe = client.pipeline(transaction=False)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            pipe.delete(key)
        pipe.execute()
        client.close()


class TopologyHarness(contract.Harness):
    """The contract suite's harness on a topology: losing state empties every primary (Redis restarted
    empty everywhere, or a replica promoted that had nothing yet)."""

    ports: list[int]
    prefix: str

    async def lose_state(self) -> None:
        """Delete every key of this test's prefix on every primary (the store stays open)."""
        delete_everywhere(self.ports, self.prefix)


async def harness(url: str, ports: list[int], request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[
        TopologyHarness]:
    """The body of an ``h`` fixture: a store on ``url`` under a fresh prefix, leases on the server's clock."""
    prefix = unique_prefix()
    store = RedisStore.from_url(url, prefix=prefix)
    # Leases expire on the servers' clock: 0.5 s, not the single server's 0.2 s, as six or seven Redis
    # processes share the machine with the other test workers (a 0.12 s step must not overrun a lease).
    h = TopologyHarness("redis", store, 0.5, None, request, tmp_path)
    h.ports, h.prefix = ports, prefix
    try:
        yield h
    finally:
        await h.lose_state()
        await h.store.aclose()


def adopt(namespace: dict[str, Any]) -> None:
    """Make the contract tests that use ``h`` and the multi-process tests tests of the calling module."""
    tests: dict[str, Callable[..., Any]] = {}
    for module, fixture in ((contract, "h"), (multiprocess, "location")):
        for name, function in vars(module).items():
            if name.startswith("test_") and fixture in inspect.signature(function).parameters:
                tests[name] = function
    namespace.update(tests)
