"""What telemetry may hold: message content only when opted in (the GenAI conventions' rule), never a
secret in any span attribute, span event or metric attribute; and the ids on the library's log records."""

from __future__ import annotations

import json
import logging

import pytest

from sessionforce import AsyncAgentClient, BlockingConversations, Conversations, Telemetry
from sessionforce.emulator import RunningEmulator
from sessionforce.errors import BadRequest
from sessionforce.store import MemoryStore
from sessionforce.telemetry import CAPTURE_CONTENT_ENV
from tests.support import Admin, client_kwargs
from tests.telemetry.otel import Otel

QUESTION = "What are your opening hours?"


async def test_content_is_not_captured_by_default(traced: Conversations, otel: Otel) -> None:
    reply = await traced.get("quiet").send(QUESTION)
    recorded = otel.json()
    assert "gen_ai.input.messages" not in recorded
    assert "gen_ai.output.messages" not in recorded
    assert QUESTION not in recorded
    assert reply.text.splitlines()[0] not in recorded


async def test_content_is_captured_when_opted_in(emu: RunningEmulator) -> None:
    otel = Otel(capture_content=True)
    try:
        async with AsyncAgentClient(**client_kwargs(emu), telemetry=otel.telemetry) as client:
            conv = Conversations(client, store=MemoryStore()).get("loud")
            reply = await conv.send(QUESTION)
        [turn] = [s for s in otel.spans() if s.name.startswith("invoke_agent")]
        attributes = dict(turn.attributes or {})
        assert json.loads(str(attributes["gen_ai.input.messages"])) == [
            {"role": "user", "parts": [{"type": "text", "content": QUESTION}]}
        ]
        assert json.loads(str(attributes["gen_ai.output.messages"])) == [
            {"role": "assistant", "parts": [{"type": "text", "content": reply.text}]}
        ]
    finally:
        otel.shutdown()


def test_the_genai_switch_turns_capture_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    assert Telemetry().capture_content is False
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    assert Telemetry().capture_content is True
    assert Telemetry(capture_content=False).capture_content is False  # the argument wins
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "false")
    assert Telemetry().capture_content is False
    assert Telemetry.disabled().capture_content is False


async def test_no_secret_in_any_span_event_or_metric(emu: RunningEmulator, admin: Admin) -> None:
    otel = Otel(capture_content=True)  # content on: the user's text may be there, secrets still never
    try:
        async with AsyncAgentClient(**client_kwargs(emu), telemetry=otel.telemetry) as client:
            conv = Conversations(client, store=MemoryStore()).get("secrets")
            await conv.send("hello")
            token = (await client.fetch_token()).value
            admin.expire_tokens()  # the next call gets a 401, refreshes the token and resends
            await conv.send("again")
            new_token = (await client.fetch_token()).value
            admin.faults({"route": "send_message", "status": 400, "times": 1})
            with pytest.raises(BadRequest):
                await conv.send("refused")
            await conv.end()
        recorded = otel.json()
        assert "refresh" in recorded  # the 401 attempt is there, with its verdict
        assert "exception" in recorded  # and the refused turn's exception event
        for secret in (emu.client_secret, token, new_token):
            assert secret not in recorded
        assert "Bearer" not in recorded
    finally:
        otel.shutdown()


async def test_log_records_carry_the_ids(traced: Conversations, admin: Admin, caplog: pytest.LogCaptureFixture) -> None:
    conv = traced.get("logged")
    first = await conv.send("hello")
    admin.expire(first.session_id)
    with caplog.at_level(logging.INFO, logger="sessionforce"):
        reply = await conv.send("again")
    record = await conv.record()
    assert record is not None
    [expired] = [r for r in caplog.records if r.getMessage().startswith("session expired")]
    assert (expired.conversation_id, expired.session_id, expired.sequence_id) == ("logged", first.session_id, 2)  # type: ignore[attr-defined]
    assert expired.agent_id == record.agent_id  # type: ignore[attr-defined]
    [started] = [r for r in caplog.records if r.getMessage().startswith("session started")]
    assert (started.session_id, started.external_session_key) == (reply.session_id, record.external_session_key)  # type: ignore[attr-defined]


def test_blocking_conversations_hand_their_telemetry_to_the_client_they_build(
    emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("SF_MY_DOMAIN", emu.url), ("SF_CLIENT_ID", emu.client_id),
                        ("SF_CLIENT_SECRET", emu.client_secret), ("SF_AGENT_ID", emu.default_agent_id)):
        monkeypatch.setenv(name, value)
    otel = Otel()
    try:
        with BlockingConversations(store=MemoryStore(), telemetry=otel.telemetry) as conversations:
            assert conversations.client.async_client.telemetry is otel.telemetry
            conversations.get("blocking").send("hello")
        names = [s.name for s in otel.spans()]
        assert f"invoke_agent {emu.default_agent_id}" in names
        assert "POST /sessions/{id}/messages" in names  # the client's attempts, recorded to the same place
    finally:
        otel.shutdown()
