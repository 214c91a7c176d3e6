"""The Redis store on a real Sentinel set-up (one primary, two replicas, three sentinels, started for this
file): the whole store contract suite and the multi-process tests (adopted from test_contract.py and
test_multiprocess.py), plus the Sentinel URL and ``wait_replicas`` with two replicas."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sessionforce.errors import ConfigError, StoreUnavailable
from sessionforce.store import ConversationRecord, Lease, PendingTurn, RedisStore, open_store
from tests.redis_server import unique_prefix
from tests.redis_topology import RedisSentinel, running_redis_sentinel
from tests.store.topology_suite import TopologyHarness, adopt, delete_everywhere, harness

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def setup() -> Iterator[RedisSentinel]:
    """One Sentinel set-up for the whole file."""
    with running_redis_sentinel() as running:
        yield running


@pytest.fixture
async def h(setup: RedisSentinel, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TopologyHarness]:
    """The contract suite's harness on the primary Sentinel names."""
    async for each in harness(setup.url, [n.port for n in setup.nodes], request, tmp_path):
        yield each


@pytest.fixture
def location(setup: RedisSentinel) -> Iterator[tuple[str, str, str]]:
    """The multi-process tests' store: Sentinel's primary, under a fresh prefix."""
    prefix = unique_prefix()
    yield "redis", setup.url, prefix
    delete_everywhere([n.port for n in setup.nodes], prefix)


adopt(globals())


def _record(cid: str, pending: PendingTurn | None = None) -> ConversationRecord:
    return ConversationRecord(conversation_id=cid, agent_id="a", external_session_key="k", created_at=1.0,
                              last_activity_at=2.0, pending=pending)


async def test_the_store_writes_to_the_primary_sentinel_names_in_the_flat_layout(setup: RedisSentinel) -> None:
    store = RedisStore.from_url(f"{setup.url}/0?prefix=app:", prefix=unique_prefix())  # the argument wins
    try:
        assert repr(store).startswith(f"RedisStore('redis+sentinel://127.0.0.1:{setup.sentinels[0].port},")
        assert repr(store).endswith(f"/{setup.service}/0', prefix='{store._prefix}')")
        await store.save(_record("c1"))
        # one primary: the layout earlier versions wrote, no hash tags
        assert setup.primary().client().exists(f"{store._prefix}rec:c1", f"{store._prefix}idx:idle") == 2
        assert setup.primary().client().wait(2, 2000) == 2
        assert all(r.client().exists(f"{store._prefix}rec:c1") == 1 for r in setup.replicas())
    finally:
        await store.aclose()


async def test_wait_replicas_with_two_replicas(setup: RedisSentinel) -> None:
    prefix = unique_prefix()
    both = RedisStore.from_url(f"{setup.url}?wait_replicas=2&wait_timeout=2", prefix=prefix)
    three = RedisStore.from_url(f"{setup.url}?wait_replicas=3&wait_timeout=0.1", prefix=prefix)
    pending = PendingTurn(sequence_id=1, session_id="s", text="hi", started_at=1.0, owner="w")
    try:
        lease = await both.acquire("c1", owner="w", ttl=5.0, wait=0)
        saved = await both.save(_record("c1", pending), lease=lease)
        await both.save(saved.replace(pending=None), lease=lease, release=True)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="only 2 of 3 replicas acknowledged"):
            await three.acquire("c1", owner="w", ttl=5.0, wait=0)
        assert 0.1 <= time.monotonic() - started < 1.0
        assert isinstance(await both.try_acquire("c1", owner="other", ttl=5.0), Lease)  # it was let go
    finally:
        await both.aclose()
        await three.aclose()


def test_sentinel_urls_are_parsed_and_bad_ones_refused_without_the_password() -> None:
    store = open_store("rediss+sentinel://:hunter2secret@s1:26379,s2/mymaster/2?socket_timeout=3&pool_timeout=1")
    assert repr(store) == "RedisStore('rediss+sentinel://s1:26379,s2:26379/mymaster/2', prefix='sessionforce:')"
    for bad, says in [
        ("redis+sentinel://:hunter2secret@s1:26379", "needs the name Sentinel knows the primary by"),
        ("redis+sentinel://:hunter2secret@s1:26379/mymaster/x", "needs the name"),
        ("redis+sentinel://:hunter2secret@s1:26379/m?socket_timeout=soon", "socket_timeout"),
        ("redis+sentinel://:hunter2secret@[::1:26379/m", "IPv6"),
        ("redis+sentinel://:hunter2secret@s1:26379/m?pool_max=0", "pool_max"),
    ]:
        with pytest.raises(ConfigError) as caught:
            open_store(bad)
        assert says in str(caught.value)
        assert "hunter2secret" not in str(caught.value)
