"""One gateway worker: its parts, its start and its orderly stop; and the Starlette app that serves it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionforce.gateway._agent import Agent
from sessionforce.gateway._config import GatewaySettings, SigningKey
from sessionforce.gateway._errors import GatewayError, json_response, not_found
from sessionforce.gateway._hub import EventWriter, Hub
from sessionforce.gateway._openapi import openapi_document
from sessionforce.gateway._requests import Guard
from sessionforce.gateway._routes import api_routes
from sessionforce.gateway._state import StateUnavailable, open_state
from sessionforce.gateway._tokens import TokenVerifier
from sessionforce.gateway._turns import Turns
from sessionforce.settings import ClientSettings

__all__ = ["STATIC_DIR", "Gateway", "GatewayConfig", "create_app"]

logger = logging.getLogger("sessionforce.gateway")

STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class GatewayConfig:
    """Everything a gateway worker needs. Picklable: worker processes receive it from their supervisor."""

    org: ClientSettings
    """Where the agent is (My Domain, credentials, agent id), as the library reads it."""
    store_url: str
    """The conversation store; the gateway's shared state follows it (see docs/gateway.md)."""
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    signing_keys: tuple[SigningKey, ...] = ()
    """Defaults to the settings' keys; empty there too: one random key (this process only)."""
    emulator: bool = False
    """The org is the built-in emulator: the demo token route is on unless an API key is configured."""

    def keys(self) -> tuple[SigningKey, ...]:
        """The signing keys in force (the first signs)."""
        return self.signing_keys or tuple(self.settings.signing_keys()) or (SigningKey.generate(),)

    @property
    def demo(self) -> bool:
        """Whether ``POST /v1/demo/token`` is offered."""
        return self.settings.demo or (self.emulator and not self.settings.api_key)


class Gateway:
    """One worker's parts, wired together; :meth:`start` and :meth:`stop` bracket its life."""

    def __init__(self, config: GatewayConfig) -> None:
        settings = self.settings = config.settings
        self.config = config
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.state = open_state(config.store_url, origin=self.origin, event_retention=settings.event_retention,
                                retention=settings.retention)
        self.hub = Hub(self.state)
        self.writer = EventWriter(self.state, self.hub)
        self.agent = Agent(config.org, config.store_url, lease_ttl=settings.lease_ttl, queue_wait=settings.queue_wait)
        self.turns = Turns(self.agent, self.state, self.writer, self.hub, settings, self.origin)
        self.guard = Guard(TokenVerifier(config.keys()), settings.api_key, self.state, user_rate=settings.user_rate,
                           ip_rate=settings.ip_rate)
        self.demo = config.demo
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._drain_started: float | None = None

    async def start(self) -> None:
        """Open the store and the client, start hearing other workers, start the reaper."""
        self._loop = asyncio.get_running_loop()
        await self.agent.open()
        self.hub.start()
        if self.settings.idle_timeout:
            self._reaper = self._loop.create_task(self._reap(), name="sessionforce-gateway-reaper")

    def begin_drain(self) -> None:
        """Shutdown begins (callable from any thread or a signal handler): refuse new work, tell event
        streams to re-attach elsewhere, let running turns finish."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._drain()
        else:
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        if self._drain_started is None:
            self._drain_started = asyncio.get_running_loop().time()
            logger.info("draining: %d running turn(s), %d event stream(s)", self.turns.running, self.hub.readers)
        self.hub.drain()

    async def stop(self) -> None:
        """Drain, give running turns ``shutdown_timeout`` seconds, cancel the rest (each records that it
        may have been delivered), then close everything."""
        self._drain()
        tasks = self.turns.tasks()
        if tasks:
            # One budget from the start of the drain, however much of it the server already spent.
            assert self._drain_started is not None
            left = self.settings.shutdown_timeout - (asyncio.get_running_loop().time() - self._drain_started)
            logger.info("waiting for %d running turn(s) to finish", len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=max(0.5, left))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self.writer.aclose()
        await self.hub.aclose()
        try:
            await self.agent.aclose()
        finally:
            await self.state.aclose()

    async def _reap(self) -> None:
        interval = self.settings.reap_interval
        while True:
            await asyncio.sleep(interval * (0.5 + random.random()))  # jittered: workers do not all wake at once
            try:
                # One worker per interval does the listing; the lifecycle makes even two at once safe.
                if not await self.state.try_job("reap", self.origin, interval * 0.9):
                    continue
                for conversation_id, session_id in await self.agent.reap(self.settings.idle_timeout):
                    self.writer.publish(conversation_id, "session.ended",
                                        {"session_id": session_id, "reason": "Expiration", "by": "gateway"})
                await self.state.purge()
            except Exception as exc:
                logger.warning("the reaper's pass failed: %s", type(exc).__name__)

    async def readiness(self) -> str | None:
        """``None`` when ready, else the first check that failed."""
        if self.hub.draining:
            return "shutting_down"
        try:
            await self.state.ping()
        except StateUnavailable:
            return "state"
        return await self.agent.check()


# -- operations routes ---------------------------------------------------------------------------------


async def _healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def _readyz(request: Request) -> Response:
    failed = await request.app.state.gateway.readiness()
    if failed is None:
        return json_response({"status": "ready"})
    return json_response({"status": "unavailable", "failed": failed}, 503, {"Retry-After": "5"})


async def _openapi(request: Request) -> Response:
    return json_response(openapi_document())


def _static_file(name: str) -> Any:
    async def serve(request: Request) -> Response:
        path = STATIC_DIR / name
        if not path.is_file():
            raise not_found("The web chat is not installed in this build.")
        return FileResponse(path)

    return serve


# -- errors and headers ----------------------------------------------------------------------------------


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return GatewayError(405, "method_not_allowed", "This route does not take that method.").response()
    return GatewayError(exc.status_code, "not_found" if exc.status_code == 404 else "http_error",
                        "No such route." if exc.status_code == 404 else "The request was refused.").response()


async def _state_error(request: Request, exc: Exception) -> Response:
    logger.warning("shared state unavailable: %s", exc)
    return GatewayError(503, "unavailable", "The gateway's shared state is unavailable. What to do: retry in a "
                        "moment (a message retried with the same id is never sent twice).", retry_after=2).response()


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("request failed: %s", type(exc).__name__, exc_info=exc)
    return GatewayError(500, "internal_error", "The gateway failed. What to do: retry; if it persists, tell the "
                        "site's operators.").response()


class _Headers:
    """Headers every response gets: no sniffing, no referrer; nothing under /v1/ cached (tokens)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/v1/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if api and not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(config: GatewayConfig) -> Starlette:
    """The gateway as an ASGI app (any ASGI server can run it; ``sessionforce serve`` runs it on uvicorn).

    ``app.state.gateway`` is its :class:`Gateway`; call its ``begin_drain()`` when shutdown begins (the
    ``serve`` command does it on SIGTERM), else draining starts with the ASGI lifespan's shutdown.
    """
    gateway = Gateway(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    routes: list[Route | Mount] = [Route(path, endpoint, methods=methods) for path, endpoint, methods in api_routes()]
    routes += [
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", _readyz, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
        Route("/", _static_file("index.html"), methods=["GET"]),
        Route("/widget.js", _static_file("widget.js"), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    middleware = [Middleware(_Headers)]
    origins = config.settings.cors_origin
    if origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "Accept"],
            expose_headers=["Retry-After"], max_age=600,
        ))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers={
        GatewayError: _gateway_error, HTTPException: _http_error, StateUnavailable: _state_error,
        Exception: _server_error,
    })
    app.state.gateway = gateway
    return app
