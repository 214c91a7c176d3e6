"""The Redis store on a real Redis Cluster (three primaries, three replicas, started for this file): the
whole store contract suite and the multi-process tests (adopted from test_contract.py and
test_multiprocess.py), plus what only a cluster shows: one hash slot per conversation, indexes spread over
every primary, listings merged across buckets and nodes, release notifications on the owning shard."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sessionforce.errors import ConfigError, StoreUnavailable
from sessionforce.store import (
    ConversationRecord,
    ConversationStatus,
    Lease,
    PendingTurn,
    RedisStore,
    TranscriptEntry,
    open_store,
)
from sessionforce.store._redis_keys import BUCKETS
from tests.redis_server import unique_prefix
from tests.redis_topology import RedisCluster, running_redis_cluster
from tests.store.topology_suite import TopologyHarness, adopt, delete_everywhere, harness, primaries

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    """One cluster for the whole file."""
    with running_redis_cluster() as running:
        yield running


@pytest.fixture
async def h(cluster: RedisCluster, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TopologyHarness]:
    """The contract suite's harness on the cluster."""
    async for each in harness(cluster.url, [n.port for n in cluster.nodes], request, tmp_path):
        yield each


@pytest.fixture
def location(cluster: RedisCluster) -> Iterator[tuple[str, str, str]]:
    """The multi-process tests' store: the cluster, under a fresh prefix."""
    prefix = unique_prefix()
    yield "redis", cluster.url, prefix
    delete_everywhere([n.port for n in cluster.nodes], prefix)


adopt(globals())


def record(cid: str, **fields: Any) -> ConversationRecord:
    values: dict[str, Any] = {"agent_id": "a", "external_session_key": "k", "created_at": 1.0}
    values.update({"last_activity_at": 2.0, **fields})
    return ConversationRecord(conversation_id=cid, **values)


@pytest.fixture
async def store(cluster: RedisCluster) -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(cluster.url, prefix=unique_prefix())
    yield s
    await s.aclose()


def _all_keys(cluster: RedisCluster, prefix: str) -> dict[str, int]:
    """Every key under ``prefix`` on every primary, with the port of the primary holding it."""
    found: dict[str, int] = {}
    for client in primaries([n.port for n in cluster.nodes]):
        port = client.connection_pool.connection_kwargs["port"]
        found.update({key.decode(): port for key in client.scan_iter(match=f"{prefix}*", count=1000)})
        client.close()
    return found


async def test_every_key_of_a_conversation_is_in_one_slot_with_its_bucket_indexes(
    store: RedisStore, cluster: RedisCluster
) -> None:
    cid = "odd id: *?[x]|{y} \n ü"  # braces in the id do not move its slot: the bucket's tag comes first
    lease = await store.acquire(cid, owner="w", ttl=5.0, wait=0)
    await store.save(record(cid, status=ConversationStatus.ACTIVE), lease=lease)
    await store.append_transcript(cid, TranscriptEntry(kind="turn", at=1.0), lease=lease)
    keys = _all_keys(cluster, store._prefix)
    bucket = store._keys.bucket(cid)
    p = f"{store._prefix}{{{bucket}}}"
    expected = [f"{p}{kind}:{cid}" for kind in ("rec", "tx", "lease", "fence", "wid")] + [f"{p}idx:active"]
    assert sorted(keys) == sorted(expected)
    client = redis.Redis(host="127.0.0.1", port=cluster.nodes[0].port)
    assert {client.cluster("keyslot", key) for key in keys} == {client.cluster("keyslot", f"{{{bucket}}}")}
    client.close()
    assert len(set(keys.values())) == 1


async def test_listing_merges_every_bucket_on_every_primary_oldest_first(
    store: RedisStore, cluster: RedisCluster
) -> None:
    ids = [f"conv-{i}" for i in range(300)]
    for i, cid in enumerate(ids):
        status = ConversationStatus.ACTIVE if i % 3 == 0 else ConversationStatus.IDLE
        await store.save(record(cid, status=status, last_activity_at=float(1000 - i)))
    keys = _all_keys(cluster, store._prefix)
    indexes = {key: port for key, port in keys.items() if ":idx:" in key or "}idx:" in key}
    assert len({store._keys.bucket(cid) for cid in ids}) > BUCKETS // 2
    assert len(set(indexes.values())) == 3  # the indexes live on all three primaries: no hot key
    newest_first = list(reversed(ids))
    assert [r.conversation_id for r in await store.list_conversations(limit=1000)] == newest_first
    assert [r.conversation_id for r in await store.list_conversations(limit=7)] == newest_first[:7]
    idle = [cid for i, cid in enumerate(ids) if i % 3]
    listed = await store.list_conversations(status=ConversationStatus.IDLE, limit=150)
    assert [r.conversation_id for r in listed] == list(reversed(idle))[:150]
    old = await store.list_conversations(idle_for=100.0, now=1000.0 - 150, limit=1000)  # activity <= 750
    assert [r.conversation_id for r in old] == newest_first[:50]


async def test_entries_of_expired_records_are_dropped_across_buckets(store: RedisStore, cluster: RedisCluster) -> None:
    ids = [f"c{i}" for i in range(40)]
    for i, cid in enumerate(ids):
        await store.save(record(cid, last_activity_at=float(i)))
    gone = ids[::2]  # as if retention ran out for every other record, on every node
    for client in primaries([n.port for n in cluster.nodes]):
        for cid in gone:
            with contextlib.suppress(redis.ResponseError):  # MOVED: another primary holds it
                client.delete(store._keys.key("rec", cid))
        client.close()
    listed = await store.list_conversations(limit=10)
    assert [r.conversation_id for r in listed] == ids[1::2][:10]  # the limit is still filled
    assert [r.conversation_id for r in await store.list_conversations()] == ids[1::2]
    remaining = [key for key in _all_keys(cluster, store._prefix) if "idx:" in key]
    members = 0
    for client in primaries([n.port for n in cluster.nodes]):
        for key in remaining:
            with contextlib.suppress(redis.ResponseError):
                members += client.zcard(key)
        client.close()
    assert members == len(ids) - len(gone)


async def test_a_release_wakes_a_waiter_in_another_process_through_the_owning_shard(
    cluster: RedisCluster,
) -> None:
    prefix = unique_prefix()
    holder = RedisStore.from_url(cluster.url, prefix=prefix)
    waiter = RedisStore.from_url(cluster.url, prefix=prefix)
    ids = ("a", "b", "c", "d")
    assert len({cluster.primary_for(holder._keys.key("rec", cid)).port for cid in ids}) >= 2
    try:
        for cid in ids:  # conversations whose slots live on different primaries
            lease = await holder.acquire(cid, owner="A", ttl=30.0, wait=0)
            assert isinstance(await waiter.try_acquire(cid, owner="B", ttl=5.0), float)  # as the waiting loop does
            waiting = asyncio.create_task(waiter.wait_released(cid, 5.0))
            await asyncio.sleep(0.3)  # the subscription lands
            assert not waiting.done()
            started = time.monotonic()
            await holder.save(record(cid), lease=lease, release=True)
            await asyncio.wait_for(waiting, 2.0)
            assert time.monotonic() - started < 1.0
    finally:
        await holder.aclose()
        await waiter.aclose()


async def test_wait_replicas_acknowledges_the_lease_and_the_write_ahead(cluster: RedisCluster) -> None:
    store = RedisStore.from_url(f"{cluster.url}?wait_replicas=1&wait_timeout=2", prefix=unique_prefix())
    try:
        lease = await store.acquire("c1", owner="w", ttl=5.0, wait=0)
        pending = PendingTurn(sequence_id=1, session_id="s", text="hi", started_at=1.0, owner="w")
        saved = await store.save(record("c1", pending=pending), lease=lease)
        await store.renew(lease, ttl=5.0)
        await store.save(saved.replace(pending=None), lease=lease, release=True)
    finally:
        await store.aclose()
    prefix = unique_prefix()
    too_many = RedisStore.from_url(f"{cluster.url}?wait_replicas=2&wait_timeout=0.1", prefix=prefix)
    plain = RedisStore.from_url(cluster.url, prefix=prefix)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="only 1 of 2 replicas acknowledged") as caught:
            await too_many.acquire("c2", owner="w", ttl=5.0, wait=0)
        assert 0.1 <= time.monotonic() - started < 1.0
        assert "lower wait_replicas" in str(caught.value)
        taken = await plain.try_acquire("c2", owner="other", ttl=5.0)  # the unacknowledged lease was let go
        assert isinstance(taken, Lease)
        with pytest.raises(StoreUnavailable, match="only 1 of 2"):  # nor is a write-ahead taken as safe
            await too_many.save(record("c2", pending=pending), lease=taken)
    finally:
        await too_many.aclose()
        await plain.aclose()


def test_cluster_urls_are_parsed_and_bad_ones_refused_without_the_password() -> None:
    store = open_store("rediss+cluster://:hunter2secret@10.0.0.1:7000,[::1]:7001/?prefix=app:&pool_max=7")
    assert repr(store) == "RedisStore('rediss+cluster://10.0.0.1:7000,[::1]:7001', prefix='app:')"
    for bad, says in [
        ("redis+cluster://:hunter2secret@h:1/3", "only database 0"),
        ("redis+cluster://:hunter2secret@h:x", "bad port"),
        ("redis+cluster://:hunter2secret@h:1?colour=red", "'colour'"),
        ("redis+cluster://:hunter2secret@h:1?wait_replicas=-1", "wait_replicas"),
        ("redis+cluster://:hunter2secret@h:1?prefix={x}", "braces"),
    ]:
        with pytest.raises(ConfigError) as caught:
            open_store(bad)
        assert says in str(caught.value)
        assert "hunter2secret" not in str(caught.value)


async def _turn(store: RedisStore, cid: str, owner: str) -> int:
    lease = await store.acquire(cid, owner=owner, ttl=30.0, wait=30.0)
    saved = await store.save(await store.load(cid) or record(cid), lease=lease, release=True)
    return saved.version


async def test_a_thousand_concurrent_turns_queue_for_connections_instead_of_failing(cluster: RedisCluster) -> None:
    """redis-py's cluster client raises MaxConnectionsError once a node's connections are all in use; the
    store bounds the calls in flight (pool_max) and queues the rest, so a burst never fails for it."""
    store = RedisStore.from_url(f"{cluster.url}?pool_max=8", prefix=unique_prefix())
    try:
        versions = await asyncio.gather(*(_turn(store, f"c{i % 250}", f"w{i}") for i in range(1000)))
        assert sorted(versions) == sorted([1, 2, 3, 4] * 250)
        node_pools = store._client.get_nodes()
        assert max(len(node._connections) for node in node_pools) <= 9
    finally:
        await store.aclose()
    starved = RedisStore.from_url(f"{cluster.url}?pool_max=1&pool_timeout=0.05", prefix=unique_prefix())
    try:
        results = await asyncio.gather(*(starved.load(f"c{i}") for i in range(200)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, StoreUnavailable)]
        assert failures, "200 loads on one connection within 0.05 s each should not all have fitted"
        assert "out of connections: all 1 in use for 0.05 s" in str(failures[0])
        assert "raise pool_max" in str(failures[0])
        assert all(r is None or isinstance(r, StoreUnavailable) for r in results)
    finally:
        await starved.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens once the socket is closed


@pytest.mark.parametrize("scheme", ["redis+cluster", "redis+sentinel"])
async def test_no_reachable_node_is_store_unavailable_naming_the_store_without_the_password(scheme: str) -> None:
    ports = f"127.0.0.1:{_closed_port()},127.0.0.1:{_closed_port()}"
    service = "/mymaster" if scheme == "redis+sentinel" else ""
    store = RedisStore.from_url(f"{scheme}://:hunter2secret@{ports}{service}?socket_connect_timeout=0.5")
    try:
        for call in (store.load("c1"), store.acquire("c1", owner="me", ttl=1, wait=0), store.save(record("c1"))):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await call
            assert time.monotonic() - started < 5.0
            message = str(caught.value)
            assert f"Redis at {scheme}://{ports}{service}" in message
            assert "hunter2secret" not in message
            assert caught.value.delivery is None  # the store cannot know what became of a turn: the lifecycle says
            assert len(message) < 800
    finally:
        await store.aclose()
