"""Writes the old primary acknowledged and the promotion lost (replication cut on purpose: see
tests/redis_failover.py), on a Redis Cluster and behind Sentinel (issue 19).

- Without ``wait_replicas`` a turn's lease and write-ahead can be lost: the agent got the turn, the whole-
  lease check refuses the stale worker's last save (the app is told: answered, with the reply), nothing
  newer is overwritten, and the next worker, not knowing the sequenceId was used, is refused by the agent
  once (not sent) before it carries on. The answered turn is missing from the transcript.
- With ``wait_replicas=1`` that turn is never sent: the replica did not acknowledge its lease, so the app
  is told "not sent", and sending it again after the promotion delivers it once.
- What ``wait_replicas`` does not cover: the turn's last save (not waited for) lost in the promotion. The
  write-ahead survived, so the next turn reports the turn as interrupted (delivery unknown), the
  sequenceId is not reused, and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from sessionforce import AsyncAgentClient, Conversations
from sessionforce.emulator import RunningEmulator
from sessionforce.errors import BadRequest, Delivery, LeaseLost, StoreUnavailable
from sessionforce.store import open_store
from tests.redis_failover import Gate, running_topology
from tests.redis_server import unique_prefix
from tests.support import Admin, client_kwargs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.parametrize("kind", ["cluster", "sentinel"])]


LEASE_TTL = 4.0


def texts(admin: Admin) -> list[str]:
    return [t["text"] for t in admin.turns()]


def last_save(record: Any, **kwargs: Any) -> bool:
    """The turn's last save: the one that gives the lease up."""
    return bool(kwargs.get("release"))


def summary(transcript: list[Any]) -> list[tuple[str, str | None, int | None]]:
    return [(e.kind, e.text, e.sequence_id) for e in transcript]


async def test_without_wait_replicas_a_lost_write_ahead_is_refused_not_repeated(
    kind: str, emu: RunningEmulator, admin: Admin
) -> None:
    prefix = unique_prefix()
    with running_topology(kind) as topology:
        stale_store, next_store = open_store(topology.url(prefix)), open_store(topology.url(prefix))
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            stale = Conversations(client, store=stale_store).get("c1")
            worker = Conversations(client, store=next_store).get("c1")
            assert (await stale.send("first")).text == "You said: first"
            owner = topology.owner(prefix, "c1")
            gate = Gate(stale_store, "save", when=last_save)
            await asyncio.to_thread(topology.cut_replication, owner)
            turn = asyncio.create_task(stale.send("second"))
            await asyncio.wait_for(gate.reached.wait(), 10)  # the agent answered; the last save waits
            await topology.fail_over(owner, thaw=True)  # the new primary never saw the lease or the write-ahead
            gate.open()
            with pytest.raises(LeaseLost) as raised:
                await turn
            assert raised.value.delivery is Delivery.ANSWERED
            assert raised.value.reply is not None
            assert raised.value.reply.text == "You said: second"
            # The next worker does not know sequenceId 2 went out: the agent refuses it, and it says not sent.
            with pytest.raises(BadRequest) as refused:
                await worker.send("third")
            assert refused.value.delivery is Delivery.NOT_SENT
            assert (await worker.send("third")).text == "You said: third"
            record, transcript = await worker.record(), await worker.transcript()
        await stale_store.aclose()
        await next_store.aclose()
    assert texts(admin) == ["first", "second", "third"]
    assert record is not None
    assert (record.turns, record.last_sequence_id, record.pending) == (2, 3, None)
    assert summary(transcript) == [
        ("session_started", None, None), ("turn", "first", 1), ("error", "third", 2), ("turn", "third", 3)
    ]


async def test_with_wait_replicas_a_turn_not_replicated_is_not_sent(
    kind: str, emu: RunningEmulator, admin: Admin
) -> None:
    prefix = unique_prefix()
    with running_topology(kind) as topology:
        store = open_store(topology.url(prefix, wait_replicas=1))
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            conversation = Conversations(client, store=store).get("c1")
            assert (await conversation.send("first")).text == "You said: first"
            owner = topology.owner(prefix, "c1")
            await asyncio.to_thread(topology.cut_replication, owner)
            with pytest.raises(StoreUnavailable) as raised:
                await conversation.send("second")
            assert raised.value.delivery is Delivery.NOT_SENT
            assert "0 of 1 replicas acknowledged" in str(raised.value)
            assert texts(admin) == ["first"]
            await topology.fail_over(owner, thaw=True)
            await asyncio.to_thread(topology.heal, owner)
            assert (await conversation.send("second")).text == "You said: second"
            record, transcript = await conversation.record(), await conversation.transcript()
        await store.aclose()
    assert texts(admin) == ["first", "second"]
    assert record is not None
    assert (record.turns, record.last_sequence_id, record.pending) == (2, 2, None)
    assert summary(transcript) == [("session_started", None, None), ("turn", "first", 1), ("turn", "second", 2)]


async def test_a_lost_last_save_leaves_the_turn_reported_as_interrupted(
    kind: str, emu: RunningEmulator, admin: Admin
) -> None:
    prefix = unique_prefix()
    with running_topology(kind) as topology:
        store, next_store = open_store(topology.url(prefix, 1)), open_store(topology.url(prefix, 1))
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            # The turn's lease was acknowledged, its release (in the lost save) was not: the next worker waits
            # for that lease to run out, so keep it short.
            first_worker = Conversations(client, store=store, lease_ttl=LEASE_TTL).get("c1")
            worker = Conversations(client, store=next_store, lease_ttl=LEASE_TTL).get("c1")
            assert (await first_worker.send("first")).text == "You said: first"
            owner = topology.owner(prefix, "c1")
            gate = Gate(store, "save", when=last_save)
            turn = asyncio.create_task(first_worker.send("second"))
            await asyncio.wait_for(gate.reached.wait(), 10)  # written ahead (and acknowledged), answered
            await asyncio.to_thread(topology.cut_replication, owner)
            gate.open()
            assert (await turn).text == "You said: second"  # saved on the old primary only
            await topology.fail_over(owner, thaw=True)
            await asyncio.to_thread(topology.heal, owner)
            waited_from = time.monotonic()
            reply = await worker.send("third")
            assert time.monotonic() - waited_from < LEASE_TTL + 1
            assert reply.text == "You said: third"
            assert reply.interrupted_turn is not None
            assert (reply.interrupted_turn.text, reply.interrupted_turn.sequence_id) == ("second", 2)
            record, transcript = await worker.record(), await worker.transcript()
        await store.aclose()
        await next_store.aclose()
    assert texts(admin) == ["first", "second", "third"]
    assert record is not None
    assert (record.turns, record.last_sequence_id, record.pending) == (2, 3, None)
    assert summary(transcript) == [
        ("session_started", None, None), ("turn", "first", 1), ("delivery_unknown", "second", 2),
        ("turn", "third", 3),
    ]
