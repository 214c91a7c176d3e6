"""The admin surface under ``/__emulator/``: inspect and poke the emulator from tests.

Not part of the Agent API: no token, no faults, not counted. JSON in, JSON out.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sessionforce.emulator.faults import FaultConfigError, FaultSet, parse_faults
from sessionforce.emulator.openapi import openapi_document
from sessionforce.emulator.responses import json_response
from sessionforce.emulator.routes import base_url
from sessionforce.emulator.state import EmulatorState, Session

PREFIX = "/__emulator"


def _error(status: int, message: str) -> Response:
    return json_response({"error": "AdminError", "message": message}, status=status)


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ValueError(f"expected a JSON body ({exc})") from exc


def admin_routes(state: EmulatorState) -> list[Route]:
    """The admin routes over ``state``."""

    def session_or_404(request: Request) -> Session | Response:
        session = state.sessions.get(request.path_params["sessionId"])
        return session if session is not None else _error(404, "no such session")

    async def agents(request: Request) -> Response:
        return json_response({"agents": [agent.describe() for agent in state.agents.values()]})

    async def sessions(request: Request) -> Response:
        state.sweep()
        return json_response({"sessions": [s.summary() for s in state.sessions.values()]})

    async def session_detail(request: Request) -> Response:
        state.sweep()
        session = session_or_404(request)
        if isinstance(session, Response):
            return session
        memory = {k: v for k, v in session.memory.items() if not k.startswith("_")}
        return json_response({**session.summary(), "variables": session.variables, "memory": memory,
                              "transcript": session.transcript})

    async def expire_session(request: Request) -> Response:
        session = session_or_404(request)
        if isinstance(session, Response):
            return session
        state.close(session, "expired", "Expiration")
        return json_response(session.summary())

    async def advance_clock(request: Request) -> Response:
        try:
            body = await _json_body(request)
        except ValueError as exc:
            return _error(400, str(exc))
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return _error(400, "body must be {\"seconds\": <number >= 0>}")
        state.clock.advance(float(seconds))
        state.sweep()
        return json_response({"offset": state.clock.offset})

    async def expire_tokens(request: Request) -> Response:
        count = len(state.tokens)
        state.tokens.clear()
        return json_response({"expired": count})

    async def reset(request: Request) -> Response:
        state.reset()
        return json_response({"reset": True})

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                state.faults = parse_faults(await _json_body(request), "faults", state.config.seed)
            except (ValueError, FaultConfigError) as exc:
                return _error(400, str(exc))
        elif request.method == "DELETE":
            state.faults = FaultSet.empty(state.config.seed)
        return json_response(state.faults.describe())

    async def counters(request: Request) -> Response:
        state.sweep()
        return json_response(state.counters.snapshot(len(state.active)))

    async def openapi(request: Request) -> Response:
        return json_response(openapi_document(base_url(request)))

    table: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        ("/agents", agents, ["GET"]),
        ("/sessions", sessions, ["GET"]),
        ("/sessions/{sessionId}", session_detail, ["GET"]),
        ("/sessions/{sessionId}/expire", expire_session, ["POST"]),
        ("/clock/advance", advance_clock, ["POST"]),
        ("/tokens/expire", expire_tokens, ["POST"]),
        ("/reset", reset, ["POST"]),
        ("/faults", faults, ["GET", "PUT", "DELETE"]),
        ("/counters", counters, ["GET"]),
        ("/openapi.json", openapi, ["GET"]),
    ]
    return [Route(PREFIX + path, endpoint, methods=methods) for path, endpoint, methods in table]
