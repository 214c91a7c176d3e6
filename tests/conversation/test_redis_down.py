"""When Redis goes down: a clear error, nothing sent before the store answers, and no reply lost after."""

from __future__ import annotations

import asyncio
import contextlib
import shutil

import pytest
import redis

from sessionforce import AsyncAgentClient, Conversations
from sessionforce.emulator import RunningEmulator
from sessionforce.errors import StoreUnavailable
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
    assert "nothing was sent" in str(raised.value)
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
    assert [t["text"] for t in admin.turns()] == ["are you there?"]
