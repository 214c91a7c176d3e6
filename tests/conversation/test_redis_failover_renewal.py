"""SIGKILL the Redis primary that owns a conversation in the middle of its lease renewal: the renewal was
written to the primary (stopped, so it answers nothing) when the primary dies. The turn's lease was
replicated, so after the promotion its last save lands, and the conversation carries on; each text
reaches the agent once (issue 19). The renewal is triggered by a lease clock the test moves, so it happens
exactly once, exactly while the turn is at the agent."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from sessionforce import AsyncAgentClient, Conversations
from sessionforce.emulator import RunningEmulator
from sessionforce.lifecycle._locks import LeaseKeeper, LocalLocks
from sessionforce.store import Lease, open_store
from tests.conversation.fake_time import FakeTime
from tests.redis_failover import running_topology
from tests.redis_server import unique_prefix
from tests.support import Admin, client_kwargs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

LEASE_TTL = 8.0
"""Not renewed after the killed renewal: it must outlive the turn (answered after ANSWER_AFTER)."""
ANSWER_AFTER = 4.5


def texts(admin: Admin) -> list[str]:
    return [t["text"] for t in admin.turns()]


async def reached_agent(admin: Admin, text: str) -> None:
    while text not in await asyncio.to_thread(texts, admin):
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("wait", [0, 1], ids=["async", "wait_replicas=1"])
@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
async def test_primary_killed_mid_renewal(kind: str, wait: int, emu: RunningEmulator, admin: Admin) -> None:
    prefix = unique_prefix()
    lease_clock = FakeTime()
    with running_topology(kind) as topology:
        store: Any = open_store(topology.url(prefix, wait))
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            conversations = Conversations(client, store=store, lease_ttl=LEASE_TTL)
            conversations._locks = LocalLocks(keeper=LeaseKeeper(clock=lease_clock))
            conversation = conversations.get("c1")
            assert (await conversation.send("first")).text == "You said: first"
            owner = topology.owner(prefix, "c1")
            renew = store.renew
            outcomes: list[str] = []
            killed = asyncio.Event()

            async def renew_while_the_primary_dies(lease: Lease, *, ttl: float) -> Lease:
                owner.process.send_signal(signal.SIGSTOP)  # it keeps its sockets and answers nothing
                call = asyncio.create_task(renew(lease, ttl=ttl))
                await asyncio.sleep(0.2)  # the renewal is written to the stopped primary...
                await asyncio.to_thread(topology.kill, owner)  # ...which dies without answering it
                killed.set()
                try:
                    renewed: Lease = await call
                except Exception as exc:
                    outcomes.append(type(exc).__name__)
                    raise
                outcomes.append("renewed")
                return renewed

            store.renew = renew_while_the_primary_dies
            admin.faults({"route": "send_message", "latency_ms": ANSWER_AFTER * 1000, "times": 1})
            turn = asyncio.create_task(conversation.send("second"))
            await asyncio.wait_for(reached_agent(admin, "second"), 5)
            await lease_clock.advance(LEASE_TTL / 3)  # the renewal is due now
            await asyncio.wait_for(killed.wait(), 5)
            await asyncio.to_thread(topology.wait_promoted, owner)
            assert not turn.done()  # the agent has not answered yet: its answer meets the new primary
            reply = await asyncio.wait_for(turn, 15)
            assert reply.text == "You said: second"
            await asyncio.to_thread(topology.heal, owner)
            assert (await conversation.send("third")).text == "You said: third"
            record, transcript = await conversation.record(), await conversation.transcript()
        await store.aclose()
    # The renewal could not reach a primary before redis-py's retries ran out; it was not tried again.
    assert outcomes == ["StoreUnavailable"]
    assert texts(admin) == ["first", "second", "third"]
    assert record is not None
    assert (record.turns, record.last_sequence_id, record.pending) == (3, 3, None)
    assert [(e.kind, e.text, e.sequence_id) for e in transcript] == [
        ("session_started", None, None), ("turn", "first", 1), ("turn", "second", 2), ("turn", "third", 3)
    ]
