"""What only the Redis store promises: key layout, retention, index upkeep, and failing cleanly when Redis is down."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from sessionforce.errors import ConfigError, CorruptRecord, InvalidArgument, StoreUnavailable
from sessionforce.errors._redact import redact_url
from sessionforce.store import ConversationRecord, ConversationStatus, RedisStore, TranscriptEntry

DAY = 24 * 3600.0


def record(cid: str, **fields: Any) -> ConversationRecord:
    values: dict[str, Any] = {"agent_id": "a", "external_session_key": "k", "created_at": 1.0}
    values.update({"last_activity_at": 2.0, **fields})
    return ConversationRecord(conversation_id=cid, **values)


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client on the same Redis, to look at the keys behind the store's back."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(redis_url, prefix=redis_prefix, retention=2 * DAY)
    yield s
    await s.aclose()


async def test_key_layout_and_retention(store: RedisStore, raw: aioredis.Redis, redis_prefix: str) -> None:
    cid = "odd id: *?[x]|{y} \n ü"  # ids may hold any characters
    before = time.time()
    lease = await store.acquire(cid, owner="host:1|task", ttl=5.0, wait=0)  # owners too, "|" included
    await store.save(record(cid, status=ConversationStatus.ACTIVE, last_activity_at=42.5), lease=lease)
    await store.append_transcript(cid, TranscriptEntry(kind="turn", at=1.0), lease=lease)
    p = redis_prefix
    assert await raw.get(f"{p}lease:{cid}") == f"host:1|task|{lease.fence}"
    assert await raw.get(f"{p}fence:{cid}") == str(lease.fence)
    assert lease.fence >= int(before * 1_000_000) - 2_000_000  # from the server's clock (in microseconds)
    assert 0 < await raw.pttl(f"{p}lease:{cid}") <= 5000
    for key in (f"{p}rec:{cid}", f"{p}tx:{cid}", f"{p}fence:{cid}"):
        assert 2 * DAY - 60 < await raw.ttl(key) <= 2 * DAY
    assert 0 < await raw.pttl(f"{p}wid:{cid}") <= 60_000  # the last write's id, to recognise a resend
    assert await raw.zscore(f"{p}idx:active", cid) == 42.5
    assert await raw.zscore(f"{p}idx:idle", cid) is None
    assert (await store.load(cid)) is not None
    await store.release(lease)
    assert await raw.exists(f"{p}lease:{cid}") == 0
    await store.delete(cid)
    assert sorted(await raw.keys(f"{p}*")) == [f"{p}fence:{cid}"]  # only the fence counter stays


async def test_a_save_refreshes_the_retention_of_record_and_transcript(
    store: RedisStore, raw: aioredis.Redis, redis_prefix: str
) -> None:
    saved = await store.save(record("c1"))
    await store.append_transcript("c1", TranscriptEntry(kind="turn", at=1.0))
    await raw.expire(f"{redis_prefix}rec:c1", 10)
    await raw.expire(f"{redis_prefix}tx:c1", 10)
    await store.save(saved)
    assert await raw.ttl(f"{redis_prefix}rec:c1") > 10
    assert await raw.ttl(f"{redis_prefix}tx:c1") > 10


async def test_expired_records_drop_out_of_the_listing_and_the_index(
    store: RedisStore, raw: aioredis.Redis, redis_prefix: str
) -> None:
    for i in range(6):
        await store.save(record(f"c{i}", last_activity_at=float(i)))
    await raw.delete(f"{redis_prefix}rec:c1", f"{redis_prefix}rec:c2")  # as if retention ran out
    listed = await store.list_conversations(limit=3)
    assert [r.conversation_id for r in listed] == ["c0", "c3", "c4"]  # the limit is still filled
    assert await raw.zrange(f"{redis_prefix}idx:idle", 0, -1) == ["c0", "c3", "c4", "c5"]


async def test_a_client_passed_in_is_left_open(redis_url: str, redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    store = RedisStore(client, prefix=redis_prefix)
    await store.load("c1")
    await store.aclose()
    assert await client.ping()
    await client.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens once the socket is closed


async def test_redis_down_is_store_unavailable_without_the_password() -> None:
    port = _closed_port()
    store = RedisStore.from_url(f"redis://:hunter2secret@127.0.0.1:{port}/3", socket_connect_timeout=1)
    for call in (store.load("c1"), store.acquire("c1", owner="me", ttl=1, wait=0), store.save(record("c1"))):
        with pytest.raises(StoreUnavailable) as caught:
            await call
        message = str(caught.value)
        assert f"127.0.0.1:{port}/3" in message
        assert "ConnectionError" in message
        assert "sent" not in message  # the store cannot know what became of a turn: the lifecycle says
        assert caught.value.delivery is None
        assert "hunter2secret" not in message
    await store.aclose()


def test_a_malformed_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError, match="not a valid Redis URL") as caught:
        RedisStore.from_url("redis://:hunter2secret@127.0.0.1:notaport/0")
    assert "hunter2secret" not in str(caught.value)
    assert "SESSIONFORCE_STORE" not in str(caught.value)  # from_url is given its URL; open_store names the variable
    assert redact_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


async def test_a_release_in_another_process_wakes_a_waiter_at_once(redis_url: str, redis_prefix: str) -> None:
    """Pub/sub: the waiter's poll is not what wakes it (its timeout here is 5 s)."""
    holder = RedisStore.from_url(redis_url, prefix=redis_prefix)
    waiter = RedisStore.from_url(redis_url, prefix=redis_prefix)  # another connection, as another process
    try:
        lease = await holder.acquire("c1", owner="A", ttl=30.0, wait=0)
        for _ in range(3):  # each time: subscribe, be woken, unsubscribe later
            assert isinstance(await waiter.try_acquire("c1", owner="B", ttl=5.0), float)
            waiting = asyncio.create_task(waiter.wait_released("c1", 5.0))
            await asyncio.sleep(0.1)  # the subscription lands
            assert not waiting.done()
            started = time.monotonic()
            await holder.release(lease)
            await asyncio.wait_for(waiting, 2.0)
            assert time.monotonic() - started < 1.0
            lease = await holder.acquire("c1", owner="A", ttl=30.0, wait=0)
        await holder.save(record("c1"), lease=lease, release=True)  # a final save wakes too
        taken = await waiter.acquire("c1", owner="B", ttl=5.0, wait=5.0)
        assert taken.owner == "B"
    finally:
        await holder.aclose()
        await waiter.aclose()


async def test_a_waiter_still_gets_the_lease_when_notifications_are_lost(redis_url: str, redis_prefix: str) -> None:
    """The poll is the fallback: a release that publishes to nobody (the waiter subscribed too late, or its
    pub/sub connection is down) costs at most one poll, never the holder's ttl."""
    holder = RedisStore.from_url(redis_url, prefix=redis_prefix)
    waiter = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        lease = await holder.acquire("c1", owner="A", ttl=30.0, wait=0)
        await waiter._listener._reset(float("inf"))  # notifications off for good: waits only poll
        taking = asyncio.create_task(waiter.acquire("c1", owner="B", ttl=5.0, wait=10.0))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await holder.release(lease)
        taken = await asyncio.wait_for(taking, 2.0)
        assert taken.owner == "B"
        assert time.monotonic() - started < 0.5  # within a poll (<= 50 ms) or so
    finally:
        await holder.aclose()
        await waiter.aclose()


# -- issue 11 finding 8: our own errors, never raw ones -------------------------------------------------


async def test_a_damaged_value_is_corrupt_record_naming_it_and_never_hides_the_others(
    store: RedisStore, raw: aioredis.Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    for cid in ("good-1", "damaged", "good-2"):
        await store.save(record(cid, last_activity_at=float(len(cid))))
        await store.append_transcript(cid, TranscriptEntry(kind="turn", at=1.0))
    await raw.set(f"{redis_prefix}rec:damaged", '{"conversation_id": "dam', keepttl=True)
    await raw.lset(f"{redis_prefix}tx:damaged", 0, "[1, 2")
    for read in (store.load("damaged"), store.transcript("damaged")):
        with pytest.raises(CorruptRecord, match="'damaged'") as caught:
            await read
        assert "What to do" in str(caught.value)
    with pytest.raises(CorruptRecord, match="'damaged'"):  # the save script reads the stored version
        await store.save(record("damaged", version=1))
    with caplog.at_level(logging.WARNING, logger="sessionforce.store"):
        listed = await store.list_conversations()
    assert [r.conversation_id for r in listed] == ["good-1", "good-2"]
    assert "damaged" in caplog.text
    await store.delete("damaged")
    assert (await store.save(record("damaged"))).version == 1


async def test_a_conversation_id_that_is_not_unicode_text_is_invalid_argument(store: RedisStore) -> None:
    bad = "ticket-\udc80-42"
    calls = [
        store.load(bad),
        store.try_acquire(bad, owner="me", ttl=5.0),
        store.transcript(bad),
        store.append_transcript(bad, TranscriptEntry(kind="turn", at=1.0)),
        store.delete(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidArgument, match="conversation id"):
            await call
    with pytest.raises(InvalidArgument, match="conversation"):
        await store.save(record(bad))
    with pytest.raises(InvalidArgument, match="text"):
        await store.save(record("fine"), transcript=[TranscriptEntry(kind="turn", at=1.0, text="bad \ud800")])
    assert await store.load("fine") is None
    assert (await store.save(record("fine"))).version == 1  # the connection is still good


# -- issue 19: what a single Redis keeps from before, and bursts --------------------------------------------


async def test_records_written_by_earlier_versions_are_read_listed_and_carried_on(
    redis_url: str, redis_prefix: str, raw: aioredis.Redis
) -> None:
    """One primary keeps the key layout every earlier version wrote (only a cluster uses hash tags), so an
    upgrade reads what is stored: the keys below are written by hand exactly as the previous version did."""
    p = redis_prefix
    old = record("ticket-7", version=3, last_activity_at=50.0)
    await raw.set(f"{p}rec:ticket-7", old.to_json(), px=60_000)
    await raw.rpush(f"{p}tx:ticket-7", TranscriptEntry(kind="turn", at=1.0, text="before").to_json())
    await raw.set(f"{p}fence:ticket-7", "9" * 17, px=60_000)  # a fence from the future: must stay dead
    await raw.zadd(f"{p}idx:idle", {"ticket-7": 50.0})
    store = RedisStore.from_url(redis_url, prefix=p)
    try:
        assert await store.load("ticket-7") == old
        assert [r.conversation_id for r in await store.list_conversations()] == ["ticket-7"]
        lease = await store.acquire("ticket-7", owner="new-version", ttl=5.0, wait=0)
        assert lease.fence == 10**17  # above the stored counter
        saved = await store.save(old.replace(turns=1), lease=lease, transcript=[TranscriptEntry(kind="turn", at=2.0)],
                                 release=True)
        assert saved.version == 4
        assert [e.text for e in await store.transcript("ticket-7")] == ["before", None]
        assert await raw.zscore(f"{p}idx:idle", "ticket-7") == 50.0
        kept = [f"{p}{kind}:ticket-7" for kind in ("rec", "tx", "fence", "wid")] + [f"{p}idx:idle"]
        assert sorted(await raw.keys(f"{p}*")) == sorted(kept)
    finally:
        await store.aclose()


async def test_a_burst_of_a_thousand_calls_queues_for_connections(redis_url: str, redis_prefix: str) -> None:
    """redis-py's asyncio pool raises MaxConnectionsError past its size (the previous version failed 900 of
    these 1000 loads); the store bounds its calls in flight (pool_max) and queues the rest."""
    store = RedisStore.from_url(f"{redis_url}?pool_max=4", prefix=redis_prefix)
    try:
        assert await asyncio.gather(*(store.load(f"c{i}") for i in range(1000))) == [None] * 1000
        assert len(store._client.connection_pool._in_use_connections) + len(
            store._client.connection_pool._available_connections) <= 5
    finally:
        await store.aclose()
