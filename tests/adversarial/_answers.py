"""What the hostile server answers: the request as read, the connection, and the library of answers
(well-formed, and every way of being wrong a test can script), each a :data:`Behaviour`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

__all__ = [
    "Behaviour",
    "Connection",
    "Request",
    "ServerView",
    "after",
    "bad_chunked",
    "bad_status_line",
    "echo_secret",
    "echo_token",
    "end_of_turn_event",
    "hang",
    "inform",
    "json_200",
    "reset_after_body",
    "respond",
    "short_body",
    "sse",
    "sse_error_echo",
    "trickle",
    "truncated_json",
    "wrong_content_type",
]


class ServerView(Protocol):
    """What an answer may read of the server: its token and URL, the sessions it started, whether it stops."""

    token: str
    url: str
    sessions: list[str]
    stopped: asyncio.Event


@dataclass
class Request:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    route: str
    at: float = field(default_factory=time.monotonic)

    @property
    def bearer(self) -> str:
        """The bearer token the request carried ("" when none)."""
        return self.headers.get("authorization", "").removeprefix("Bearer ")

    def json(self) -> Any:
        """The body as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Connection:
    """The server side of one client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        """Write bytes and flush them."""
        self.writer.write(data)
        await self.writer.drain()

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0), not a clean FIN."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Behaviour = Callable[[Connection, Request, "ServerView"], Awaitable[bool]]
"""Answers one request; returns whether the connection may serve another request."""


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def respond(status: int, body: bytes | str | dict[str, Any], *, content_type: str = "application/json",
            headers: dict[str, str] | None = None, reason: str = "OK") -> Behaviour:
    """A complete, well-formed response."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        head = {"Content-Type": content_type, "Content-Length": str(len(data)), **(headers or {})}
        await conn.send(_head(f"{status} {reason}", head) + data)
        return True

    return behaviour


def json_200(body: dict[str, Any]) -> Behaviour:
    """200 with a JSON body of the test's choosing (e.g. ``{}`` or ``{"status": 500, ...}``)."""
    return respond(200, body)


def bad_status_line(status_line: str = "HTTP/1.1 2OO OK") -> Behaviour:
    """A status line aiohttp cannot parse (``2OO`` with letters O), then a body; the connection closes."""

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        body = b'{"messages": []}'
        await conn.send(f"{status_line}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                        .encode("latin-1") + body)
        return False

    return behaviour


def echo_token(status: int = 500) -> Behaviour:
    """An error answer whose body repeats the bearer token the request carried (some proxies do)."""

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        body = {"status": status, "error": "HttpServerErrorException", "requestId": uuid.uuid4().hex,
                "message": f"Could not validate the session for 'Authorization: Bearer {request.bearer}'"}
        return await respond(status, body, reason="Error")(conn, request, server)

    return behaviour


def echo_secret(status: int = 400) -> Behaviour:
    """A token-route refusal whose description repeats the client secret the form carried."""

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        form = dict(parse_qsl(request.body.decode("latin-1")))
        body = {"error": "invalid_client",
                "error_description": f"client_secret {form.get('client_secret', '')!r} is not valid for this client"}
        return await respond(status, body, reason="Refused")(conn, request, server)

    return behaviour


def sse_error_echo() -> Behaviour:
    """200, then an SSE error event whose message repeats the bearer token."""

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        event = {"status": 500, "error": "HttpServerErrorException", "requestId": uuid.uuid4().hex,
                 "message": f"Session validation failed for Bearer {request.bearer}"}
        return await sse(event)(conn, request, server)

    return behaviour


def truncated_json() -> Behaviour:
    """200 whose JSON body stops mid-way (the Content-Length matches what is sent: the JSON is cut)."""
    return respond(200, b'{"messages": [{"type": "Inform", "id": "m1", "message": "Half an ans')


def short_body() -> Behaviour:
    """200 that promises 400 bytes and sends 30, then closes: the answer was cut in transit."""

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        await conn.send(_head("200 OK", {"Content-Type": "application/json", "Content-Length": "400"})
                        + b'{"messages": [{"type": "Inform"')
        return False

    return behaviour


def wrong_content_type() -> Behaviour:
    """200 with an HTML page (a captive portal or a proxy's error page) where JSON belongs."""
    return respond(200, "<html><body><h1>Service Unavailable</h1></body></html>", content_type="text/html")


def bad_chunked() -> Behaviour:
    """200 with ``Transfer-Encoding: chunked`` and a chunk size that is not hexadecimal."""

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        await conn.send(_head("200 OK", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
                        + b"5\r\n{\"mes\r\nzz\r\nsages\r\n0\r\n\r\n")
        return False

    return behaviour


def reset_after_body() -> Behaviour:
    """Read the whole request, then reset the connection without answering."""

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        conn.reset()
        return False

    return behaviour


def hang() -> Behaviour:
    """Read the request and never answer (until the client gives up or the server stops)."""

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        await server.stopped.wait()
        return False

    return behaviour


def trickle(piece: bytes = b": keep-alive\n\n", *, interval: float = 0.5,
            content_type: str = "text/event-stream", first: bytes = b"") -> Behaviour:
    """200, then ``first``, then ``piece`` every ``interval`` seconds, forever, never completing an event
    (with the default piece: a keep-alive comment; with ``b"d"``: one byte at a time)."""

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        await conn.send(_head("200 OK", {"Content-Type": content_type, "Cache-Control": "no-cache",
                                         "Transfer-Encoding": "chunked"}))

        async def chunk(data: bytes) -> None:
            await conn.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        if first:
            await chunk(first)
        while not server.stopped.is_set():
            await chunk(piece)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.stopped.wait(), interval)
        return False

    return behaviour


def sse(*events: dict[str, Any] | str, content_type: str = "text/event-stream") -> Behaviour:
    """200 and the given SSE events (dicts become ``data:`` JSON lines, strings are sent as they are),
    then the connection closes."""

    async def behaviour(conn: Connection, request: Request, server: ServerView) -> bool:
        parts = [e if isinstance(e, str) else f"data: {json.dumps(e)}\n\n" for e in events]
        body = "".join(parts).encode()
        await conn.send(_head("200 OK", {"Content-Type": content_type, "Content-Length": str(len(body)),
                                         "Connection": "close"}) + body)
        return False

    return behaviour


def end_of_turn_event() -> dict[str, Any]:
    """The ``EndOfTurn`` marker event."""
    return {"timestamp": 1, "message": {"type": "EndOfTurn", "id": uuid.uuid4().hex}}


def inform(text: str) -> dict[str, Any]:
    """A complete ``Inform`` message saying ``text``."""
    return {"type": "Inform", "id": uuid.uuid4().hex, "feedbackId": uuid.uuid4().hex, "planId": "",
            "isContentSafe": True, "message": text, "result": [], "citedReferences": []}


def after(action: Callable[[], object], behaviour: Behaviour) -> Behaviour:
    """Run ``action()`` (e.g. kill the store) once the request is read, then answer with ``behaviour``."""

    async def run(conn: Connection, request: Request, server: ServerView) -> bool:
        await asyncio.to_thread(action)
        return await behaviour(conn, request, server)

    return run
