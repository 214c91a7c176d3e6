"""Every metric's value after a scripted run against the emulator (each kind of turn once), asserted exactly
from the SDK's in-memory reader."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sessionforce import AsyncAgentClient, Conversations, RetryPolicy
from sessionforce.emulator import RunningEmulator
from sessionforce.errors import BadRequest, ConnectionFailed, DeliveryUnknown
from sessionforce.store import SQLiteStore
from tests.support import Admin, client_kwargs
from tests.telemetry.otel import Otel, point


async def test_metric_values_after_a_scripted_run(traced: Conversations, otel: Otel, admin: Admin) -> None:
    conv = traced.get("scripted")
    first = await conv.send("one")  # answered, on a new session
    admin.expire(first.session_id)
    await conv.send("two")  # resumed: 404, a new session, resent
    admin.faults({"route": "send_message", "status": 503, "times": 1})
    await conv.send("three")  # answered after one retry
    admin.faults({"route": "send_message", "status": 423, "times": 2})
    await conv.send("four")  # answered after two 423 waits
    admin.faults({"route": "send_message", "reset": "after", "times": 1})
    with pytest.raises(DeliveryUnknown):
        await conv.send("five")
    admin.faults({"route": "send_message", "status": 400, "times": 1})
    with pytest.raises(BadRequest):
        await conv.send("six")  # refused: not sent
    async for _ in conv.stream("seven"):
        pass
    assert await conv.end()

    points = otel.points()
    histograms = {
        "sessionforce.turn.duration", "sessionforce.turn.time_to_first_event", "sessionforce.lease.wait.duration",
        "sessionforce.store.operation.duration",
    }
    assert {name for name, _ in points} == histograms | {
        "sessionforce.turns", "sessionforce.sessions.started", "sessionforce.sessions.ended",
        "sessionforce.sessions.open", "sessionforce.locked.waits", "sessionforce.http.retries",
    }
    expected = {
        point("sessionforce.turns", outcome="answered", stream=False): 3,
        point("sessionforce.turns", outcome="resumed", stream=False): 1,
        point("sessionforce.turns", outcome="delivery_unknown", stream=False, **{"error.type": "DeliveryUnknown"}): 1,
        point("sessionforce.turns", outcome="failed", stream=False, **{"error.type": "BadRequest"}): 1,
        point("sessionforce.turns", outcome="answered", stream=True): 1,
        point("sessionforce.turn.duration", outcome="answered", stream=False): 3,
        point("sessionforce.turn.duration", outcome="resumed", stream=False): 1,
        point("sessionforce.turn.duration", outcome="delivery_unknown", stream=False): 1,
        point("sessionforce.turn.duration", outcome="failed", stream=False): 1,
        point("sessionforce.turn.duration", outcome="answered", stream=True): 1,
        point("sessionforce.turn.time_to_first_event", stream=False): 4,  # every answered send
        point("sessionforce.turn.time_to_first_event", stream=True): 1,
        point("sessionforce.sessions.started", reason="new"): 1,
        point("sessionforce.sessions.started", reason="expired"): 1,
        point("sessionforce.sessions.ended", reason="expired"): 1,  # the server had dropped it (404)
        point("sessionforce.sessions.ended", reason="UserRequest"): 1,
        point("sessionforce.sessions.open"): 0,
        point("sessionforce.lease.wait.duration"): 8,  # seven turns and the end
        point("sessionforce.locked.waits"): 2,
        point("sessionforce.http.retries", cause="503"): 1,
        point("sessionforce.store.operation.duration", operation="acquire", store="memory"): 8,
        point("sessionforce.store.operation.duration", operation="load", store="memory"): 8,
        # one: 4 (the new record, the session, written ahead, answered); two: 5 (written ahead, the old
        # session expired, the new session, written ahead again, answered); three to seven: 2 each (written
        # ahead, outcome); the end: 1.
        point("sessionforce.store.operation.duration", operation="save", store="memory"): 20,
    }
    assert points == expected


async def test_sessions_open_counts_up_and_down(traced: Conversations, otel: Otel) -> None:
    for name in ("a", "b", "c"):
        await traced.get(name).start()
    assert otel.points()[point("sessionforce.sessions.open")] == 3
    assert await traced.get("b").end()
    points = otel.points()
    assert points[point("sessionforce.sessions.open")] == 2
    assert points[point("sessionforce.sessions.started", reason="new")] == 3
    assert points[point("sessionforce.sessions.ended", reason="UserRequest")] == 1
    assert point("sessionforce.turns", outcome="answered", stream=False) not in points  # start() is no turn


async def test_a_refused_connection_is_retried_with_cause_connect() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    otel = Otel()
    try:
        async with AsyncAgentClient(
            my_domain=f"http://127.0.0.1:{port}", client_id="id", client_secret="not-used", agent_id="0XxNOBODY",
            retry=RetryPolicy(max_retries=2, backoff_initial=0.01), telemetry=otel.telemetry,
        ) as client:
            with pytest.raises(ConnectionFailed):
                await client.start_session()
        assert otel.points() == {point("sessionforce.http.retries", cause="connect"): 2}
        attempts = otel.named("POST /services/oauth2/token")
        assert [dict(s.attributes or {})["sessionforce.retry.verdict"] for s in attempts] == ["retry"] * 3
        assert {dict(s.attributes or {})["error.type"] for s in attempts} == {"ConnectionFailed"}
    finally:
        otel.shutdown()


async def test_the_store_label_names_the_store(emu: RunningEmulator, tmp_path: Path) -> None:
    otel = Otel()
    try:
        async with AsyncAgentClient(**client_kwargs(emu), telemetry=otel.telemetry) as client, \
                Conversations(client, store=SQLiteStore(tmp_path / "s.db")) as conversations:
            await conversations.get("sqlite").send("hello")
        stores = {dict(key)["store"] for name, key in otel.points() if name == "sessionforce.store.operation.duration"}
        assert stores == {"sqlite"}
        assert {dict(s.attributes or {}).get("sessionforce.store") for s in otel.spans()
                if s.name.startswith("store ")} == {"sqlite"}
    finally:
        otel.shutdown()
