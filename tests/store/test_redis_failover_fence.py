"""A write the old primary acknowledged and the promotion lost, at the store itself (issue 19): the stale
worker believes its record is at version 2; after the promotion a second worker takes the conversation
(a fence above the stale one's) and saves its own version 2. The stale worker's next save expects
version 2 and finds version 2: only the whole-lease check refuses it, and the newer record stays."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sessionforce.errors import LeaseLost
from sessionforce.store import ConversationRecord, open_store
from tests.redis_failover import running_topology
from tests.redis_server import unique_prefix

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def record(cid: str, **fields: Any) -> ConversationRecord:
    return ConversationRecord(conversation_id=cid, agent_id="a", external_session_key="k", created_at=1.0,
                              last_activity_at=2.0, **fields)


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
async def test_a_stale_write_with_the_right_version_is_refused_after_a_promotion(kind: str) -> None:
    prefix = unique_prefix()
    with running_topology(kind) as topology:
        stale: Any = open_store(topology.url(prefix))
        newer: Any = open_store(topology.url(prefix))
        try:
            lease = await stale.acquire("c1", owner="stale", ttl=2.0, wait=0)
            first = await stale.save(record("c1"), lease=lease)
            owner = topology.owner(prefix, "c1")
            await asyncio.to_thread(topology.cut_replication, owner)  # the lease and version 1 were replicated
            believed = await stale.save(first.replace(turns=99), lease=lease)  # acknowledged, then lost
            assert believed.version == 2
            await topology.fail_over(owner, thaw=True)
            assert (await newer.load("c1")) == first  # the promoted replica never saw version 2
            taken = await newer.acquire("c1", owner="newer", ttl=30.0, wait=5.0)  # once the stale lease ran out
            assert taken.fence > lease.fence  # fences come from the server's clock: above the lost ones too
            mine = await newer.save(first.replace(turns=7), lease=taken)
            assert mine.version == 2
            with pytest.raises(LeaseLost):
                await stale.save(believed.replace(turns=100), lease=lease)  # version 2 == version 2
            with pytest.raises(LeaseLost):
                await stale.renew(lease, ttl=2.0)
            assert await newer.load("c1") == mine
        finally:
            await stale.aclose()
            await newer.aclose()
