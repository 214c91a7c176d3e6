"""Every client call end to end against the emulator over real HTTP, including the failure rows of
agent-api.md: each test proves its claim from the emulator's own counters."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from sessionforce import (
    AsyncAgentClient,
    AuthError,
    Awaiting,
    BadRequest,
    ConfigError,
    ConnectionFailed,
    DeliveryUnknown,
    EndOfTurnEvent,
    InvalidArgument,
    MessageEvent,
    NotFound,
    ProgressEvent,
    RateLimited,
    RetryPolicy,
    ServerError,
    SessionNotFound,
    StaticToken,
    StreamInterrupted,
    TextChunkEvent,
    Timeouts,
)
from sessionforce.agent_api._auth import ClientCredentials
from sessionforce.emulator import RunningEmulator
from tests.support import Admin, client_kwargs


class RecordingSleep:
    """Injected sleep: records the waits, does not wait (tests never really sleep on backoff)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps(client: AsyncAgentClient) -> RecordingSleep:
    recorder = RecordingSleep()
    client.transport.sleep = recorder
    return recorder


async def test_start_send_stream_feedback_end(client: AsyncAgentClient, admin: Admin) -> None:
    session = await client.start_session(external_session_key="6f1c3c4e-5c0e-4a8e-9d1e-0f5bb2a1c111")
    assert session.external_session_key == "6f1c3c4e-5c0e-4a8e-9d1e-0f5bb2a1c111"
    assert "Cog & Chain" in session.greeting.text
    reply = await client.send_message(session.session_id, "What are your opening hours?", sequence_id=1)
    assert "Tuesday to Saturday" in reply.text
    assert reply.sequence_id == 1
    assert reply.feedback_id
    await client.submit_feedback(session.session_id, reply.feedback_id, "GOOD", text="clear answer")

    events = [e async for e in client.stream_message(session.session_id, "my name is Ada", sequence_id=2)]
    kinds = [type(e) for e in events]
    assert kinds[0] is ProgressEvent
    assert TextChunkEvent in kinds
    assert isinstance(events[-1], EndOfTurnEvent)
    assert isinstance(events[-2], MessageEvent)
    chunks = "".join(e.text for e in events if isinstance(e, TextChunkEvent))
    assert chunks == events[-1].reply.text == "Nice to meet you, Ada!"

    ended = await client.end_session(session.session_id)
    assert ended is not None
    assert ended.ended
    assert await client.end_session(session.session_id) is None  # already ended: not an error
    assert [t["sequenceId"] for t in admin.turns(session.session_id)] == [1, 2]
    assert admin.sessions()[0]["state"] == "ended"


async def test_fresh_external_session_key_when_none_given(client: AsyncAgentClient) -> None:
    a = await client.start_session()
    b = await client.start_session()
    assert a.external_session_key != b.external_session_key
    assert len(a.external_session_key) == 36


async def test_confirm_answered_by_reply_turn_with_in_reply_to(client: AsyncAgentClient) -> None:
    s = await client.start_session()
    asked = await client.send_message(s.session_id, "I want to book a repair", sequence_id=1)
    assert asked.awaiting is Awaiting.INPUT
    confirm = await client.send_message(s.session_id, "2026-12-01", sequence_id=2)
    assert confirm.awaiting is Awaiting.CONFIRMATION
    assert confirm.question is not None
    done = await client.send_message(
        s.session_id, "yes", sequence_id=3, message_type="Reply", in_reply_to=confirm.question.id
    )
    assert done.actions[0]["value"]["status"] == "Booked"


async def test_citations_escalation_failure_and_agent_end(client: AsyncAgentClient) -> None:
    s = await client.start_session()
    cited = await client.send_message(s.session_id, "What warranty do repairs have?", sequence_id=1)
    assert cited.citations[0].value == "https://cogandchain.example/policies/warranty"
    failed = await client.send_message(s.session_id, "I want a refund", sequence_id=2)
    assert failed.failures[0].code == "ACTION_FAILED"
    human = await client.send_message(s.session_id, "let me talk to a human", sequence_id=3)
    assert human.awaiting is Awaiting.ESCALATED
    assert human.escalation_targets[0].value == "Workshop_Front_Desk"
    bye = await client.send_message(s.session_id, "goodbye", sequence_id=4)
    assert bye.ended
    with pytest.raises(SessionNotFound):
        await client.send_message(s.session_id, "hello?", sequence_id=5)


async def test_401_refreshes_the_token_once_then_succeeds(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    admin.expire_tokens()
    reply = await client.send_message(s.session_id, "hi", sequence_id=1)
    assert reply.text
    assert admin.requests("token") == 2
    assert admin.requests("send_message", 401) == 1
    assert len(admin.turns(s.session_id)) == 1


async def test_401_forever_raises_auth_error_after_one_refresh(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    admin.faults({"route": "send_message", "expire_token": True})
    with pytest.raises(AuthError, match="401"):
        await client.send_message(s.session_id, "hi", sequence_id=1)
    assert admin.requests("send_message") == 2  # the original and one retry with the new token
    assert admin.requests("token") == 2


async def test_single_flight_refresh_with_500_concurrent_callers(emu: RunningEmulator, admin: Admin) -> None:
    provider = ClientCredentials(emu.url, emu.client_id, emu.client_secret)
    async with AsyncAgentClient(**client_kwargs(emu), token_provider=provider) as client:
        await client.start_session()
        admin.expire_tokens()
        sessions = await asyncio.gather(*(client.start_session() for _ in range(500)))
    assert len({s.session_id for s in sessions}) == 500
    assert provider.fetches == 2  # the first token, and exactly one refresh for all 500
    assert admin.requests("token") == 2


async def test_429_waits_retry_after_then_succeeds(
    client: AsyncAgentClient, admin: Admin, sleeps: RecordingSleep
) -> None:
    s = await client.start_session()
    admin.faults({"route": "send_message", "status": 429, "retry_after": 3, "times": 1})
    reply = await client.send_message(s.session_id, "hi", sequence_id=1)
    assert reply.text
    assert sleeps.waits == [3.0]
    assert admin.requests("send_message", 429) == 1
    assert len(admin.turns(s.session_id)) == 1


async def test_429_longer_than_the_cap_is_raised_with_retry_after(emu: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**client_kwargs(emu), retry=RetryPolicy(max_retry_after=5)) as client:
        s = await client.start_session()
        admin.faults({"route": "send_message", "status": 429, "retry_after": 120})
        with pytest.raises(RateLimited) as raised:
            await client.send_message(s.session_id, "hi", sequence_id=1)
    assert raised.value.retry_after == 120
    assert admin.requests("send_message") == 1


async def test_503_twice_then_success_with_jittered_backoff(
    client: AsyncAgentClient, admin: Admin, sleeps: RecordingSleep
) -> None:
    s = await client.start_session()
    admin.faults({"route": "send_message", "status": 503, "times": 2})
    reply = await client.send_message(s.session_id, "hi", sequence_id=1)
    assert reply.text
    assert admin.requests("send_message", 503) == 2
    assert admin.requests("send_message", 200) == 1
    assert len(sleeps.waits) == 2
    assert 0 <= sleeps.waits[0] <= 0.5
    assert 0 <= sleeps.waits[1] <= 1.0
    assert len(admin.turns(s.session_id)) == 1


async def test_retries_are_bounded(client: AsyncAgentClient, admin: Admin, sleeps: RecordingSleep) -> None:
    s = await client.start_session()
    admin.faults({"route": "send_message", "status": 503})
    with pytest.raises(ServerError):
        await client.send_message(s.session_id, "hi", sequence_id=1)
    assert admin.requests("send_message") == 4  # 1 + max_retries (3)
    assert admin.turns(s.session_id) == []


async def test_423_is_retried(client: AsyncAgentClient, admin: Admin, sleeps: RecordingSleep) -> None:
    s = await client.start_session()
    admin.faults({"route": "send_message", "status": 423, "times": 1})
    assert (await client.send_message(s.session_id, "hi", sequence_id=1)).text
    assert admin.requests("send_message", 423) == 1
    assert len(admin.turns(s.session_id)) == 1


async def test_500_on_a_turn_is_not_retried(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    admin.faults({"route": "send_message", "status": 500, "times": 1})
    with pytest.raises(ServerError):
        await client.send_message(s.session_id, "hi", sequence_id=1)
    assert admin.requests("send_message") == 1


async def test_404_on_send_is_session_not_found(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    admin.expire(s.session_id)
    with pytest.raises(SessionNotFound) as raised:
        await client.send_message(s.session_id, "hi", sequence_id=1)
    assert raised.value.status == 404
    assert raised.value.request_id
    assert raised.value.body


async def test_idle_expiry_by_emulator_clock(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    admin.advance(901)
    with pytest.raises(SessionNotFound):
        await client.send_message(s.session_id, "hi", sequence_id=1)


async def test_unknown_agent_is_not_found_not_session_not_found(client: AsyncAgentClient) -> None:
    with pytest.raises(NotFound) as raised:
        await client.start_session("0XxNOSUCHAGENT0000")
    assert not isinstance(raised.value, SessionNotFound)


async def test_reused_sequence_id_is_a_bad_request(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    await client.send_message(s.session_id, "one", sequence_id=5)
    with pytest.raises(BadRequest, match="sequenceId"):
        await client.send_message(s.session_id, "again", sequence_id=5)
    assert admin.requests("send_message", 400) == 1


async def test_read_timeout_is_delivery_unknown_and_never_resent(emu: RunningEmulator, admin: Admin) -> None:
    async with AsyncAgentClient(**client_kwargs(emu), timeouts=Timeouts(read=0.3)) as client:
        s = await client.start_session()
        admin.faults({"route": "send_message", "latency_ms": 1500, "times": 1})
        with pytest.raises(DeliveryUnknown, match="not resent"):
            await client.send_message(s.session_id, "cancel my order", sequence_id=1)
        await asyncio.sleep(1.5)  # let the emulator finish the slow turn
    assert admin.requests("send_message") == 1
    assert [t["text"] for t in admin.turns(s.session_id)] == ["cancel my order"]


async def test_a_request_arms_one_timer_for_its_read_timeout(client: AsyncAgentClient) -> None:
    """The read timeout bounds the whole request with one timer: a timer armed per chunk (aiohttp's
    sock_read) stays in the loop's heap, cancelled, for the whole timeout, and under load multiplied the
    objects the garbage collector walks."""
    s = await client.start_session()
    await client.send_message(s.session_id, "warm up", sequence_id=1)
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]  # cancelled timers included
    for seq in range(2, 22):
        await client.send_message(s.session_id, f"turn {seq}", sequence_id=seq)
    # One per request (20), with slack for the pool's own housekeeping; a timer per chunk made it 40.
    assert len(loop._scheduled) - before <= 28  # type: ignore[attr-defined]


async def test_connection_reset_after_sending_is_delivery_unknown(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    admin.faults({"route": "send_message", "reset": "after", "times": 1})
    with pytest.raises(DeliveryUnknown):
        await client.send_message(s.session_id, "hi", sequence_id=1)
    assert admin.requests("send_message") == 1
    assert len(admin.turns(s.session_id)) == 1


async def test_stream_cut_after_two_chunks_carries_the_partial_text(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    admin.faults({"route": "stream_message", "drop_after_chunks": 2, "times": 1})
    seen: list[str] = []

    async def read() -> None:
        async for event in client.stream_message(s.session_id, "What are your opening hours?", sequence_id=1):
            if isinstance(event, TextChunkEvent):
                seen.append(event.text)

    with pytest.raises(StreamInterrupted) as raised:
        await read()
    assert len(seen) == 2
    assert raised.value.partial_text == "".join(seen)
    assert "WAS delivered" in str(raised.value)
    assert isinstance(raised.value, DeliveryUnknown)
    assert len(admin.turns(s.session_id)) == 1
    # The session is still usable afterwards.
    assert (await client.send_message(s.session_id, "hi", sequence_id=2)).text


async def test_stream_404_before_events_is_session_not_found(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    admin.expire(s.session_id)
    with pytest.raises(SessionNotFound):
        await client.stream_message(s.session_id, "hi", sequence_id=1).final_reply()


async def test_closing_a_stream_early_releases_it(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    async with client.stream_message(s.session_id, "What are your opening hours?", sequence_id=1) as stream:
        async for _ in stream:
            break
    # The emulator sees the turn finish (no 423 on the next one).
    await asyncio.sleep(0.2)
    assert (await client.send_message(s.session_id, "hi", sequence_id=2)).text
    assert admin.counters()["locked"] == 0


async def test_connection_refused_is_retried_then_connection_failed(emu: RunningEmulator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    async with AsyncAgentClient(**client_kwargs(emu), base_url=dead) as client:
        sleeps = RecordingSleep()
        client.transport.sleep = sleeps
        with pytest.raises(ConnectionFailed, match="did not reach"):
            await client.start_session()
    assert len(sleeps.waits) == 3


async def test_base_url_comes_from_api_instance_url_and_an_explicit_one_wins(emu: RunningEmulator) -> None:
    provider = ClientCredentials(emu.url, emu.client_id, emu.client_secret)
    async with AsyncAgentClient(my_domain=emu.url, agent_id=emu.default_agent_id, token_provider=provider) as client:
        await client.start_session()
        token = await provider.get_token(client.transport.post_form)
        assert client.transport.api_base(token) == emu.url
    async with AsyncAgentClient(**client_kwargs(emu, base_url="https://api.gov.salesforce.com")) as client:
        assert client.transport.api_base(token) == "https://api.gov.salesforce.com"
    async with AsyncAgentClient(my_domain=emu.url, access_token="x") as client:
        assert client.transport.api_base(None) == "https://api.salesforce.com"


async def test_wrong_credentials_say_so_without_the_secret(emu: RunningEmulator) -> None:
    async with AsyncAgentClient(**client_kwargs(emu, client_secret="wrong-secret-value")) as client:
        with pytest.raises(AuthError, match="invalid_client") as raised:
            await client.start_session()
    assert "wrong-secret-value" not in str(raised.value)
    assert "wrong-secret-value" not in repr(client.transport.token_provider)


async def test_static_token_rejected_is_auth_error(emu: RunningEmulator) -> None:
    async with AsyncAgentClient(my_domain=emu.url, agent_id=emu.default_agent_id, base_url=emu.url,
                                token_provider=StaticToken("not-a-real-token")) as client:
        with pytest.raises(AuthError, match="static token"):
            await client.start_session()


def test_missing_and_malformed_settings_fail_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SF_MY_DOMAIN", "SF_CLIENT_ID", "SF_CLIENT_SECRET", "SF_AGENT_ID", "SF_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="SF_MY_DOMAIN"):
        AsyncAgentClient()
    with pytest.raises(ConfigError, match="SF_CLIENT_ID"):
        AsyncAgentClient(my_domain="https://acme.my.salesforce.com")
    with pytest.raises(ConfigError, match="SF_MY_DOMAIN"):
        AsyncAgentClient(my_domain="acme", client_id="x", client_secret="y")
    monkeypatch.setenv("SESSIONFORCE_BASE_URL", "not a url")
    with pytest.raises(ConfigError, match="SESSIONFORCE_BASE_URL"):
        AsyncAgentClient(my_domain="https://acme.my.salesforce.com", client_id="x", client_secret="s3cr3t")
    monkeypatch.delenv("SESSIONFORCE_BASE_URL")
    monkeypatch.setenv("SF_CLIENT_SECRET", "from-env-secret")
    client = AsyncAgentClient(my_domain="https://acme.my.salesforce.com", client_id="x")
    assert "from-env-secret" not in repr(client) + repr(client.settings) + repr(client.transport.token_provider)


async def test_bad_arguments_fail_before_sending(client: AsyncAgentClient, admin: Admin) -> None:
    s = await client.start_session()
    with pytest.raises(InvalidArgument, match="sequence_id"):
        await client.send_message(s.session_id, "hi", sequence_id=0)
    with pytest.raises(InvalidArgument, match="message_type"):
        await client.send_message(s.session_id, "hi", sequence_id=1, message_type="Shout")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="reason"):
        await client.end_session(s.session_id, reason="Bored")  # type: ignore[arg-type]
    assert admin.requests("send_message") == 0


async def test_secrets_never_reach_logs(emu: RunningEmulator, admin: Admin, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with AsyncAgentClient(**client_kwargs(emu)) as client:
        s = await client.start_session()
        admin.expire_tokens()
        admin.faults({"route": "send_message", "status": 503, "times": 1})
        client.transport.sleep = RecordingSleep()
        await client.send_message(s.session_id, "hi", sequence_id=1)
        token = await client.fetch_token()
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "retrying" in text
    assert emu.client_secret not in text
    assert token.value not in text
