"""The admin surface under ``/__emulator/``: inspect and poke the emulator from tests.

Not part of the Agent API: no token, no faults, not counted. JSON in, JSON out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sessionforce.emulator._bodies import parse_json, read_body
from sessionforce.emulator._errors import ApiError
from sessionforce.emulator._faults import FaultConfigError, FaultSet, parse_faults
from sessionforce.emulator._openapi import openapi_document
from sessionforce.emulator._responses import base_url, json_response
from sessionforce.emulator._sessions import Session
from sessionforce.emulator._state import EmulatorState

PREFIX = "/__emulator"


def _error(status: int, message: str) -> Response:
    return json_response({"error": "AdminError", "message": message}, status=status)


class _BadBody(Exception):
    """An admin request body that cannot be used; rendered as an AdminError with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def admin_routes(state: EmulatorState) -> list[Route]:
    """The admin routes over ``state``."""

    async def json_body(request: Request, *, constants: bool = False) -> Any:
        """The body as JSON (None when empty), bounded like the Agent API's; _BadBody if unusable."""
        try:
            body = await read_body(request, state.config.max_body_bytes)
        except ApiError as exc:
            raise _BadBody(exc.status, exc.message) from None
        if not body.strip():
            return None
        try:
            return parse_json(body, state.config.max_json_depth, constants=constants)
        except ValueError as exc:
            raise _BadBody(400, f"expected a JSON body ({exc})") from None

    async def agents(request: Request) -> Response:
        return json_response({"agents": [agent.describe() for agent in state.agents.values()]})

    async def sessions(request: Request) -> Response:
        state.sweep()
        return json_response({"sessions": [s.summary() for s in state.sessions.values()]})

    async def session_detail(request: Request) -> Response:
        state.sweep()
        session = state.sessions.get(request.path_params["sessionId"])
        if session is None:
            return _error(404, "no such session")
        if not isinstance(session, Session):  # closed: only its summary is kept (bounded memory)
            return json_response(session.summary())
        memory = {k: v for k, v in session.memory.items() if not k.startswith("_")}
        return json_response({**session.summary(), "variables": session.variables, "memory": memory,
                              "transcript": session.transcript})

    async def expire_session(request: Request) -> Response:
        session = state.sessions.get(request.path_params["sessionId"])
        if session is None:
            return _error(404, "no such session")
        if isinstance(session, Session):
            state.close(session, "expired", "Expiration")
            session = state.sessions.get(session.session_id, session)
        return json_response(session.summary())

    async def advance_clock(request: Request) -> Response:
        body = await json_body(request, constants=True)  # so NaN/Infinity are refused naming "seconds"
        if not isinstance(body, dict) or "seconds" not in body:
            return _error(400, "body must be {\"seconds\": <number >= 0>}")
        try:
            state.clock.advance(body["seconds"])  # checks the value: the clock is untouched on error
        except ValueError as exc:
            return _error(400, str(exc))
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
                state.faults = parse_faults(await json_body(request), "faults", state.config.seed)
            except FaultConfigError as exc:
                return _error(400, str(exc))
        elif request.method == "DELETE":
            state.faults = FaultSet.empty(state.config.seed)
        return json_response(state.faults.describe())

    async def counters(request: Request) -> Response:
        state.sweep()
        return json_response(state.counters.snapshot(len(state.active)))

    async def deviations(request: Request) -> Response:
        if request.method == "DELETE":
            state.deviations.clear()
            state.deviations_recorded = 0
        return json_response({"strict": state.strict, "deviations": list(state.deviations),
                              "dropped": state.deviations_recorded - len(state.deviations)})

    async def strict(request: Request) -> Response:
        if request.method == "PUT":
            body = await json_body(request)
            value = body.get("strict") if isinstance(body, dict) else None
            if not isinstance(value, bool):
                return _error(400, "body must be {\"strict\": true} or {\"strict\": false}")
            state.strict = value
        return json_response({"strict": state.strict})

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
        ("/deviations", deviations, ["GET", "DELETE"]),
        ("/strict", strict, ["GET", "PUT"]),
        ("/openapi.json", openapi, ["GET"]),
    ]
    def guarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except _BadBody as exc:
                return _error(exc.status, exc.message)

        return run

    return [Route(PREFIX + path, guarded(endpoint), methods=methods) for path, endpoint, methods in table]
