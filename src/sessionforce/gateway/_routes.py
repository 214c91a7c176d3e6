"""The HTTP API (v1): tokens, messages, events, transcript, end, feedback; and the operations routes.

Each route checks credentials and limits first (:mod:`._requests`), then does one thing. Routes read the
running gateway from ``request.app.state.gateway``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from sessionforce.errors import SessionforceError
from sessionforce.gateway._agent import TurnRequest, describe_failure
from sessionforce.gateway._errors import GatewayError, bad_request, json_response, not_found, shutting_down
from sessionforce.gateway._hub import follow
from sessionforce.gateway._requests import read_json
from sessionforce.gateway._sse import KEEPALIVE, OPEN, RECONNECT, frame, sse_response
from sessionforce.gateway._tokens import MAX_CONVERSATIONS, valid_conversation_id
from sessionforce.gateway._turns import STATUS

if TYPE_CHECKING:
    from sessionforce.gateway._gateway import Gateway

__all__ = ["api_routes"]


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _string(body: dict[str, Any], name: str, *, limit: int, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise bad_request(f"'{name}' must be a string of 1 to {limit} printable characters.")
    return value


def _publish(gateway: Gateway, conversation_id: str, kind: str, data: dict[str, Any]) -> None:
    gateway.writer.publish(conversation_id, kind, data)


def _lifecycle_error(exc: SessionforceError) -> GatewayError:
    failure = describe_failure(exc, sent=False)
    return GatewayError(STATUS.get(failure.code, 500), failure.code, failure.message,
                        retry_after=failure.retry_after)


# -- tokens -------------------------------------------------------------------------------------------


def _token_body(token: str, user: str, conversations: list[str], ttl: float) -> dict[str, Any]:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
    return {"token": token, "expires_in": int(ttl), "expires_at": expires.isoformat(timespec="seconds").replace(
        "+00:00", "Z"), "conversations": conversations, "user": user}


async def create_token(request: Request) -> Response:
    """``POST /v1/tokens`` (API key): a token for an end user, scoped to conversations (new one if none)."""
    gateway = _gateway(request)
    await gateway.guard.limit(request)
    gateway.guard.api_key(request)
    body = await read_json(request, gateway.settings.max_body_bytes)
    user = _string(body, "user", limit=200)
    assert user is not None
    conversations = body.get("conversations")
    if conversations is None:
        conversations = [str(uuid.uuid4())]
    if (not isinstance(conversations, list) or not 1 <= len(conversations) <= MAX_CONVERSATIONS
            or not all(valid_conversation_id(c) for c in conversations)):
        raise bad_request(f"'conversations' must be a list of 1 to {MAX_CONVERSATIONS} conversation ids (1-128 "
                          "letters, digits and . _ : @ -, starting with a letter or digit).")
    ttl = body.get("ttl", gateway.settings.token_ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= gateway.settings.max_token_ttl:
        raise bad_request(f"'ttl' must be a number of seconds from 1 to {int(gateway.settings.max_token_ttl)}.")
    token = gateway.guard.tokens.mint(user, conversations, ttl)
    return json_response(_token_body(token, user, list(dict.fromkeys(conversations)), ttl))


async def refresh_token(request: Request) -> Response:
    """``POST /v1/tokens/refresh`` (a valid end-user token): a fresh token, same user and scope."""
    gateway = _gateway(request)
    user = await gateway.guard.end_user(request)
    ttl = min(max(1.0, user.expires_at - user.issued_at), gateway.settings.max_token_ttl)
    token = gateway.guard.tokens.mint(user.user, user.conversations, ttl)
    return json_response(_token_body(token, user.user, list(user.conversations), ttl))


async def demo_token(request: Request) -> Response:
    """``POST /v1/demo/token``: only on the demo setup, a token for a new conversation."""
    gateway = _gateway(request)
    if not gateway.demo:
        raise not_found()
    await gateway.guard.limit(request)
    conversation = str(uuid.uuid4())
    user = "demo-" + uuid.uuid4().hex[:12]
    ttl = gateway.settings.token_ttl
    return json_response(_token_body(gateway.guard.tokens.mint(user, [conversation], ttl), user, [conversation], ttl))


# -- conversations ------------------------------------------------------------------------------------


def _message(body: dict[str, Any], conversation_id: str, gateway: Gateway) -> TurnRequest:
    settings = gateway.settings
    message_id = _string(body, "id", limit=settings.max_id_chars)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("'text' must be a non-empty string.")
    if len(text) > settings.max_text_chars:
        raise GatewayError(413, "text_too_large", f"'text' is longer than {settings.max_text_chars} characters. "
                           "What to do: send a shorter message.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request("'text' holds an unpaired surrogate (\\ud800-\\udfff): it is not valid Unicode.") from None
    kind = body.get("type", "Text")
    if kind not in ("Text", "Reply"):
        raise bad_request("'type' must be \"Text\" (a message) or \"Reply\" (an answer to a Confirm or Inquire).")
    in_reply_to = _string(body, "in_reply_to", limit=200, required=False)
    assert message_id is not None
    return TurnRequest(conversation_id, message_id, text, kind, in_reply_to)


def _wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


async def post_message(request: Request) -> Response:
    """``POST /v1/conversations/{id}/messages``: one user turn, answered once per client message id."""
    gateway = _gateway(request)
    _, conversation_id = await gateway.guard.conversation(request)
    if gateway.hub.draining:
        raise shutting_down()
    message = _message(await read_json(request, gateway.settings.max_body_bytes), conversation_id, gateway)
    attempt = await gateway.turns.submit(message)
    if _wants_stream(request):
        async def turn_stream() -> AsyncIterator[bytes]:
            yield OPEN
            ended = False
            async for batch in gateway.turns.events(attempt):
                ended = batch[-1][1] in ("turn.end", "turn.error")
                yield b"".join(frame(event_id, kind, data) for event_id, kind, data in batch)
            if not ended:
                yield RECONNECT

        return sse_response(_counted(gateway, "message", turn_stream()))
    outcome = await gateway.turns.outcome(attempt, wait=gateway.settings.queue_wait)
    headers = {"Retry-After": str(max(1, round(outcome.retry_after)))} if outcome.retry_after else None
    return json_response(outcome.body, outcome.status, headers)


async def _counted(gateway: Gateway, kind: str, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``stream``, counted among the open end-user streams from its first byte until it ends, however."""
    streams, attributes = gateway.telemetry.streams, {"kind": kind}
    streams.add(1, attributes)
    try:
        async for chunk in stream:
            yield chunk
    finally:
        streams.add(-1, attributes)


def _cursor(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise bad_request("'Last-Event-ID' / 'after' must be an event id (a whole number, 0 for everything kept).")
    return int(raw)


async def stream_events(request: Request) -> Response:
    """``GET /v1/conversations/{id}/events``: every event after the cursor, then new ones as they come."""
    gateway = _gateway(request)
    _, conversation_id = await gateway.guard.conversation(request, allow_query=True)
    if gateway.hub.draining:
        raise shutting_down()
    after = _cursor(request)
    last = await gateway.state.last_id(conversation_id)
    replay = after is not None
    truncated: dict[str, int] | None = None
    if after is None:
        after = last
    elif after > last:  # a cursor from a log that is gone (the state was wiped): replay what there is
        truncated, after = {"after": after, "first_available": 1}, 0

    async def event_stream() -> AsyncIterator[bytes]:
        yield OPEN
        if truncated is not None:
            yield frame(None, "history.truncated", truncated)
        expected = after + 1
        async for batch in follow(gateway.hub, gateway.state, conversation_id, after,
                                  keepalive=gateway.settings.keepalive):
            if batch is None:
                yield KEEPALIVE
                continue
            frames = []
            for event in batch:
                if replay and event.id > expected:  # the log dropped events this client has not seen
                    frames.append(frame(None, "history.truncated", {"after": expected - 1,
                                                                    "first_available": event.id}))
                expected = event.id + 1
                frames.append(frame(event.id, event.type, event.data))
            yield b"".join(frames)  # one write per batch, not one per event
        yield RECONNECT

    return sse_response(_counted(gateway, "events", event_stream()))


async def start_conversation(request: Request) -> Response:
    """``POST /v1/conversations/{id}/start``: make sure a session is live (its greeting becomes an event)."""
    gateway = _gateway(request)
    _, conversation_id = await gateway.guard.conversation(request)
    greeting: list[Any] = []

    def emit(kind: str, data: dict[str, Any]) -> None:
        if kind == "session.started":
            greeting.extend(data.get("greeting") or [])
        _publish(gateway, conversation_id, kind, data)

    try:
        started, session_id = await gateway.agent.start(conversation_id, emit)
    except SessionforceError as exc:
        raise _lifecycle_error(exc) from None
    return json_response({"conversation_id": conversation_id, "started": started, "session_id": session_id,
                          "greeting": greeting})


async def end_conversation(request: Request) -> Response:
    """``DELETE /v1/conversations/{id}``: end the live session, if any."""
    gateway = _gateway(request)
    _, conversation_id = await gateway.guard.conversation(request)
    try:
        ended = await gateway.agent.end(conversation_id, lambda kind, data: _publish(gateway, conversation_id, kind,
                                                                                    data))
    except SessionforceError as exc:
        raise _lifecycle_error(exc) from None
    return json_response({"ended": ended})


async def transcript(request: Request) -> Response:
    """``GET /v1/conversations/{id}/transcript``: every recorded entry, oldest first."""
    gateway = _gateway(request)
    _, conversation_id = await gateway.guard.conversation(request)
    try:
        entries = await gateway.agent.transcript(conversation_id)
    except SessionforceError as exc:
        raise _lifecycle_error(exc) from None
    return json_response({"conversation_id": conversation_id, "entries": entries})


async def feedback(request: Request) -> Response:
    """``POST /v1/conversations/{id}/feedback``: rate a reply of the live session."""
    gateway = _gateway(request)
    _, conversation_id = await gateway.guard.conversation(request)
    body = await read_json(request, gateway.settings.max_body_bytes)
    feedback_id = _string(body, "feedback_id", limit=200)
    value = body.get("feedback")
    if value not in ("GOOD", "BAD"):
        raise bad_request("'feedback' must be \"GOOD\" or \"BAD\".")
    comment = body.get("text")
    if comment is not None and (not isinstance(comment, str) or len(comment) > gateway.settings.max_text_chars):
        raise bad_request(f"'text' must be a string of at most {gateway.settings.max_text_chars} characters.")
    assert feedback_id is not None
    try:
        await gateway.agent.feedback(conversation_id, feedback_id, value, comment)
    except SessionforceError as exc:
        raise _lifecycle_error(exc) from None
    return Response(status_code=204)


def api_routes() -> list[tuple[str, Any, list[str]]]:
    """``(path, endpoint, methods)`` of the v1 API."""
    conversation = "/v1/conversations/{conversation_id}"
    return [
        ("/v1/tokens", create_token, ["POST"]),
        ("/v1/tokens/refresh", refresh_token, ["POST"]),
        ("/v1/demo/token", demo_token, ["POST"]),
        (conversation + "/messages", post_message, ["POST"]),
        (conversation + "/events", stream_events, ["GET"]),
        (conversation + "/start", start_conversation, ["POST"]),
        (conversation + "/transcript", transcript, ["GET"]),
        (conversation + "/feedback", feedback, ["POST"]),
        (conversation, end_conversation, ["DELETE"]),
    ]
