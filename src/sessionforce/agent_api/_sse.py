"""Server-Sent Events: a pure, byte-fed parser (no I/O, no JSON).

No well-kept SSE client for aiohttp exists, so the parser is ours. It follows the WHATWG event-stream
rules: lines end in CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the next are
one line end); ``:`` starts a comment; a ``data`` field may repeat and its values join with newlines;
one leading space after the colon is dropped; a blank line dispatches; an unfinished event at the end
of the stream is dropped; bytes are UTF-8 with replacement. JSON is never split on U+2028/U+2029.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]


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
