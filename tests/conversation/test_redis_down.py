"""When Redis goes down: a clear error, nothing sent before the store answers, and no reply lost after;
whatever the store does, the app is told the truth about its turn's delivery (issue 11 finding 2)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil

import pytest
import redis

from sessionforce import AsyncAgentClient, Conversations, Timeouts
from sessionforce.emulator import RunningEmulator
from sessionforce.errors import Delivery, DeliveryUnknown, StoreUnavailable
from sessionforce.store import open_store
from tests.redis_server import throwaway_redis_server
from tests.support import Admin, client_kwargs

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")


async def test_redis_down_before_a_turn_sends_nothing(emu: RunningEmulator, admin: Admin) -> None:
    with throwaway_redis_server() as url:
        pass  # started and stopped: nothing listens there any more
    store = open_store(url)
    async with AsyncAgentClient(**client_kwargs(emu)) as client:
        with pytest.raises(StoreUnavailable, match="cannot be reached") as raised:
            await Conversations(client, store=store).get("c1").send("hello")
    assert "nothing was sent" in str(raised.value).lower()
    assert raised.value.delivery is Delivery.NOT_SENT
    assert admin.requests("start_session") == 0
    assert admin.turns() == []


async def test_redis_dying_mid_turn_hands_over_the_reply(emu: RunningEmulator, admin: Admin) -> None:
    admin.faults({"route": "send_message", "latency_ms": 600, "times": 1})
    with throwaway_redis_server() as url:
        store = open_store(url)
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            turn = asyncio.create_task(Conversations(client, store=store).get("c2").send("are you there?"))
            while not admin.turns():  # the turn reached the agent; its answer is 600 ms away
                await asyncio.sleep(0.02)
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis.from_url(url).shutdown(nosave=True)
            with pytest.raises(StoreUnavailable) as raised:
                await turn
            await store.aclose()
    assert raised.value.reply is not None
    assert raised.value.reply.text == "You said: are you there?"
    assert raised.value.delivery is Delivery.ANSWERED
    assert "answered" in str(raised.value).lower()
    assert [t["text"] for t in admin.turns()] == ["are you there?"]


async def test_redis_dying_after_a_turn_went_unanswered_still_says_maybe_delivered(
    emu: RunningEmulator, admin: Admin
) -> None:
    admin.faults({"route": "send_message", "latency_ms": 1500, "times": 1})
    with throwaway_redis_server() as url:
        store = open_store(url)
        async with AsyncAgentClient(**client_kwargs(emu), timeouts=Timeouts(read=0.8)) as client:
            turn = asyncio.create_task(Conversations(client, store=store).get("c3").send("are you there?"))
            while not admin.turns():  # the turn reached the agent; the client gives up on it at 0.8 s
                await asyncio.sleep(0.02)
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis.from_url(url).shutdown(nosave=True)
            with pytest.raises(DeliveryUnknown) as raised:  # not StoreUnavailable: the turn went out
                await turn
            await store.aclose()
    assert raised.value.delivery is Delivery.MAYBE_DELIVERED
    assert "nothing was sent" not in str(raised.value).lower()
