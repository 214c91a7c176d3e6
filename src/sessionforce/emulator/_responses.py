"""Raw responses: JSON, the Server-Sent Events stream of a turn, and deliberately broken connections.

A broken connection is a response that announces its length, sends only part of it (or none) and then
raises :class:`DeliberateReset`, so the server closes the socket mid-response: the client sees a
protocol error with no complete answer, exactly the ambiguous failure it must handle. ``server.py``
installs :class:`QuietResets` so these planned failures do not fill the log with tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class DeliberateReset(Exception):
    """Raised on purpose to make the server drop the connection without a complete response."""


class QuietResets(logging.Filter):
    """Drop uvicorn's "Exception in ASGI application" records caused by :class:`DeliberateReset`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for deliberate resets, True for everything else."""
        return not (record.exc_info and isinstance(record.exc_info[1], DeliberateReset))


def install_quiet_resets() -> None:
    """Attach :class:`QuietResets` to uvicorn's error logger once (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietResets) for f in logger.filters):
        logger.addFilter(QuietResets())


def base_url(request: Request) -> str:
    """The emulator's own URL as the caller reached it (``scheme://host:port``)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (compact encoding: the benchmarks push many of these)."""
    body = json.dumps(data, separators=(",", ":"))
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def abort_connection(receive: Receive) -> bool:
    """Reset the client's connection before any response byte; ``False`` when the server does not allow it.

    ASGI offers no way to drop a connection unanswered (raising before the response makes the server send
    a 500). uvicorn's ``receive`` is a method of its request cycle, which holds the transport: aborting
    that sends a TCP reset, which is what a request lost on its way looks like to a client.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if abort is None:
        return False
    abort()
    return True


class CutResponse(Response):
    """Announce ``response``'s status and full length, send ``fraction`` of its body, then cut.

    With ``before=True`` nothing is sent at all: the connection is reset unanswered, as if the request had
    never arrived (falling back to a cut after the status line where the server cannot do that).
    """

    def __init__(self, response: Response, fraction: float, *, before: bool = False) -> None:
        super().__init__(status_code=response.status_code)
        self.inner = response
        self.fraction = fraction
        self.before = before

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the start and a part of the body, then raise :class:`DeliberateReset`."""
        if self.before and abort_connection(receive):
            return
        body = bytes(self.inner.body)
        await send({"type": "http.response.start", "status": self.inner.status_code,
                    "headers": self.inner.raw_headers})
        part = body[: int(len(body) * self.fraction)]
        if part:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        raise DeliberateReset("injected connection reset")


def sse_event(event_type: str, data: dict[str, Any]) -> bytes:
    """One SSE event: an ``event:`` line naming the type and one ``data:`` line of JSON."""
    # json.dumps escapes control characters and non-ASCII, so the JSON never spans lines.
    return f"event: {event_type}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class TurnStream(Response):
    """The streaming answer to one turn: events in order, an optional pause, an optional cut.

    ``events`` are ``(type, data)`` pairs. After the leading ``ProgressIndicator`` events the stream
    waits ``delay`` seconds (the agent "working"). With ``drop_after_chunks=N`` it sends N
    ``TextChunk`` events and then cuts the connection before anything else. ``on_done`` runs however
    the stream ends (it releases the session's lock).
    """

    media_type = "text/event-stream"

    def __init__(self, events: list[tuple[str, dict[str, Any]]], *, delay: float, drop_after_chunks: int | None,
                 headers: dict[str, str], on_done: Callable[[], None]) -> None:
        super().__init__(status_code=200, media_type="text/event-stream")
        # No content-length: the body is streamed (chunked), so set the headers by hand.
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())]
        self.events = events
        self.delay = delay
        self.drop_after_chunks = drop_after_chunks
        self.on_done = on_done
        #: Set by a ``reset: after`` fault: cut right after the response start.
        self.cut_at_start = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the events; release the session however the stream ends."""
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if self.cut_at_start:
                raise DeliberateReset("injected connection reset")
            chunks = 0
            waited = False
            for event_type, data in self.events:
                if event_type != "ProgressIndicator":
                    if not waited:
                        waited = True
                        if self.delay > 0:
                            await asyncio.sleep(self.delay)
                    drop = self.drop_after_chunks
                    if drop is not None and (event_type != "TextChunk" or chunks >= drop):
                        raise DeliberateReset("injected stream drop")
                    chunks += event_type == "TextChunk"
                await send({"type": "http.response.body", "body": sse_event(event_type, data), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.on_done()
