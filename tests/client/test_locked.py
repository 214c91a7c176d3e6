"""The one 423 policy, end to end against the emulator: every call on a session waits out a session that
another request holds (our own cancelled one included) within ``RetryPolicy.locked_wait``, resending the
same request; past the budget, ``SessionLocked`` says the request was not accepted. Time and randomness
are injected: only the cancelled-turn test lets the emulator's agent really think."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from sessionforce import AsyncAgentClient, RetryPolicy
from sessionforce.emulator import CallableAgent, RunningEmulator, TurnContext, run_emulator
from sessionforce.errors import Delivery, SessionLocked
from tests.support import Admin, client_kwargs


class FakeTime:
    """An injected clock whose sleep advances it at once (records every wait)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
async def timed(emu: RunningEmulator) -> AsyncIterator[tuple[AsyncAgentClient, FakeTime]]:
    fake = FakeTime()
    async with AsyncAgentClient(**client_kwargs(emu), retry=RetryPolicy(max_retries=0, locked_wait=10)) as c:
        c.transport.clock, c.transport.sleep, c.transport.rng = fake.clock, fake.sleep, random.Random(4)
        yield c, fake


@pytest.mark.parametrize("route", ["send_message", "stream_message", "feedback", "end_session"])
async def test_every_session_call_waits_out_423_and_resends_the_same_request(
    timed: tuple[AsyncAgentClient, FakeTime], admin: Admin, route: str
) -> None:
    client, fake = timed
    session = await client.start_session()
    reply = await client.send_message(session.session_id, "What are your opening hours?", sequence_id=1)
    admin.faults({"route": route, "status": 423, "times": 4})
    if route == "send_message":
        await client.send_message(session.session_id, "hi", sequence_id=2)
    elif route == "stream_message":
        await client.stream_message(session.session_id, "hi", sequence_id=2).final_reply()
    elif route == "feedback":
        assert reply.feedback_id is not None
        await client.submit_feedback(session.session_id, reply.feedback_id, "GOOD")
    else:
        ended = await client.end_session(session.session_id)
        assert ended is not None
        assert ended.ended
    assert admin.requests(route, 423) == 4  # max_retries=0: 423 waits have their own budget
    assert len(fake.waits) == 4
    assert all(0 < w <= 2.0 for w in fake.waits)  # capped exponential backoff with jitter
    if route in ("send_message", "stream_message"):
        assert [t["sequenceId"] for t in admin.turns(session.session_id)] == [1, 2]  # one turn, same id


async def test_a_lock_that_outlasts_the_budget_raises_session_locked_not_accepted(
    timed: tuple[AsyncAgentClient, FakeTime], admin: Admin
) -> None:
    client, fake = timed
    session = await client.start_session()
    admin.faults({"route": "send_message", "status": 423})
    with pytest.raises(SessionLocked) as info:
        await client.send_message(session.session_id, "hi", sequence_id=1)
    assert sum(fake.waits) == pytest.approx(10.0)  # the whole budget, the last try right at it
    assert admin.requests("send_message", 423) == len(fake.waits) + 1
    assert info.value.delivery is Delivery.NOT_SENT
    assert "NOT accepted" in str(info.value)
    assert "locked_wait" in str(info.value)
    assert admin.turns(session.session_id) == []


async def test_a_budget_of_zero_raises_at_the_first_423(emu: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**client_kwargs(emu), retry=RetryPolicy(locked_wait=0)) as client:
        session = await client.start_session()
        admin.faults({"route": "send_message", "status": 423})
        with pytest.raises(SessionLocked):
            await client.send_message(session.session_id, "hi", sequence_id=1)
    assert admin.requests("send_message", 423) == 1


def _slow(ctx: TurnContext) -> str:
    return f"You said: {ctx.text}"


async def test_ending_a_session_our_cancelled_turn_still_locks_waits_it_out() -> None:
    """Issue 11 finding 1, the wire's share: the server keeps working on a turn whose request we
    cancelled (423 until it finishes); ending the session waits that out instead of failing."""
    with run_emulator(agents=[CallableAgent(_slow, name="Slow", latency_ms=1500)]) as emu:
        admin = Admin(emu.url)
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            session = await client.start_session()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.send_message(session.session_id, "hello", sequence_id=1), 0.3)
            ended = await asyncio.wait_for(client.end_session(session.session_id), 10)
        assert ended is not None
        assert ended.ended
        assert admin.requests("end_session", 423) >= 1
        assert [s["state"] for s in admin.sessions()] == ["ended"]
        admin.http.close()
