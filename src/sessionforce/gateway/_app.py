"""The Starlette app that serves one gateway worker: routes, errors, headers, CORS, lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionforce.gateway._errors import GatewayError, json_response, not_found
from sessionforce.gateway._gateway import Gateway, GatewayConfig
from sessionforce.gateway._openapi import openapi_document
from sessionforce.gateway._routes import api_routes
from sessionforce.gateway._state import StateUnavailable
from sessionforce.gateway._telemetry import CONTENT_TYPE, GatewayTelemetry, ObserveRequests

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["STATIC_DIR", "create_app"]

logger = logging.getLogger("sessionforce.gateway")

STATIC_DIR = Path(__file__).parent / "static"


# -- operations routes ---------------------------------------------------------------------------------


async def _healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def _readyz(request: Request) -> Response:
    failed = await request.app.state.gateway.readiness()
    if failed is None:
        return json_response({"status": "ready"})
    return json_response({"status": "unavailable", "failed": failed}, 503, {"Retry-After": "5"})


async def _metrics(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    gateway.guard.metrics(request)
    return Response(gateway.telemetry.exposition(), media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


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


def create_app(config: GatewayConfig, *, tracer_provider: TracerProvider | None = None) -> Starlette:
    """The gateway as an ASGI app (any ASGI server can run it; ``sessionforce serve`` runs it on uvicorn).

    ``app.state.gateway`` is its :class:`Gateway`; call its ``begin_drain()`` when shutdown begins (the
    ``serve`` command does it on SIGTERM), else draining starts with the ASGI lifespan's shutdown.
    ``tracer_provider``: where request and turn spans go (``None``: OpenTelemetry's global provider).
    """
    gateway = Gateway(config, GatewayTelemetry(tracer_provider))

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
        Route("/metrics", _metrics, methods=["GET"]),
        Route("/", _static_file("index.html"), methods=["GET"]),
        Route("/widget.js", _static_file("widget.js"), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    templates: dict[Any, str] = {}
    for route in routes:  # an endpoint's path template, for span names and metric labels
        templates.setdefault(route.endpoint if isinstance(route, Route) else route.app, route.path)
    middleware = [Middleware(ObserveRequests, telemetry=gateway.telemetry, templates=templates.get),
                  Middleware(_Headers)]
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
