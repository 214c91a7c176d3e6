"""The wire against a hostile server (issue 11, findings 4, 5, 7 and 8 where they live in the wire): every
misbehaviour ends in our own error, within bounded time, telling the truth about delivery, never resent,
and never carrying the bearer token or the client secret."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sessionforce import AsyncAgentClient, RetryPolicy, Timeouts
from sessionforce.agent_api import MessageStream
from sessionforce.errors import (
    AuthError,
    BadRequest,
    Delivery,
    DeliveryUnknown,
    ProtocolError,
    ServerError,
    SessionforceError,
    StreamInterrupted,
)
from tests.client.hostile import (
    END_OF_TURN,
    Hostile,
    answer,
    hang,
    head,
    inform,
    raw,
    sse,
    trickle,
)

SECRET = "cs-hostile-never-print-me-4b1d"


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    with Hostile() as server:
        yield server


def _client(server: Hostile, **kwargs: Any) -> AsyncAgentClient:
    kwargs.setdefault("retry", RetryPolicy(max_retries=0))
    kwargs.setdefault("timeouts", Timeouts(read=5, stream_read=5))
    return AsyncAgentClient(my_domain=server.url, base_url=server.url, client_id="hostile", client_secret=SECRET,
                            agent_id="0XxHOSTILE0000001", **kwargs)


@pytest.fixture
async def client(hostile: Hostile) -> AsyncIterator[AsyncAgentClient]:
    async with _client(hostile) as c:
        yield c


async def _turn(client: AsyncAgentClient, route: str) -> SessionforceError:
    """Run one turn on ``route`` (send or stream) and return the error it raised."""
    session = await client.start_session()
    try:
        async with asyncio.timeout(15):
            if route == "send":
                await client.send_message(session.session_id, "hello", sequence_id=1)
            else:
                async with client.stream_message(session.session_id, "hello", sequence_id=1) as stream:
                    await stream.final_reply()
    except SessionforceError as exc:
        return exc
    raise AssertionError(f"the {route} raised nothing")


def _texts(exc: BaseException) -> list[str]:
    """Everything an app could print of ``exc`` and its chain."""
    texts, todo, seen = [], [exc], set()
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args), "".join(traceback.format_exception(current))]
        for name in ("body", "message", "partial_text"):
            value = getattr(current, name, None)
            if value is not None:
                texts.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
        todo += [current.__cause__, current.__context__]
    return texts


# ------------------------------------------------------------------ finding 7: a 200 that is not an answer

ERROR_IN_A_200 = {"status": 500, "requestId": "r-1", "error": "HttpServerErrorException", "message": "Internal"}


@pytest.mark.parametrize(
    ("route", "behaviour"),
    [
        ("send", answer(200, ERROR_IN_A_200)),
        ("send", answer(200, {})),
        ("send", answer(200, {"messages": []})),
        ("send", answer(200, b'{"messages": [{"type": "Inform", "id": "m1", "message": "Half an ans')),
        ("send", answer(200, "<html><body>Service Unavailable</body></html>", content_type="text/html")),
        ("send", answer(200, [1, 2, 3])),
        ("send", answer(302, b"", Location="https://login.example/")),
        ("stream", answer(200, ERROR_IN_A_200)),
        ("stream", answer(200, {})),
        ("stream", answer(200, "<html>portal</html>", content_type="text/html")),
        ("stream", sse(END_OF_TURN)),
        ("send", raw(b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}")),
    ],
    ids=["send-status-500-in-200", "send-empty-object", "send-no-messages", "send-truncated-json", "send-html",
         "send-json-array", "send-redirect", "stream-json-error", "stream-json-empty", "stream-html",
         "stream-end-of-turn-alone", "send-status-line-2OO"],
)
async def test_an_answer_that_is_not_an_answer_is_a_protocol_error(
    client: AsyncAgentClient, hostile: Hostile, route: str, behaviour: Any
) -> None:
    hostile.on(route, behaviour)
    error = await _turn(client, route)
    assert type(error) is ProtocolError, f"{type(error).__name__}: {error}"
    assert isinstance(error, DeliveryUnknown)  # the turn may have been received: never resend it blindly
    assert error.delivery is Delivery.MAYBE_DELIVERED
    assert "may have received it" in str(error)
    assert hostile.count(route) == 1


@pytest.mark.parametrize(
    ("route", "behaviour"),
    [
        ("send", raw(head("200 OK", Content_Type="application/json", Content_Length="400") + b'{"messages": [')),
        ("send", raw(head("200 OK", Content_Type="application/json", Transfer_Encoding="chunked")
                     + b'5\r\n{"mes\r\nzz\r\nsages\r\n0\r\n\r\n')),
        ("send", raw(b"")),  # the connection closes once the request was read
        ("stream", raw(head("200 OK", Content_Type="text/event-stream", Transfer_Encoding="chunked")
                       + b"10\r\ndata: {\"message\"\r\nzz\r\n")),
        ("stream", raw(b"")),
    ],
    ids=["send-body-cut-short", "send-bad-chunked", "send-closed", "stream-bad-chunked", "stream-closed"],
)
async def test_an_answer_cut_in_transit_is_delivery_unknown_never_resent(
    client: AsyncAgentClient, hostile: Hostile, route: str, behaviour: Any
) -> None:
    hostile.on(route, behaviour)
    error = await _turn(client, route)
    assert isinstance(error, DeliveryUnknown), f"{type(error).__name__}: {error}"
    assert error.delivery is Delivery.MAYBE_DELIVERED
    assert hostile.count(route) == 1


# ------------------------------------------------------------------ finding 5: streams that never end

PROGRESS = {"message": {"type": "ProgressIndicator", "id": "p", "indicatorType": "ACTION", "message": "Working"}}


@pytest.mark.parametrize(
    "behaviour",
    [
        trickle(b": keep-alive\n\n", interval=0.2),
        trickle(b"d", interval=0.2),
        trickle(b"a", interval=0.2, first=b'data: {"message": {"type": "TextChu'),
        trickle(b"\n", interval=0.2, first=b"data: " + str(inform("partial")).encode()),
    ],
    ids=["keep-alive-comments", "one-byte-at-a-time", "half-an-event-then-bytes", "blank-lines-no-data"],
)
async def test_stream_read_bounds_the_gap_between_complete_events(hostile: Hostile, behaviour: Any) -> None:
    hostile.on("stream", behaviour)
    async with _client(hostile, timeouts=Timeouts(stream_read=1.0, turn=30)) as client:
        started = time.monotonic()
        error = await _turn(client, "stream")
        took = time.monotonic() - started
    assert isinstance(error, StreamInterrupted), f"{type(error).__name__}: {error}"
    assert "Timeouts.stream_read" in str(error)
    assert 0.9 <= took < 5, f"gave up after {took:.1f}s"


async def test_complete_events_reset_stream_read_but_the_turn_deadline_still_holds(hostile: Hostile) -> None:
    progress = f"data: {__import__('json').dumps(PROGRESS)}\n\n".encode()
    hostile.on("stream", trickle(progress, interval=0.2))
    async with _client(hostile, timeouts=Timeouts(stream_read=1.0, turn=2.0)) as client:
        session = await client.start_session()
        started = time.monotonic()
        events = 0

        async def read_all() -> None:
            nonlocal events
            async with asyncio.timeout(15):
                async for _ in client.stream_message(session.session_id, "hi", sequence_id=1):
                    events += 1

        with pytest.raises(StreamInterrupted, match=r"Timeouts\.turn") as info:
            await read_all()
        took = time.monotonic() - started
    assert events >= 5  # progress kept coming: stream_read alone would never end this turn
    assert 1.8 <= took < 5, f"the turn deadline was not kept ({took:.1f}s)"
    assert info.value.delivery is Delivery.MAYBE_DELIVERED
    assert hostile.count("stream") == 1


async def test_a_send_is_bounded_by_the_turn_deadline(hostile: Hostile) -> None:
    hostile.on("send", hang())
    async with _client(hostile, timeouts=Timeouts(read=30, turn=1.0)) as client:
        started = time.monotonic()
        error = await _turn(client, "send")
        took = time.monotonic() - started
    assert isinstance(error, DeliveryUnknown), f"{type(error).__name__}: {error}"
    assert took < 4
    assert hostile.count("send") == 1


async def test_a_stream_whose_headers_never_come_is_bounded(hostile: Hostile) -> None:
    hostile.on("stream", hang())
    async with _client(hostile, timeouts=Timeouts(stream_read=1.0, turn=30)) as client:
        started = time.monotonic()
        error = await _turn(client, "stream")
    assert isinstance(error, DeliveryUnknown), f"{type(error).__name__}: {error}"
    assert time.monotonic() - started < 4
    assert hostile.count("stream") == 1


async def test_a_good_stream_after_a_slow_consumer_is_not_cut(hostile: Hostile) -> None:
    """stream_read measures the wait for an event, not the time the app spends between events."""
    hostile.on("stream", sse(PROGRESS, inform("Hello"), END_OF_TURN))
    async with _client(hostile, timeouts=Timeouts(stream_read=0.5, turn=30)) as client:
        session = await client.start_session()
        stream: MessageStream = client.stream_message(session.session_id, "hi", sequence_id=1)
        async with stream:
            first = await anext(stream)
            await asyncio.sleep(0.8)  # longer than stream_read, with the rest already buffered
            reply = await stream.final_reply()
    assert first.message == "Working"  # type: ignore[union-attr]
    assert reply.text == "Hello"


# ------------------------------------------------------------------ finding 4: secrets never in an error


@pytest.mark.parametrize(
    ("route", "status"),
    [("send", 500), ("send", 400), ("send", 401), ("stream", 500), ("stream", 400), ("end", 500)],
)
async def test_a_server_echoing_the_token_never_puts_it_in_the_error(
    hostile: Hostile, route: str, status: int
) -> None:
    async def echo(writer: asyncio.StreamWriter, request: Any, server: Hostile) -> None:
        bearer = request.headers["authorization"]
        body = {"status": status, "error": "X", "requestId": "r", "message": f"bad session for '{bearer}'",
                "echo": {"access_token": server.token}}
        await answer(status, body)(writer, request, server)

    hostile.on(route, echo)
    async with _client(hostile) as client:
        session = await client.start_session()
        calls = {
            "end": lambda: client.end_session(session.session_id),
            "send": lambda: client.send_message(session.session_id, "hello", sequence_id=1),
            "stream": lambda: client.stream_message(session.session_id, "hello", sequence_id=1).final_reply(),
        }
        with pytest.raises(SessionforceError) as info:
            await calls[route]()
    error = info.value
    assert isinstance(error, AuthError if status == 401 else BadRequest if status == 400 else ServerError)
    assert "[REDACTED]" in str(error)  # the server's message is kept, the token is not
    assert error.body_json["echo"]["access_token"] == "[REDACTED]"  # the raw body, kept, scrubbed
    leaks = [t for t in _texts(error) if hostile.token in t]
    assert not leaks, leaks[:2]


@pytest.mark.parametrize(
    "behaviour",
    [
        raw(b"HTTP/1.1 2OO OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"),
        raw(b"HTTP/1.1 200 OK\r\nX-Broken Header\r\n\r\n"),
        raw(head("200 OK", Content_Type="application/json", Transfer_Encoding="chunked") + b"zz\r\n"),
    ],
    ids=["status-line-2OO", "bad-header", "bad-chunked"],
)
@pytest.mark.parametrize("route", ["send", "stream"])
async def test_an_unreadable_answer_never_chains_the_request_headers(
    client: AsyncAgentClient, hostile: Hostile, behaviour: Any, route: str
) -> None:
    hostile.on(route, behaviour)
    error = await _turn(client, route)
    assert isinstance(error, DeliveryUnknown)
    assert error.__cause__ is not None  # the lower error is kept for debugging, scrubbed
    leaks = [t for t in _texts(error) if hostile.token in t]
    assert not leaks, leaks[:2]


async def test_an_sse_error_event_echoing_the_token_is_answered_and_scrubbed(
    client: AsyncAgentClient, hostile: Hostile
) -> None:
    async def echo(writer: asyncio.StreamWriter, request: Any, server: Hostile) -> None:
        bearer = request.headers["authorization"]
        event = {"status": 500, "error": "HttpServerErrorException", "message": f"bad {bearer}"}
        await sse(PROGRESS, event)(writer, request, server)

    hostile.on("stream", echo)
    error = await _turn(client, "stream")
    assert isinstance(error, ServerError)
    assert error.delivery is Delivery.ANSWERED  # the agent got the turn and answered that it failed
    assert not [t for t in _texts(error) if hostile.token in t]


@pytest.mark.parametrize("status", [400, 401, 500])
async def test_a_token_endpoint_echoing_the_secret_never_puts_it_in_the_error(hostile: Hostile, status: int) -> None:
    async def echo(writer: asyncio.StreamWriter, request: Any, server: Hostile) -> None:
        refusal = {"error": "invalid_client", "error_description": f"bad form {request.body.decode()}"}
        await answer(status, refusal)(writer, request, server)

    hostile.on("token", echo)
    async with _client(hostile) as client:
        with pytest.raises(SessionforceError) as info:
            await client.start_session()
    assert SECRET in hostile.requests[0].body.decode()
    assert not [t for t in _texts(info.value) if SECRET in t]
    assert info.value.delivery is Delivery.NOT_SENT


# ------------------------------------------------------------------ finding 8: no raw exception from the wire


async def test_arguments_that_cannot_go_on_the_wire_are_invalid_argument(
    client: AsyncAgentClient, hostile: Hostile
) -> None:
    from sessionforce.errors import InvalidArgument

    calls = {
        "session id with a lone surrogate": lambda: client.send_message("s-\udc80", "hi", sequence_id=1),
        "agent id with a lone surrogate": lambda: client.start_session("0Xx\ud800"),
        "external key with a lone surrogate": lambda: client.start_session(external_session_key="k\ud800"),
        "variables='abc' on send": lambda: client.send_message("s", "hi", sequence_id=1, variables="abc"),
        "variables='abc' on start": lambda: client.start_session(variables="abc"),
        "a variable that is a string": lambda: client.start_session(variables=["abc"]),
        "a NaN variable": lambda: client.start_session(variables=[{"name": "n", "value": float("nan")}]),
        "feedback text with a lone surrogate": lambda: client.submit_feedback("s", "f", "GOOD", "bad \ud800"),
        "an end reason that is a list": lambda: client.end_session("s", ["UserRequest"]),  # type: ignore[arg-type]
        "stream text with a lone surrogate": lambda: client.stream_message("s", "\ud800", sequence_id=1).final_reply(),
    }
    for what, call in calls.items():
        with pytest.raises(InvalidArgument) as info:
            await call()
        assert info.value.delivery is Delivery.NOT_SENT, what
    assert hostile.requests == []  # nothing was sent for any of them
