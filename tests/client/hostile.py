"""A hostile Agent API for the wire's tests: raw asyncio on loopback, every byte chosen by the test.

The token and start-session routes behave; every other route answers what the test scripted, including
what no HTTP framework would send (``HTTP/1.1 2OO OK``, chunk sizes that are not hex, a stream that
trickles keep-alive comments forever).

    with Hostile() as server:
        server.on("send", answer(200, {}))
        ...  # a client with my_domain=base_url=server.url
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

_ROUTES = [
    ("POST", re.compile(r"/services/oauth2/token$"), "token"),
    ("POST", re.compile(r"/agents/[^/]+/sessions$"), "start"),
    ("POST", re.compile(r"/sessions/[^/]+/messages/stream$"), "stream"),
    ("POST", re.compile(r"/sessions/[^/]+/messages$"), "send"),
    ("POST", re.compile(r"/sessions/[^/]+/feedback$"), "feedback"),
    ("DELETE", re.compile(r"/sessions/[^/]+$"), "end"),
]


@dataclass
class Request:
    """One request as the server read it."""

    route: str
    headers: dict[str, str]
    body: bytes


Behaviour = Callable[[asyncio.StreamWriter, Request, "Hostile"], Awaitable[None]]


def head(status: str, **headers: str) -> bytes:
    """A status line and headers (``Content_Type`` → ``Content-Type``)."""
    lines = [f"HTTP/1.1 {status}", *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw(data: bytes) -> Behaviour:
    """Send these bytes as they are, then close."""

    async def send(writer: asyncio.StreamWriter, request: Request, server: Hostile) -> None:
        writer.write(data)
        await writer.drain()

    return send


def answer(status: int, body: Any, *, content_type: str = "application/json", **headers: str) -> Behaviour:
    """A well-formed answer (a dict or list body is sent as JSON)."""
    data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
    # Connection: close, so the client never reuses a connection this server is about to close.
    return raw(head(f"{status} X", Content_Type=content_type, Content_Length=str(len(data)), Connection="close",
                    **headers) + data)


def sse(*events: dict[str, Any] | str) -> Behaviour:
    """200, these events (dicts as ``data:`` JSON, strings as they are), then the connection closes."""
    text = "".join(e if isinstance(e, str) else f"data: {json.dumps(e)}\n\n" for e in events)
    return answer(200, text.encode(), content_type="text/event-stream")


def inform(text: str) -> dict[str, Any]:
    """A complete ``Inform`` event payload."""
    return {"message": {"type": "Inform", "id": uuid.uuid4().hex, "feedbackId": "f1", "message": text}}


END_OF_TURN = {"message": {"type": "EndOfTurn", "id": "eot"}}


def trickle(piece: bytes, *, interval: float, first: bytes = b"", content_type: str = "text/event-stream") -> Behaviour:
    """200, ``first``, then ``piece`` every ``interval`` seconds until the server stops (chunked)."""

    async def send(writer: asyncio.StreamWriter, request: Request, server: Hostile) -> None:
        writer.write(head("200 OK", Content_Type=content_type, Transfer_Encoding="chunked", Connection="close"))
        for data in ([first] if first else []):
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        while not server.stopping:
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            await asyncio.sleep(interval)

    return send


def hang() -> Behaviour:
    """Read the request, never answer."""

    async def send(writer: asyncio.StreamWriter, request: Request, server: Hostile) -> None:
        while not server.stopping:
            await asyncio.sleep(0.05)

    return send


class Hostile:
    """The server on its own loop in a daemon thread; ``on(route, behaviour)`` scripts a route."""

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token or f"tok-{uuid.uuid4().hex}"
        self.requests: list[Request] = []
        self.url = ""
        self.stopping = False
        self._behaviours: dict[str, Behaviour] = {"token": self._token, "start": self._start}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def on(self, route: str, behaviour: Behaviour) -> None:
        """Answer every request on ``route`` with ``behaviour``."""
        self._behaviours[route] = behaviour

    def count(self, route: str) -> int:
        """How many requests ``route`` received."""
        return sum(1 for r in self.requests if r.route == route)

    async def _token(self, writer: asyncio.StreamWriter, request: Request, server: Hostile) -> None:
        await answer(200, {"access_token": self.token, "instance_url": self.url, "token_type": "Bearer",
                           "issued_at": str(int(time.time() * 1000))})(writer, request, server)

    async def _start(self, writer: asyncio.StreamWriter, request: Request, server: Hostile) -> None:
        await answer(200, {"sessionId": str(uuid.uuid4()), "_links": {}, "messages": []})(writer, request, server)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head_bytes = await reader.readuntil(b"\r\n\r\n")
            lines = head_bytes.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            route = next((name for m, p, name in _ROUTES if m == method and p.search(path.split("?")[0])), "other")
            request = Request(route, headers, body)
            self.requests.append(request)
            behaviour = self._behaviours.get(route, answer(404, {"message": "no such route"}))
            await behaviour(writer, request, self)
        with contextlib.suppress(Exception):
            writer.close()

    def __enter__(self) -> Hostile:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            ready.set()
            while not self.stopping:
                await asyncio.sleep(0.05)
            server.close()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        if self._thread is not None:
            self._thread.join(5)
