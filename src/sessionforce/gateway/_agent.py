"""The gateway's one door to the layers below: conversations, their events, their errors.

Everything the gateway does with the lifecycle, the client and the store goes through here, in the
gateway's own vocabulary (event types and data of the HTTP contract, failures with a delivery), so that
a change of the library's API is a change of this module alone. Only public names are used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sessionforce.agent_api import (
    AsyncAgentClient,
    EndOfTurnEvent,
    MessageEvent,
    ProgressEvent,
    TextChunkEvent,
    ValidationFailureEvent,
)
from sessionforce.config import ClientSettings
from sessionforce.errors import (
    APIStatusError,
    AuthError,
    BadRequest,
    ConnectionFailed,
    ConversationBusy,
    ConversationEnded,
    ConversationError,
    Delivery,
    DeliveryUnknown,
    InvalidArgument,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    SessionforceError,
    SessionLocked,
    SessionStartFailed,
    StoreUnavailable,
    StreamInterrupted,
)
from sessionforce.lifecycle import ConversationEvent, Conversations, EventKind, reap_idle
from sessionforce.store import Store, open_store
from sessionforce.telemetry import Telemetry

__all__ = ["Agent", "Emit", "Failure", "TurnCall", "TurnRequest"]

logger = logging.getLogger("sessionforce.gateway")

Emit = Callable[[str, dict[str, Any]], None]
"""Where the lifecycle's events go, already in the contract's terms: ``emit(event_type, data)``."""
DeliveryName = Literal["not_sent", "maybe_delivered", "answered"]


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One user message, as the browser sent it (validated)."""

    conversation_id: str
    message_id: str
    text: str
    type: Literal["Text", "Reply"] = "Text"
    in_reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a call failed, in the contract's terms; ``message`` is safe to show an end user."""

    code: str
    message: str
    delivery: DeliveryName
    retry_after: float | None = None


REDIS_POOL = 1000
"""Connections a worker may open to Redis when the URL does not say: redis-py's default (100) refuses
commands past it (MaxConnectionsError), and a gateway worker runs hundreds of turns at once."""


def redis_pool_sized(url: str) -> str:
    """``url`` with ``max_connections`` set for a Redis URL that does not set it."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or "max_connections" in dict(parse_qsl(parts.query)):
        return url
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("max_connections", str(REDIS_POOL))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _wire(message: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = message.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


# What each lower error means for the end user. Looked up along the exception's class hierarchy, most
# specific first; "sent" errors are the ones that may follow the turn reaching the agent.
_FAILURES: list[tuple[type[BaseException], str, str, bool]] = [
    (ConversationBusy, "turn_in_progress", "Another message of this conversation is still being answered. What to "
     "do: wait for its reply, then send again.", False),
    (ConversationEnded, "conversation_ended", "The agent ended this conversation. What to do: start a new one.",
     False),
    (InvalidArgument, "invalid_request", "The message was refused before it was sent. What to do: check it.", False),
    (SessionStartFailed, "agent_unavailable", "No session could be started with the agent; the message was not "
     "sent. What to do: retry in a moment.", False),
    (StreamInterrupted, "reply_incomplete", "The message reached the agent, but its reply broke off. What to do: do "
     "not resend it; read the conversation's events or transcript.", True),
    (DeliveryUnknown, "delivery_unknown", "The message was sent, but no answer came back: the agent may have acted "
     "on it. What to do: do not resend it blindly; check with the user.", True),
    (ConnectionFailed, "agent_unreachable", "The agent could not be reached; the message was not sent. What to do: "
     "retry in a moment.", False),
    (RateLimited, "agent_busy", "The agent is rate limited; the message was not sent. What to do: retry after "
     "the Retry-After delay.", False),
    (SessionLocked, "agent_busy", "The agent was still busy with this session; the message was not sent. What to "
     "do: retry in a moment.", False),
    (AuthError, "agent_unavailable", "The gateway cannot authenticate with the agent; the message was not sent. "
     "What to do: tell the site's operators.", False),
    (NotFound, "agent_unavailable", "The agent could not be found; the message was not sent. What to do: tell the "
     "site's operators.", False),
    (BadRequest, "agent_refused", "The agent refused the message (is the message you answer still current?). What "
     "to do: check it and send again.", False),
    (ServerError, "agent_error", "The agent failed while handling the message; it may have acted on it. What to "
     "do: do not resend it blindly.", True),
    (ProtocolError, "agent_error", "The agent's answer could not be read; it may have acted on the message.", True),
    (StoreUnavailable, "unavailable", "The conversation's storage is unavailable. What to do: retry in a moment.",
     True),
    (ConversationError, "not_recorded", "The conversation's state could not be recorded. What to do: retry in a "
     "moment.", True),
    (asyncio.CancelledError, "shutdown", "The gateway stopped while the message was being handled. What to do: "
     "do not resend it blindly; re-attach to the conversation's events.", True),
]


def describe_failure(exc: BaseException, sent: bool) -> Failure:
    """The :class:`Failure` an exception means. The library's errors say what became of the request
    (``exc.delivery``); ``sent`` (the lifecycle's ``turn_sent`` event fired) guards the rest: before it,
    nothing can have reached the agent."""
    if isinstance(exc, ConversationError) and exc.reply is not None:
        return Failure("not_recorded", "The agent answered, but the answer could not be recorded. Its messages "
                       "were delivered as events.", "answered")
    told = exc.delivery if isinstance(exc, SessionforceError) else None
    for cls, code, message, may_have_reached in _FAILURES:
        if isinstance(exc, cls):
            if not sent:
                delivery: DeliveryName = "not_sent"
            elif isinstance(told, Delivery):
                delivery = told.value
            else:
                delivery = "maybe_delivered" if may_have_reached else "not_sent"
            retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
            return Failure(code, message, delivery, retry_after)
    return Failure("internal_error", "The gateway failed while handling the message.",
                   "maybe_delivered" if sent else "not_sent")


class TurnCall:
    """One user turn through the lifecycle. Iterate :meth:`events` for the turn's events (``agent.*`` then
    ``turn.end``); the lifecycle's own (``session.started``, ``user.message``, ``session.ended``) go to
    ``emit`` as they happen. ``sent`` tells whether the turn was handed to the Agent API."""

    def __init__(self, agent: Agent, request: TurnRequest, emit: Emit) -> None:
        self._agent = agent
        self._request = request
        self._emit = emit
        self.sent = False
        self.ids: dict[str, Any] = {}
        """The lifecycle's correlation keys of the turn once sent (for log records)."""

    def _hook(self, event: ConversationEvent) -> None:
        request = self._request
        if event.kind is EventKind.TURN_SENT:
            self.ids = {"externalSessionKey": event.external_session_key, "sessionId": event.session_id,
                        "sequenceId": event.sequence_id}
            if not self.sent:  # a resend on a new session (after a 404) is the same user message
                self.sent = True
                data: dict[str, Any] = {"message_id": request.message_id, "text": request.text, "type": request.type}
                if request.in_reply_to is not None:
                    data["in_reply_to"] = request.in_reply_to
                self._emit("user.message", data)
        else:
            _emit_lifecycle(self._emit, event, by_user=False)

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        request = self._request
        conversation = self._agent.conversation(request.conversation_id, self._hook)
        async with conversation.stream(request.text, message_type=request.type,
                                       in_reply_to=request.in_reply_to) as stream:
            async for event in stream:
                if isinstance(event, TextChunkEvent):
                    inner = event.raw.get("message")
                    chunk_id = inner.get("id") if isinstance(inner, dict) else None
                    yield "agent.text_chunk", {"message_id": chunk_id, "offset": event.offset, "text": event.text}
                elif isinstance(event, MessageEvent):
                    yield "agent.message", {"message": _wire(event.message)}
                elif isinstance(event, ProgressEvent):
                    yield "agent.progress", {"message": event.message, "indicator": event.indicator_type}
                elif isinstance(event, ValidationFailureEvent):
                    yield "agent.validation_failure", {"offset": event.offset, "reason": event.reason}
                elif isinstance(event, EndOfTurnEvent):
                    reply = stream.reply
                    assert reply is not None
                    yield "turn.end", {
                        "message_id": request.message_id, "sequence_id": reply.sequence_id,
                        "session_id": reply.session_id, "awaiting": reply.awaiting.value, "resumed": reply.resumed,
                        "resume_reason": reply.resume_reason,
                    }
                else:
                    logger.debug("skipped an agent event this gateway does not know: %r", event)


def _emit_lifecycle(emit: Emit, event: ConversationEvent, *, by_user: bool) -> None:
    detail = event.detail
    if event.kind is EventKind.SESSION_STARTED:
        greeting = detail.get("greeting")
        reason = detail.get("resume_reason")
        emit("session.started", {
            "session_id": event.session_id, "resumed": reason is not None, "reason": reason,
            "greeting": [_wire(m) for m in greeting.messages] if greeting is not None else [],
        })
    elif event.kind is EventKind.ENDED:
        by = "agent" if detail.get("by") == "agent" else "user" if by_user else "gateway"
        emit("session.ended", {"session_id": event.session_id, "reason": detail.get("reason"), "by": by})


class Agent:
    """The org (or the emulator) behind the gateway: one client, one store, conversations on demand."""

    def __init__(self, org: ClientSettings, store_url: str | None, *, lease_ttl: float, queue_wait: float,
                 telemetry: Telemetry | None = None) -> None:
        self._org = org
        self._telemetry = telemetry
        self._store_url = store_url
        self._lock_wait = queue_wait
        self._lease_ttl = lease_ttl
        self._client: AsyncAgentClient | None = None
        self._store: Store | None = None
        self._conversations: Conversations | None = None
        self._ready_at = 0.0
        self._ready: str | None = "starting"

    @property
    def agent_id(self) -> str | None:
        """The agent conversations talk to."""
        return self._org.agent_id

    async def open(self) -> None:
        """Open the store and the client (nothing is sent yet)."""
        self._store = open_store(redis_pool_sized(self._store_url) if self._store_url else None)
        self._client = AsyncAgentClient(settings=self._org, telemetry=self._telemetry)
        self._conversations = Conversations(self._client, store=self._store, lock_wait=self._lock_wait,
                                            lease_ttl=self._lease_ttl, telemetry=self._telemetry)

    async def aclose(self) -> None:
        """Close the client and the store."""
        client, store = self._client, self._store
        self._client = self._store = self._conversations = None
        try:
            if client is not None:
                await client.aclose()
        finally:
            if store is not None:
                await store.aclose()

    def conversation(self, conversation_id: str, hook: Callable[[ConversationEvent], None]) -> Any:
        """The lifecycle's conversation ``conversation_id``, its events going to ``hook``."""
        assert self._conversations is not None, "Agent.open() first"
        return self._conversations.get(conversation_id, hooks=[("*", hook)])

    def turn(self, request: TurnRequest, emit: Emit) -> TurnCall:
        """A user turn to iterate (see :class:`TurnCall`)."""
        return TurnCall(self, request, emit)

    async def start(self, conversation_id: str, emit: Emit) -> tuple[bool, str | None]:
        """Make sure a live session exists: ``(started now?, session id)``; the greeting goes to ``emit``."""
        conversation = self.conversation(conversation_id, lambda e: _emit_lifecycle(emit, e, by_user=False))
        started = await conversation.start()
        record = await conversation.record()
        return started is not None, record.session_id if record is not None else None

    async def end(self, conversation_id: str, emit: Emit) -> bool:
        """End the conversation's live session, if any (``session.ended`` goes to ``emit``)."""
        conversation = self.conversation(conversation_id, lambda e: _emit_lifecycle(emit, e, by_user=True))
        ended: bool = await conversation.end()
        return ended

    async def feedback(self, conversation_id: str, feedback_id: str, value: Literal["GOOD", "BAD"],
                       text: str | None) -> None:
        """Rate a reply of the conversation's live session."""
        conversation = self.conversation(conversation_id, lambda e: None)
        await conversation.feedback(feedback_id, value, text=text)

    async def transcript(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's transcript entries, oldest first, as JSON-ready dicts."""
        conversation = self.conversation(conversation_id, lambda e: None)
        return [entry.to_dict() for entry in await conversation.transcript()]

    async def reap(self, idle_for: float) -> list[tuple[str, str | None]]:
        """End the sessions idle ``idle_for`` seconds (safe from every worker at once); the conversations
        ended and the session each had."""
        assert self._conversations is not None
        assert self._store is not None
        reaped = await reap_idle(self._conversations, idle_for=idle_for)
        ended = []
        for conversation_id in reaped:
            record = await self._store.load(conversation_id)
            last = record.sessions[-1].session_id if record is not None and record.sessions else None
            ended.append((conversation_id, last))
        return ended

    async def check(self, max_age: float = 2.0) -> str | None:
        """``None`` when the store answers and an org token can be had, else the failing check's name.
        Remembered for ``max_age`` seconds, so probes never load the org's token endpoint."""
        now = time.monotonic()
        if now - self._ready_at < max_age:
            return self._ready
        failed: str | None = None
        if self._client is None or self._store is None:
            failed = "starting"
        else:
            try:
                await self._store.load("sessionforce-gateway-readyz")
            except SessionforceError:
                failed = "store"
            else:
                try:
                    await self._client.fetch_token()
                except (APIStatusError, SessionforceError):
                    failed = "org"
        self._ready, self._ready_at = failed, now
        return failed
