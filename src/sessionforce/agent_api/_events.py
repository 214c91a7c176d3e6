"""The Agent API's stream events, typed: built from decoded SSE events, assembled into a reply, and the
base of every stream object (:class:`EventStream`). Decoding the bytes is :mod:`._sse`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from pydantic import ValidationError

from sessionforce.agent_api._models import AgentMessage, ErrorMessage, agent_message_adapter
from sessionforce.agent_api._reply import Reply, construct_validated
from sessionforce.agent_api._sse import ServerSentEvent
from sessionforce.errors import APIStatusError
from sessionforce.errors._build import in_stream_error, protocol_error

__all__ = [
    "EndOfTurnEvent",
    "EventStream",
    "MessageEvent",
    "ProgressEvent",
    "ReplyAssembler",
    "StreamEvent",
    "TextChunkEvent",
    "UnknownEvent",
    "ValidationFailureEvent",
    "raise_for_error_messages",
    "require_answer",
    "stream_event_from_sse",
]

@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """The agent is working (e.g. running an action); ``message`` is a human-readable status."""

    message: str
    indicator_type: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class TextChunkEvent:
    """A piece of the reply text, to show as it arrives. The final message is the truth."""

    text: str
    offset: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class ValidationFailureEvent:
    """The text shown so far failed a content check: throw it away; the final message replaces it."""

    offset: int | None = None
    reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A complete agent message (``Inform``, ``Confirm``, ``Escalate``, ...)."""

    message: AgentMessage


@dataclass(frozen=True, slots=True)
class EndOfTurnEvent:
    """The turn is complete. ``reply`` holds every complete message of the turn."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event this version does not know, kept visible rather than dropped."""

    type: str
    data: Any


StreamEvent = (
    ProgressEvent | TextChunkEvent | ValidationFailureEvent | MessageEvent | EndOfTurnEvent | UnknownEvent
)
"""Any event :meth:`AsyncAgentClient.stream_message` yields."""


_END_OF_TURN = "EndOfTurn"


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def stream_event_from_sse(sse: ServerSentEvent) -> StreamEvent | None:
    """Read one SSE event as an Agent API event; ``None`` for the end-of-turn marker.

    The one end-of-turn rule, and the one type rule: the type is ``data.message.type``; the ``event:``
    line only when the data names none (public samples disagree on whether it is sent). Raises the
    mapped :class:`APIStatusError` for an error event (the agent answered the turn with a failure).
    """
    try:
        data = json.loads(sse.data)
    except ValueError:
        data = None
    payload = data.get("message") if isinstance(data, dict) else None
    if not isinstance(payload, dict):
        if sse.event == _END_OF_TURN:
            return None
        if isinstance(data, dict) and (sse.event.lower() == "error" or ("status" in data and "error" in data)):
            raise _error_from_body(data, sse.data)
        return UnknownEvent(type=sse.event, data=sse.data if data is None else data)
    kind = payload.get("type") if isinstance(payload.get("type"), str) else sse.event
    if kind == _END_OF_TURN:
        return None
    if kind == "ProgressIndicator":
        return ProgressEvent(
            message=_as_str(payload.get("message")) or "",
            indicator_type=_as_str(payload.get("indicatorType")),
            raw=data,
        )
    if kind == "TextChunk":
        return TextChunkEvent(
            text=_as_str(payload.get("message")) or "",
            offset=_as_int(payload.get("offset", data.get("offset"))),
            raw=data,
        )
    if kind == "ValidationFailureChunk":
        return ValidationFailureEvent(
            offset=_as_int(payload.get("offset", data.get("offset"))),
            reason=_as_str(payload.get("reason")),
            raw=data,
        )
    if kind and "type" not in payload:
        payload = {**payload, "type": kind}
    try:
        message = agent_message_adapter.validate_python(payload)
    except ValidationError:
        return UnknownEvent(type=str(kind), data=data)
    if isinstance(message, ErrorMessage):
        raise _error_from_message(message, sse.data)
    return MessageEvent(message=message)


def _error_from_message(message: ErrorMessage, raw: str) -> APIStatusError:
    status = message.http_status if isinstance(message.http_status, int) else None
    return in_stream_error(status, message.message or message.error, request_id=message.trace_id, raw=raw)


def _error_from_body(data: dict[str, Any], raw: str) -> APIStatusError:
    status = data.get("status")
    text = _as_str(data.get("message")) or _as_str(data.get("error")) or "the stream reported an error"
    return in_stream_error(_as_int(status), text, request_id=_as_str(data.get("requestId")), raw=raw)


def raise_for_error_messages(messages: list[AgentMessage], raw: bytes | str) -> None:
    """Raise the mapped error when a reply contains an ``Error`` message (the turn failed)."""
    for message in messages:
        if isinstance(message, ErrorMessage):
            raise _error_from_message(message, raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))


def require_answer(messages: list[AgentMessage], raw: bytes | str | None, status: int | None = 200) -> None:
    """The one rule for what counts as an answer to a turn (sent or streamed): at least one message.

    A 200 without messages (``{}``, an error-shaped body, an end of turn with nothing before it) is not
    an answer: :class:`~sessionforce.errors.ProtocolError` (the turn may have been received).
    """
    if not messages:
        raise protocol_error("a 200 without any agent message (not an answer to the turn)", body=raw, status=status)
    raise_for_error_messages(messages, raw or "")


class ReplyAssembler:
    """Collects one streamed turn: the text shown so far and the complete messages."""

    __slots__ = ("_chunks", "messages", "sequence_id", "session_id")

    def __init__(self, session_id: str, sequence_id: int) -> None:
        self.session_id = session_id
        self.sequence_id = sequence_id
        self._chunks: list[str] = []
        self.messages: list[AgentMessage] = []

    def add(self, event: StreamEvent) -> None:
        """Take one event into account."""
        if isinstance(event, TextChunkEvent):
            self._chunks.append(event.text)
        elif isinstance(event, ValidationFailureEvent):
            self._chunks.clear()
        elif isinstance(event, MessageEvent):
            self.messages.append(event.message)

    @property
    def partial_text(self) -> str:
        """The text received so far: the final messages' text when they came, else the chunks."""
        final = "\n".join(m.message for m in self.messages if m.message)
        return final or "".join(self._chunks)

    def reply(self) -> Reply:
        """The turn's reply from the complete messages received."""
        # Each message was validated as its event arrived.
        return construct_validated(
            Reply, {"messages": list(self.messages), "session_id": self.session_id, "sequence_id": self.sequence_id}
        )


R = TypeVar("R", bound=Reply)


class EventStream(Generic[R]):
    """The shell every streamed turn shares: iterate it with ``async for`` (or use ``async with`` to stop
    early); ``reply`` is set when the end of turn arrives."""

    reply: R | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Stop reading and release what the turn holds."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def final_reply(self) -> R:
        """Read the rest of the stream and return the complete reply."""
        async for _ in self:
            pass
        if self.reply is None:  # pragma: no cover - a stream sets its reply at the end of turn or raises
            raise protocol_error("the stream ended without a reply")
        return self.reply
