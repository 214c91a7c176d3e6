"""A hostile Agent API of our own: a raw asyncio server on loopback, scriptable per route.

It answers the token route and session starts like a well-behaved Agent API, then misbehaves on the
calls a test scripts: a malformed status line, a body echoing the bearer token, a 200 that is not an
answer, truncated JSON, a wrong content type, broken chunked encoding, a stream that trickles bytes or
keep-alive comments forever, a connection reset after the request was read, ...

Written on asyncio streams rather than an HTTP framework on purpose: every byte it sends is chosen by
the test, including the ones no framework would let through (``HTTP/1.1 2OO OK``).

    with HostileServer(token="tok-...") as server:
        server.script("send", bad_status_line())
        ...  # point a client at server.url (it is both My Domain and the API host)
        assert server.count("send") == 1
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
import uuid

from tests.adversarial._answers import (
    Behaviour,
    Connection,
    Request,
    ServerView,
    after,
    bad_chunked,
    bad_status_line,
    echo_secret,
    echo_token,
    end_of_turn_event,
    hang,
    inform,
    json_200,
    reset_after_body,
    respond,
    short_body,
    sse,
    sse_error_echo,
    trickle,
    truncated_json,
    wrong_content_type,
)

__all__ = [
    "Behaviour",
    "Connection",
    "HostileServer",
    "Request",
    "after",
    "bad_chunked",
    "bad_status_line",
    "echo_secret",
    "echo_token",
    "end_of_turn_event",
    "hang",
    "json_200",
    "reset_after_body",
    "respond",
    "short_body",
    "sse",
    "sse_error_echo",
    "trickle",
    "truncated_json",
    "well_behaved",
    "wrong_content_type",
]

API = "/einstein/ai-agent/v1"

# Route name for (method, path); the order matters (the stream path also matches the messages one).
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/services/oauth2/token$"), "token"),
    ("POST", re.compile(rf"^{API}/agents/[^/]+/sessions$"), "start"),
    ("POST", re.compile(rf"^{API}/sessions/[^/]+/messages/stream$"), "stream"),
    ("POST", re.compile(rf"^{API}/sessions/[^/]+/messages$"), "send"),
    ("POST", re.compile(rf"^{API}/sessions/[^/]+/feedback$"), "feedback"),
    ("DELETE", re.compile(rf"^{API}/sessions/[^/]+$"), "end"),
]


async def _token(conn: Connection, request: Request, server: ServerView) -> bool:
    body = {"access_token": server.token, "instance_url": server.url, "api_instance_url": server.url,
            "id": f"{server.url}/id/00D/005", "token_type": "Bearer", "issued_at": str(int(time.time() * 1000)),
            "signature": "c2lnbmF0dXJl", "scope": "api chatbot_api sfap_api"}
    return await respond(200, body)(conn, request, server)


async def _start(conn: Connection, request: Request, server: ServerView) -> bool:
    session_id = str(uuid.uuid4())
    server.sessions.append(session_id)
    body = {"sessionId": session_id, "_links": {}, "messages": [inform("Hi, I am a hostile agent.")]}
    return await respond(200, body)(conn, request, server)


async def _send(conn: Connection, request: Request, server: ServerView) -> bool:
    data = request.json() or {}
    text = (data.get("message") or {}).get("text", "")
    return await respond(200, {"messages": [inform(f"You said: {text}")], "_links": {}})(conn, request, server)


async def _stream(conn: Connection, request: Request, server: ServerView) -> bool:
    data = request.json() or {}
    text = (data.get("message") or {}).get("text", "")
    message = inform(f"You said: {text}")
    return await sse({"timestamp": 1, "message": message}, end_of_turn_event())(conn, request, server)


async def _end(conn: Connection, request: Request, server: ServerView) -> bool:
    body = {"messages": [{"type": "SessionEnded", "id": uuid.uuid4().hex, "reason": "ClientRequest",
                          "feedbackId": uuid.uuid4().hex}], "_links": {}}
    return await respond(200, body)(conn, request, server)


async def _feedback(conn: Connection, request: Request, server: ServerView) -> bool:
    return await respond(201, {})(conn, request, server)


async def _unknown(conn: Connection, request: Request, server: ServerView) -> bool:
    return await respond(404, {"message": f"no route {request.method} {request.path}"}, reason="Not Found")(
        conn, request, server)


_DEFAULTS: dict[str, Behaviour] = {"token": _token, "start": _start, "send": _send, "stream": _stream,
                                   "end": _end, "feedback": _feedback, "unknown": _unknown}


def well_behaved(route: str) -> Behaviour:
    """The well-behaved answer of ``route`` (to script it back in between misbehaviours)."""
    return _DEFAULTS[route]


class HostileServer:
    """The server, run on its own event loop in a daemon thread; use it as a context manager.

    ``token`` is the access token the token route hands out (plant a canary there). ``script(route,
    behaviour, times=None)`` makes the next ``times`` requests on ``route`` (all, when None) misbehave;
    routes: token, start, send, stream, end, feedback.
    """

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token or f"hostile-token-{uuid.uuid4().hex}"
        self.requests: list[Request] = []
        self.sessions: list[str] = []
        self._scripts: dict[str, list[tuple[Behaviour, int | None]]] = {}
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopped: asyncio.Event
        self.url = ""

    # ------------------------------------------------------------------ scripting and inspection

    def script(self, route: str, behaviour: Behaviour, *, times: int | None = None) -> None:
        """Answer the next ``times`` requests on ``route`` (every one, when None) with ``behaviour``."""
        if route not in _DEFAULTS:
            raise ValueError(f"unknown route {route!r}; one of {sorted(_DEFAULTS)}")
        with self._lock:
            self._scripts.setdefault(route, []).append((behaviour, times))

    def clear(self) -> None:
        """Back to well-behaved answers on every route."""
        with self._lock:
            self._scripts.clear()

    def count(self, route: str) -> int:
        """How many requests arrived on ``route``."""
        with self._lock:
            return sum(1 for r in self.requests if r.route == route)

    def wait_for(self, route: str, count: int = 1, timeout: float = 10.0) -> Request:
        """Block until ``count`` requests arrived on ``route``; return the last of them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                seen = [r for r in self.requests if r.route == route]
                if len(seen) >= count:
                    return seen[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{count} request(s) on {route!r} did not arrive within {timeout}s")
                self._arrived.wait(left)

    def _behaviour(self, route: str) -> Behaviour:
        with self._lock:
            queue = self._scripts.get(route, [])
            while queue:
                behaviour, times = queue[0]
                if times is None:
                    return behaviour
                if times > 0:
                    queue[0] = (behaviour, times - 1)
                    return behaviour
                queue.pop(0)
        return _DEFAULTS[route]

    # ------------------------------------------------------------------ serving

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request = await self._read(reader)
                if request is None:
                    return
                with self._arrived:
                    self.requests.append(request)
                    self._arrived.notify_all()
                if not await self._behaviour(request.route)(conn, request, self):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        path_only = path.split("?", 1)[0]
        route = next((name for m, pattern, name in _ROUTES if m == method and pattern.match(path_only)), "unknown")
        return Request(method, path_only, headers, body, route)

    def __enter__(self) -> HostileServer:
        started = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self.stopped = asyncio.Event()
            try:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            except BaseException as exc:  # pragma: no cover - a loopback bind failed
                failure.append(exc)
                started.set()
                return
            port = self._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            started.set()
            await self.stopped.wait()
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), name="hostile-server", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.stopped.set)
        if self._thread is not None:
            self._thread.join(5)
