"""What a turn costs the Redis store on each deployment: one node, a primary with two replicas (reached
directly, and through Sentinel), and a Redis Cluster (three primaries, three replicas), each with
``wait_replicas`` off and on, in one run.

``python -m bench.redis_topologies [--smoke] [--turns N] [--conversations C]``

Each set-up is started here, on loopback (tests/redis_topology.py; one ``redis-server`` of our own for the
single node), and runs the store calls of a turn (bench.store_cost's: take the lease, load the record, the
write-ahead save, the last save with its transcript entry that gives the lease up) through
``open_store(url)``: one turn at a time, then ``C`` conversations in flight. Printed per turn: this
process's CPU (``time.process_time``), the Redis servers' CPU (every data node of the set-up, replicas
included, from /proc; not the sentinels), Redis round trips (every write of a request to a Redis socket,
counted in redis-py's ``send_packed_command``: a pipeline is one) and wall time. The ratio lines compare
each set-up with the single node measured in the same run.

``wait_replicas=1`` makes the writes a turn is sent on wait for one replica's acknowledgement (``WAIT 1``,
pipelined with the write): on loopback a replica answers within microseconds, so the wall figure here is
a floor; across machines each such write pays one network round trip to the replica more.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.connection import AbstractConnection

from bench.common import header, us
from bench.store_cost import _proc_cpu, turn
from sessionforce.store import open_store


@dataclass
class Setup:
    """One deployment and setting: the store URL, and the server processes its CPU is read from."""

    name: str
    url: str
    pids: Callable[[], Sequence[int]]


class RoundTrips:
    """Counts every request written to a Redis socket by redis-py's asyncio connections in this process."""

    def __init__(self) -> None:
        self.count = 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[RoundTrips]:
        original = AbstractConnection.send_packed_command

        async def counted(connection: AbstractConnection, command: Any, check_health: bool = True) -> None:
            self.count += 1
            await original(connection, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
        try:
            yield self
        finally:
            AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


@contextlib.contextmanager
def setups() -> Iterator[list[Setup]]:
    """Every deployment this machine can start, single node first (the baseline)."""
    from tests.redis_server import throwaway_redis_server
    from tests.redis_topology import running_redis_cluster, running_redis_sentinel

    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise SystemExit("redis-server and redis-cli are needed (apt-get install redis-server)")
    with contextlib.ExitStack() as stack:
        single = stack.enter_context(throwaway_redis_server())
        port = int(single.rsplit(":", 1)[1].split("/")[0])
        single_pid = _pid_listening(port)
        found = [Setup("single", single, lambda: [single_pid])]
        sentinel = stack.enter_context(running_redis_sentinel())
        primary = sentinel.primary()
        data = [n.pid for n in sentinel.nodes]
        direct = f"redis://127.0.0.1:{primary.port}/0"
        cluster = stack.enter_context(running_redis_cluster())
        nodes = [n.pid for n in cluster.nodes]
        for name, url, pids in (("replicated", direct, data), ("sentinel", sentinel.url, data),
                                ("cluster", cluster.url, nodes)):
            found.append(Setup(name, url, lambda pids=pids: pids))
            found.append(Setup(f"{name}+wait1", url, lambda pids=pids: pids))
        yield found


def _pid_listening(port: int) -> int:
    """The pid of the redis-server on ``port`` (it tells: INFO server)."""
    import redis

    client = redis.Redis(port=port)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def store_url(setup: Setup, prefix: str) -> str:
    query = f"prefix={prefix}" + ("&wait_replicas=1" if setup.name.endswith("+wait1") else "")
    return f"{setup.url}{'&' if '?' in setup.url else '?'}{query}"


async def per_turn(setup: Setup, turns: int, conversations: int, trips: RoundTrips) -> dict[str, float]:
    """CPU (ours, the servers'), round trips and wall seconds per turn; ``conversations`` turns at once."""
    store: Any = open_store(store_url(setup, f"bench-{uuid.uuid4().hex[:8]}:"))
    try:
        ids = [f"c{n}" for n in range(conversations)]
        await asyncio.gather(*(turn(store, cid, "bench") for cid in ids))  # warm up: connections, records
        rounds = max(1, turns // conversations)
        pids = setup.pids()
        trips0, cpu0, server0, wall0 = trips.count, time.process_time(), _proc_cpu(pids), time.perf_counter()
        for _ in range(rounds):
            await asyncio.gather(*(turn(store, cid, "bench") for cid in ids))
        wall = time.perf_counter() - wall0
        done = rounds * conversations
        return {"cpu": (time.process_time() - cpu0) / done, "server": (_proc_cpu(pids) - server0) / done,
                "trips": (trips.count - trips0) / done, "wall": wall / done}
    finally:
        await store.aclose()


def ratio(mine: dict[str, float], base: dict[str, float], what: str) -> str:
    """``mine / base`` as ``1.23x``; ``n/a`` when the baseline read 0 (a CPU figure below /proc's 10 ms tick
    in a smoke run)."""
    return f"{mine[what] / base[what]:.2f}x" if base[what] else "n/a"


async def run(args: argparse.Namespace) -> None:
    trips = RoundTrips()
    with setups() as found, trips.counting():
        results: dict[tuple[str, int], dict[str, float]] = {}
        for conversations in (1, args.conversations):
            label = "one at a time" if conversations == 1 else f"{conversations} conversations in flight"
            print(f"\n## Store calls per turn, {label}")
            print(f"{'deployment':<18} {'our CPU':>10} {'Redis CPU':>10} {'round trips':>12} {'wall':>10}")
            for setup in found:
                try:
                    r = await per_turn(setup, args.turns, conversations, trips)
                except Exception as exc:  # a deployment this version cannot use: say so, measure the rest
                    print(f"{setup.name:<18} skipped: {type(exc).__name__}: {exc}")
                    continue
                results[(setup.name, conversations)] = r
                print(f"{setup.name:<18} {us(r['cpu']):>10} {us(r['server']):>10} {r['trips']:>12.2f} "
                      f"{us(r['wall']):>10}")
        print()
        for conversations in (1, args.conversations):
            base = results.get(("single", conversations))
            where = "one at a time" if conversations == 1 else f"{conversations} in flight"
            for setup in found[1:]:
                mine = results.get((setup.name, conversations))
                if base is None or mine is None:
                    continue
                print(f"RATIO redis topologies {where} | {setup.name} vs single, our CPU per turn: "
                      f"{ratio(mine, base, 'cpu')}; round trips: {ratio(mine, base, 'trips')}; "
                      f"Redis CPU: {ratio(mine, base, 'server')}; wall: {ratio(mine, base, 'wall')}")


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=2000, help="turns per deployment and setting")
    parser.add_argument("--conversations", type=int, default=100, help="conversations in flight at once")
    parser.add_argument("--smoke", action="store_true", help="a few seconds' worth")
    args = parser.parse_args(argv)
    if args.smoke:
        args.turns, args.conversations = 40, 10
    header("Redis store per turn: single node, replicated, Sentinel, Cluster; wait_replicas off and on")
    print(f"turns: {args.turns}; in flight: {args.conversations}; pid {os.getpid()}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
