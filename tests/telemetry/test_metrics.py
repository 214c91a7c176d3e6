"""Every metric's value after a scripted run against the emulator (each kind of turn once), asserted exactly
from the SDK's in-memory reader."""

from __future__ import annotations

import pytest

from sessionforce import Conversations
from sessionforce.errors import BadRequest, DeliveryUnknown
from tests.support import Admin
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
