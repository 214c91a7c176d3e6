"""The span tree of each kind of turn, against the emulator over HTTP, recorded by the SDK's in-memory
exporter; every attribute of the spans that carry the turn's story is asserted."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from sessionforce import Conversations
from sessionforce.emulator import RunningEmulator
from sessionforce.errors import ConversationBusy, DeliveryUnknown, StreamInterrupted
from sessionforce.store import ConversationRecord
from tests.support import Admin
from tests.telemetry.otel import Otel

SEND = "POST /sessions/{id}/messages"
STREAM = "POST /sessions/{id}/messages/stream"
START = "POST /agents/{id}/sessions"
TOKEN = "POST /services/oauth2/token"


def http(emu: RunningEmulator, template: str, status: int | None, **more: Any) -> dict[str, Any]:
    where = urlsplit(emu.url)
    attributes: dict[str, Any] = {
        "http.request.method": template.split()[0], "url.template": template.split()[1],
        "server.address": where.hostname, "server.port": where.port,
    }
    if status is not None:
        attributes["http.response.status_code"] = status
    return {**attributes, **more}


def turn_attributes(record: ConversationRecord, *, session_id: str, sequence_id: int, stream: bool = False,
                    **more: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": "salesforce.agentforce",
        "gen_ai.conversation.id": record.conversation_id,
        "gen_ai.agent.id": record.agent_id,
        "sessionforce.stream": stream,
        "sessionforce.external_session_key": record.external_session_key,
        "sessionforce.session_id": session_id,
        "sessionforce.sequence_id": sequence_id,
        **more,
    }


def only(otel: Otel, name: str) -> ReadableSpan:
    [span] = otel.named(name)
    return span


def invoke(otel: Otel, agent_id: str) -> list[ReadableSpan]:
    return otel.named(f"invoke_agent {agent_id}")


async def test_a_plain_turn(traced: Conversations, otel: Otel, emu: RunningEmulator) -> None:
    conv = traced.get("plain")
    reply = await conv.send("What are your opening hours?")
    record = await conv.record()
    assert record is not None
    [turn] = invoke(otel, record.agent_id)
    assert otel.tree(turn) == [
        f"invoke_agent {record.agent_id}",
        "  lease acquire",
        "  store load",
        "  store save",  # the new record
        "  start session",
        f"    {TOKEN}",
        f"    {START}",
        "  store save",  # the session, recorded
        "  store save",  # the turn, written ahead
        f"  {SEND}",
        "  store save",  # the answer, with the lease given back
    ]
    assert turn.kind is SpanKind.CLIENT
    assert turn.parent is None
    assert dict(turn.attributes or {}) == turn_attributes(
        record, session_id=reply.session_id, sequence_id=1, **{"sessionforce.outcome": "answered",
                                                               "sessionforce.delivery": "answered"}
    )
    assert turn.status.status_code is StatusCode.UNSET
    assert [e.name for e in turn.events] == ["sessionforce.stream.first_event"]
    start = only(otel, "start session")
    assert dict(start.attributes or {}) == {
        "sessionforce.resume_reason": "new", "sessionforce.session_id": reply.session_id,
    }
    assert dict(only(otel, "lease acquire").attributes or {}) == {"sessionforce.store": "memory"}
    assert dict(only(otel, "store load").attributes or {}) == {
        "sessionforce.store": "memory", "sessionforce.store.operation": "load",
    }
    assert dict(only(otel, SEND).attributes or {}) == http(emu, SEND, 200)
    assert only(otel, SEND).kind is SpanKind.CLIENT
    assert dict(only(otel, START).attributes or {}) == http(emu, START, 200)
    assert dict(only(otel, TOKEN).attributes or {}) == http(emu, TOKEN, 200)
    assert only(otel, "lease acquire").start_time == turn.start_time  # the local queue counts as lease wait


async def test_a_streamed_turn(traced: Conversations, otel: Otel, emu: RunningEmulator) -> None:
    conv = traced.get("streamed")
    await conv.start()
    otel.exporter.clear()
    events = [event async for event in conv.stream("What are your opening hours?")]
    record = await conv.record()
    assert record is not None
    assert record.session_id is not None
    [turn] = invoke(otel, record.agent_id)
    assert otel.tree(turn) == [
        f"invoke_agent {record.agent_id}",
        "  lease acquire",
        "  store load",
        "  store save",
        f"  {STREAM}",
        "  store save",
    ]
    assert dict(turn.attributes or {}) == turn_attributes(
        record, session_id=record.session_id, sequence_id=1, stream=True,
        **{"sessionforce.outcome": "answered", "sessionforce.delivery": "answered"},
    )
    assert [e.name for e in turn.events] == ["sessionforce.stream.first_event", "sessionforce.stream.end"]
    first, end = turn.events
    assert turn.start_time is not None
    assert turn.end_time is not None
    assert turn.start_time < first.timestamp <= end.timestamp <= turn.end_time
    assert len(events) > 2  # a real stream: the first event came before the end
    assert dict(only(otel, STREAM).attributes or {}) == http(emu, STREAM, 200)


async def test_a_resumed_turn(traced: Conversations, otel: Otel, emu: RunningEmulator, admin: Admin) -> None:
    conv = traced.get("resumed")
    first = await conv.send("hello")
    admin.expire(first.session_id)
    otel.exporter.clear()
    reply = await conv.send("are you there?")
    record = await conv.record()
    assert record is not None
    assert reply.session_id != first.session_id
    [turn] = invoke(otel, record.agent_id)
    assert otel.tree(turn) == [
        f"invoke_agent {record.agent_id}",
        "  lease acquire",
        "  store load",
        "  store save",  # written ahead on the old session
        f"  {SEND}",  # 404: the session is gone
        "  store save",  # the old session, recorded expired
        "  start session",
        f"    {START}",
        "  store save",
        "  store save",  # written ahead again, on the new session
        f"  {SEND}",
        "  store save",
    ]
    assert dict(turn.attributes or {}) == turn_attributes(
        record, session_id=reply.session_id, sequence_id=3,
        **{"sessionforce.outcome": "resumed", "sessionforce.delivery": "answered",
           "sessionforce.resume_reason": "expired"},
    )
    assert [(e.name, dict(e.attributes or {})) for e in turn.events] == [
        ("sessionforce.session.ended", {"sessionforce.end_reason": "expired"}),
        ("sessionforce.stream.first_event", {}),
    ]
    gone, resent = otel.named(SEND)
    assert dict(gone.attributes or {}) == http(
        emu, SEND, 404, **{"error.type": "404", "sessionforce.retry.verdict": "raise"}
    )
    assert gone.status.status_code is StatusCode.ERROR
    assert dict(resent.attributes or {}) == http(emu, SEND, 200)
    assert dict(only(otel, "start session").attributes or {}) == {
        "sessionforce.resume_reason": "expired", "sessionforce.session_id": reply.session_id,
    }


async def test_a_423_wait(traced: Conversations, otel: Otel, emu: RunningEmulator, admin: Admin) -> None:
    conv = traced.get("locked")
    await conv.start()
    admin.faults({"route": "send_message", "status": 423, "times": 2})
    otel.exporter.clear()
    reply = await conv.send("hello")
    record = await conv.record()
    assert record is not None
    [turn] = invoke(otel, record.agent_id)
    assert otel.tree(turn) == [
        f"invoke_agent {record.agent_id}", "  lease acquire", "  store load", "  store save",
        f"  {SEND}", f"  {SEND}", f"  {SEND}", "  store save",
    ]
    locked = {"error.type": "423", "sessionforce.retry.verdict": "wait_locked"}
    assert [dict(s.attributes or {}) for s in otel.named(SEND)] == [
        http(emu, SEND, 423, **locked), http(emu, SEND, 423, **locked), http(emu, SEND, 200),
    ]
    assert dict(turn.attributes or {}) == turn_attributes(
        record, session_id=reply.session_id, sequence_id=1,
        **{"sessionforce.outcome": "answered", "sessionforce.delivery": "answered"},
    )


async def test_a_retry_after_503(traced: Conversations, otel: Otel, emu: RunningEmulator, admin: Admin) -> None:
    conv = traced.get("unavailable")
    await conv.start()
    admin.faults({"route": "send_message", "status": 503, "times": 1})
    otel.exporter.clear()
    reply = await conv.send("hello")
    record = await conv.record()
    assert record is not None
    [turn] = invoke(otel, record.agent_id)
    assert otel.tree(turn) == [
        f"invoke_agent {record.agent_id}", "  lease acquire", "  store load", "  store save",
        f"  {SEND}", f"  {SEND}", "  store save",
    ]
    assert [dict(s.attributes or {}) for s in otel.named(SEND)] == [
        http(emu, SEND, 503, **{"error.type": "503", "sessionforce.retry.verdict": "retry"}),
        http(emu, SEND, 200),
    ]
    assert dict(turn.attributes or {})["sessionforce.outcome"] == "answered"
    assert reply.sequence_id == 1  # the same turn, resent once


async def test_a_delivery_unknown_turn(traced: Conversations, otel: Otel, emu: RunningEmulator,
                                       admin: Admin) -> None:
    conv = traced.get("unknown")
    await conv.start()
    admin.faults({"route": "send_message", "reset": "after", "times": 1})
    otel.exporter.clear()
    with pytest.raises(DeliveryUnknown) as raised:
        await conv.send("transfer 100 EUR")
    record = await conv.record()
    assert record is not None
    assert record.session_id is not None
    [turn] = invoke(otel, record.agent_id)
    assert otel.tree(turn) == [
        f"invoke_agent {record.agent_id}", "  lease acquire", "  store load", "  store save",
        f"  {SEND}", "  store save",  # the outcome: delivery unknown, recorded, never resent
    ]
    assert dict(turn.attributes or {}) == turn_attributes(
        record, session_id=record.session_id, sequence_id=1,
        **{"sessionforce.outcome": "delivery_unknown", "sessionforce.delivery": "maybe_delivered",
           "error.type": type(raised.value).__name__},
    )
    assert turn.status.status_code is StatusCode.ERROR
    [exception] = [e for e in turn.events if e.name == "exception"]
    assert (exception.attributes or {})["exception.type"] == f"sessionforce.errors.{type(raised.value).__name__}"
    assert dict(only(otel, SEND).attributes or {}) == {
        **http(emu, SEND, None), "error.type": "DeliveryUnknown", "sessionforce.retry.verdict": "raise",
        "sessionforce.delivery": "maybe_delivered",
    }
    assert admin.requests("send_message") == 1  # sent once, never twice


async def test_a_stream_cut_off_is_delivery_unknown(traced: Conversations, otel: Otel, admin: Admin) -> None:
    conv = traced.get("cut")
    await conv.start()
    admin.faults({"route": "stream_message", "drop_after_chunks": 1, "times": 1})
    otel.exporter.clear()
    with pytest.raises(StreamInterrupted):
        async for _ in conv.stream("What are your opening hours?"):
            pass
    record = await conv.record()
    assert record is not None
    [turn] = invoke(otel, record.agent_id)
    attributes = dict(turn.attributes or {})
    assert (attributes["sessionforce.outcome"], attributes["sessionforce.delivery"], attributes["error.type"]) == (
        "delivery_unknown", "maybe_delivered", "StreamInterrupted"
    )
    assert [e.name for e in turn.events] == ["sessionforce.stream.first_event", "exception"]


async def test_end_is_its_own_trace(traced: Conversations, otel: Otel, emu: RunningEmulator) -> None:
    conv = traced.get("ending")
    await conv.send("hello")
    otel.exporter.clear()
    assert await conv.end()
    assert otel.tree() == ["DELETE /sessions/{id}"]  # no user turn: no invoke_agent span
    assert dict(only(otel, "DELETE /sessions/{id}").attributes or {}) == http(emu, "DELETE /sessions/{id}", 200)


async def test_a_turn_that_finds_the_conversation_busy(traced: Conversations, otel: Otel, admin: Admin) -> None:
    conv = traced.get("busy", lock_wait=0.2)
    await conv.start()
    admin.faults({"route": "send_message", "latency_ms": 800, "times": 1})
    otel.exporter.clear()
    slow = asyncio.create_task(conv.send("slow"))
    await asyncio.sleep(0.1)
    with pytest.raises(ConversationBusy):
        await conv.send("impatient")
    await slow
    record = await conv.record()
    assert record is not None
    [busy] = otel.named("invoke_agent")  # the record was never loaded: no agent id to name it by
    [answered] = invoke(otel, record.agent_id)
    assert otel.tree(busy) == ["invoke_agent"]  # it never got past this process's queue
    assert dict(busy.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "salesforce.agentforce",
        "gen_ai.conversation.id": "busy", "sessionforce.stream": False,
        "sessionforce.outcome": "failed", "sessionforce.delivery": "not_sent", "error.type": "ConversationBusy",
    }
    assert busy.parent is None
    assert answered.parent is None  # each turn its own trace: nothing left attached to the task
    assert dict(answered.attributes or {})["sessionforce.outcome"] == "answered"
