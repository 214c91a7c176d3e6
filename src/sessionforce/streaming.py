"""Server-Sent Events: a byte-fed parser, typed Agent API stream events, and reply assembly.

No well-kept SSE client for aiohttp exists, so the parser is ours. It follows the WHATWG event-stream
rules: lines end in CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the next are
one line end); ``:`` starts a comment; a ``data`` field may repeat and its values join with newlines;
one leading space after the colon is dropped; a blank line dispatches; an unfinished event at the end
of the stream is dropped; bytes are UTF-8 with replacement. JSON is never split on U+2028/U+2029.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from pydantic import ValidationError

from sessionforce.errors import APIStatusError, ProtocolError, error_from_status
from sessionforce.models import AgentMessage, ErrorMessage, agent_message_adapter
from sessionforce.reply import Reply, construct_validated

__all__ = [
    "EndOfTurnEvent",
    "EventStream",
    "MessageEvent",
    "ProgressEvent",
    "ReplyAssembler",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamEvent",
    "TextChunkEvent",
    "UnknownEvent",
    "ValidationFailureEvent",
    "stream_event_from_sse",
]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched SSE event, before any JSON is read."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turns bytes into :class:`ServerSentEvent` objects, however the bytes are split into chunks."""

    __slots__ = (
        "_buffer", "_data", "_decoder", "_event", "_id", "_last_id", "_pending_cr", "_retry", "_started",
    )

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._pending_cr = False
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse one chunk; return the events it completed."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        return self._lines(text)

    def close(self) -> list[ServerSentEvent]:
        """The stream ended: flush the decoder. An event without its closing blank line is dropped."""
        events = self._lines(self._decoder.decode(b"", final=True))
        self._buffer = ""
        self._data = []
        self._event = ""
        return events

    def _lines(self, text: str) -> list[ServerSentEvent]:
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = False
        buffer = self._buffer + text
        events: list[ServerSentEvent] = []
        start = 0
        length = len(buffer)
        # Where the next CR and LF are; searched again only once passed (not from every line start,
        # which rescanned a whole chunk per line: quadratic in the lines of a chunk).
        cr = lf = -2
        while start < length:
            if cr != -1 and cr < start:
                cr = buffer.find("\r", start)
            if lf != -1 and lf < start:
                lf = buffer.find("\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, next_start = lf, lf + 1
            else:
                end = cr
                if cr + 1 < length:
                    next_start = cr + 2 if buffer[cr + 1] == "\n" else cr + 1
                else:
                    # A CR at the very end: its LF may come in the next chunk.
                    next_start = cr + 1
                    self._pending_cr = True
            event = self._line(buffer[start:end])
            if event is not None:
                events.append(event)
            start = next_start
        self._buffer = buffer[start:]
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self._last_id = self._id
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(
            data="\n".join(self._data), event=self._event or "message", id=self._last_id, retry=self._retry
        )
        self._data = []
        self._event = ""
        return event


# --------------------------------------------------------------------------- typed events


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


_MARKER_TYPES = {"EndOfTurn"}


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def stream_event_from_sse(sse: ServerSentEvent) -> StreamEvent | None:
    """Read one SSE event as an Agent API event; ``None`` for the end-of-turn marker.

    The type comes from ``data.message.type`` (the ``event:`` line is only a fallback: public samples
    disagree on whether it is sent). Raises the mapped :class:`APIStatusError` for an error event.
    """
    try:
        data = json.loads(sse.data)
    except ValueError:
        return UnknownEvent(type=sse.event, data=sse.data)
    if not isinstance(data, dict):
        return UnknownEvent(type=sse.event, data=data)
    payload = data.get("message")
    if not isinstance(payload, dict):
        if sse.event.lower() == "error" or ("status" in data and "error" in data):
            raise _error_from_body(data, sse.data)
        return UnknownEvent(type=sse.event, data=data)
    kind = payload.get("type") if isinstance(payload.get("type"), str) else sse.event
    if kind in _MARKER_TYPES:
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
    if kind not in {None, ""} and "type" not in payload:
        payload = {**payload, "type": kind}
    try:
        message = agent_message_adapter.validate_python(payload)
    except ValidationError:
        return UnknownEvent(type=str(kind), data=data)
    if isinstance(message, ErrorMessage):
        raise _error_from_message(message, sse.data)
    return MessageEvent(message=message)


def is_end_of_turn(sse: ServerSentEvent) -> bool:
    """Whether this SSE event is the ``EndOfTurn`` marker."""
    if sse.event == "EndOfTurn":
        return True
    try:
        data = json.loads(sse.data)
    except ValueError:
        return False
    message = data.get("message") if isinstance(data, dict) else None
    return isinstance(message, dict) and message.get("type") == "EndOfTurn"


def _error_from_message(message: ErrorMessage, raw: str) -> APIStatusError:
    status = message.http_status if isinstance(message.http_status, int) and message.http_status >= 400 else 500
    text = message.message or message.error or "the turn failed"
    return error_from_status(status, text, request_id=message.trace_id, body=raw, on_session=True)


def _error_from_body(data: dict[str, Any], raw: str) -> APIStatusError:
    status = data.get("status")
    status = status if isinstance(status, int) and 400 <= status < 600 else 500
    text = _as_str(data.get("message")) or _as_str(data.get("error")) or "the stream reported an error"
    return error_from_status(status, text, request_id=_as_str(data.get("requestId")), body=raw, on_session=True)


def raise_for_error_messages(messages: list[AgentMessage], raw: bytes | str) -> None:
    """Raise the mapped error when a reply contains an ``Error`` message (the turn failed)."""
    for message in messages:
        if isinstance(message, ErrorMessage):
            raise _error_from_message(message, raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))


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


def protocol_error(what: str, body: bytes | str | None = None, status: int | None = None) -> ProtocolError:
    """A :class:`ProtocolError` that says the server's answer did not follow the wire format."""
    return ProtocolError(
        f"The Agent API answered something sessionforce cannot read: {what}. "
        "What to do: check the base URL points at the Agent API; report it if it does.",
        status=status,
        body=body,
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
