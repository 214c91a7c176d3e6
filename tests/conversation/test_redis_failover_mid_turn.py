"""SIGKILL the Redis primary that owns a conversation while its turn is at the agent (who answers slowly),
on a Redis Cluster and behind Sentinel, with and without ``wait_replicas=1``: a replica is promoted before
the answer comes, the turn's last save lands there, and the conversation carries on; the agent got each
text once, and record and transcript hold every turn once, in order (issue 19)."""

from __future__ import annotations

import asyncio
import time

import pytest

from sessionforce import AsyncAgentClient, Conversations
from sessionforce.emulator import RunningEmulator
from sessionforce.errors import Delivery, StoreUnavailable
from sessionforce.store import open_store
from tests.redis_failover import running_topology
from tests.redis_server import unique_prefix
from tests.support import Admin, client_kwargs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

ANSWER_AFTER = 5.0
"""The agent's answer to the turn in flight: after the promotion (1.5-3 s here), well before it too."""


def texts(admin: Admin) -> list[str]:
    return [t["text"] for t in admin.turns()]


async def reached_agent(admin: Admin, text: str) -> None:
    while text not in await asyncio.to_thread(texts, admin):
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("wait", [0, 1], ids=["async", "wait_replicas=1"])
@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
async def test_primary_killed_while_the_agent_answers(
    kind: str, wait: int, emu: RunningEmulator, admin: Admin
) -> None:
    prefix = unique_prefix()
    with running_topology(kind) as topology:
        store = open_store(topology.url(prefix, wait))
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            conversation = Conversations(client, store=store).get("c1")
            assert (await conversation.send("first")).text == "You said: first"
            owner = topology.owner(prefix, "c1")
            admin.faults({"route": "send_message", "latency_ms": ANSWER_AFTER * 1000, "times": 1})
            sent_at = time.monotonic()
            turn = asyncio.create_task(conversation.send("second"))
            await asyncio.wait_for(reached_agent(admin, "second"), 5)
            await topology.fail_over(owner)
            promoted_after = time.monotonic() - sent_at
            assert promoted_after < ANSWER_AFTER - 0.5, "promotion too slow for this test's timing"
            reply = await asyncio.wait_for(turn, 15)
            assert reply.text == "You said: second"
            assert reply.interrupted_turn is None
            if wait and kind == "cluster":
                # The shard lost its only replica: a turn is refused before it is sent until it has one again.
                with pytest.raises(StoreUnavailable) as raised:
                    await conversation.send("third")
                assert raised.value.delivery is Delivery.NOT_SENT
                assert "nothing was sent" in str(raised.value).lower()
                assert texts(admin) == ["first", "second"]
                await asyncio.to_thread(topology.heal, owner)
            assert (await conversation.send("third")).text == "You said: third"
            record = await conversation.record()
            transcript = await conversation.transcript()
        await store.aclose()
    assert texts(admin) == ["first", "second", "third"]  # each text reached the agent once
    assert record is not None
    assert (record.turns, record.last_sequence_id, record.pending) == (3, 3, None)
    assert [(e.kind, e.text, e.sequence_id) for e in transcript] == [
        ("session_started", None, None), ("turn", "first", 1), ("turn", "second", 2), ("turn", "third", 3)
    ]
