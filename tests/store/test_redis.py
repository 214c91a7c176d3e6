"""What only the Redis store promises: key layout, retention, index upkeep, and failing cleanly when Redis is down."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sessionforce.errors import ConfigError, StoreUnavailable
from sessionforce.store import ConversationRecord, ConversationStatus, RedisStore, TranscriptEntry
from sessionforce.store._redis import redact_url

DAY = 24 * 3600.0


def record(cid: str, **fields: object) -> ConversationRecord:
    values: dict[str, object] = {"agent_id": "a", "external_session_key": "k", "created_at": 1.0}
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
    lease = await store.acquire(cid, owner="host:1:task", ttl=5.0, wait=0)
    await store.save(record(cid, status=ConversationStatus.ACTIVE, last_activity_at=42.5), fence=lease.fence)
    await store.append_transcript(cid, TranscriptEntry(kind="turn", at=1.0), fence=lease.fence)
    p = redis_prefix
    assert await raw.get(f"{p}lease:{cid}") == f"host:1:task|{lease.fence}"
    assert await raw.get(f"{p}fence:{cid}") == str(lease.fence)
    assert await raw.ttl(f"{p}fence:{cid}") == -1  # the fence counter never expires
    assert 0 < await raw.pttl(f"{p}lease:{cid}") <= 5000
    for key in (f"{p}rec:{cid}", f"{p}tx:{cid}"):
        assert 2 * DAY - 60 < await raw.ttl(key) <= 2 * DAY
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
        assert "cannot be reached" in message
        assert "nothing was sent to the agent" in message
        assert "hunter2secret" not in message
    await store.aclose()


def test_a_malformed_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError, match="SESSIONFORCE_STORE") as caught:
        RedisStore.from_url("redis://:hunter2secret@127.0.0.1:notaport/0")
    assert "hunter2secret" not in str(caught.value)
    assert redact_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
