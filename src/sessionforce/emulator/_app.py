"""The emulator's ASGI app: Agent API and org routes wrapped in faults, error rendering and counters.

Every Agent API/org request passes through :func:`_wrap` once: it checks the request reached the right
host (My Domain or the Agent API host, when they are separate), asks the fault rules what to do, runs
the handler, renders any :class:`ApiError`/:class:`OAuthError`/:class:`RestError`, counts
``"<route> <status>"``, and applies a connection reset if one was planned. Handlers only apply the
rules of their route. ``GET /metrics`` (Prometheus) and the admin routes are not counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from sessionforce.emulator._admin import admin_routes
from sessionforce.emulator._errors import (
    ApiError,
    OAuthError,
    RestError,
    api_error_response,
    new_request_id,
    oauth_error_response,
    rest_error_response,
)
from sessionforce.emulator._failures import failure
from sessionforce.emulator._faults import FaultPlan
from sessionforce.emulator._metrics import metrics_route
from sessionforce.emulator._org import Org
from sessionforce.emulator._responses import CutResponse, TurnStream, json_response
from sessionforce.emulator._routes import AgentApi
from sessionforce.emulator._state import EmulatorState

Handler = Callable[[Request, FaultPlan | None], Awaitable[Response]]
_TURN_ROUTES = ("send_message", "stream_message")
_ORG_ROUTES = ("token", "query")
API = "/einstein/ai-agent/v1"
# What a My Domain host answers to a path it does not serve, e.g. an Agent API path sent to My Domain.
_NO_LONGER_EXISTS = ("<html><head><title>URL No Longer Exists</title></head><body><p>URL No Longer Exists</p>"
                     "<p>You have attempted to reach a URL that no longer exists on salesforce.com.</p></body></html>")


def _wrong_host(state: EmulatorState, request: Request, route: str) -> Response | None:
    """The 404 a request gets on the wrong host when the Agent API has its own (``separate_api_host``)."""
    if state.api_port is None:
        return None
    on_api_host = request.scope.get("server", ("", 0))[1] == state.api_port
    if route in _ORG_ROUTES and on_api_host:
        return api_error_response(ApiError(404, "Not Found"), request.url.path, request.state.request_id)
    if route not in _ORG_ROUTES and not on_api_host:
        return HTMLResponse(_NO_LONGER_EXISTS, status_code=404)
    return None


def _wrap(state: EmulatorState, route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        request_id = new_request_id()
        request.state.request_id = request_id
        response = _wrong_host(state, request, route)
        plan = state.faults.decide(route) if response is None else None
        if plan is not None:
            state.counters.faults[route] += 1
        try:
            if response is None and plan:
                response = await _before(state, request, route, plan)
            if response is None:
                response = await handler(request, plan)
        except ApiError as error:
            response = api_error_response(error, request.url.path, request_id)
        except OAuthError as error:
            response = oauth_error_response(error)
        except RestError as error:
            response = rest_error_response(error)
        counters = state.counters  # read per request: reset() replaces it
        if plan is not None and plan.reset == "after":
            counters.requests[f"{route} reset"] += 1
            if isinstance(response, TurnStream):
                response.cut_at_start = True
                return response
            return CutResponse(response, 0.5)
        if "x-request-id" not in response.headers:
            response.headers["x-request-id"] = request_id
        status = response.status_code
        counters.requests[f"{route} {status}"] += 1
        if status == 423:
            counters.locked += 1
        return response

    return endpoint


async def _before(state: EmulatorState, request: Request, route: str, plan: FaultPlan) -> Response | None:
    """Apply the faults that act before the handler; a response here means the handler never runs."""
    if plan.latency_ms and route not in _TURN_ROUTES:  # turn routes wait while holding the session lock
        await asyncio.sleep(plan.latency_ms / 1000.0)
    if plan.expire_token:
        authorization = request.headers.get("authorization", "")
        state.tokens.pop(authorization[7:].strip(), None)
    if plan.expire_session and "sessionId" in request.path_params:
        session = state.active.get(request.path_params["sessionId"])
        if session is not None and not session.in_flight:
            state.close(session, "expired", "Expiration")
    if plan.error is not None:
        raise failure(plan.error, agent_id=request.path_params.get("agentId", ""),
                      endpoint="(the instanceConfig.endpoint sent)", seconds=state.config.request_timeout)
    if plan.status is not None:
        message = f"Injected fault: status {plan.status} on {route}"
        if route == "token":
            raise OAuthError(plan.status, "server_error" if plan.status >= 500 else "invalid_request", message)
        raise ApiError(plan.status, message, retry_after=plan.retry_after)
    if plan.reset == "before":
        state.counters.requests[f"{route} reset"] += 1
        return CutResponse(json_response({"messages": []}), 0.0, before=True)
    return None


def create_app(state: EmulatorState) -> Starlette:
    """The emulator app over ``state`` (see the module docstring)."""
    api = AgentApi(state)
    org = Org(state)
    table: list[tuple[str, str, Handler, str]] = [
        ("/services/oauth2/token", "token", org.token, "POST"),
        ("/services/data/{version}/query", "query", org.query, "GET"),
        (f"{API}/agents/{{agentId}}/sessions", "start_session", api.start_session, "POST"),
        (f"{API}/sessions/{{sessionId}}/messages", "send_message", api.send_message, "POST"),
        (f"{API}/sessions/{{sessionId}}/messages/stream", "stream_message", api.stream_message, "POST"),
        (f"{API}/sessions/{{sessionId}}", "end_session", api.end_session, "DELETE"),
        (f"{API}/sessions/{{sessionId}}/feedback", "feedback", api.feedback, "POST"),
    ]
    routes = [Route(path, _wrap(state, name, handler), methods=[method]) for path, name, handler, method in table]

    async def http_error(request: Request, exc: Exception) -> Response:
        # Unknown paths and wrong methods answer in the same JSON error shape as everything else.
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith("/services/data/"):  # the org's REST API has its own error shape
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "UNKNOWN_EXCEPTION")
            rest = rest_error_response(RestError(exc.status_code, code, exc.detail))
            rest.headers.update(exc.headers or {})
            return rest
        error = ApiError(exc.status_code, exc.detail)
        response = api_error_response(error, request.url.path, new_request_id())
        response.headers.update(exc.headers or {})
        return response

    return Starlette(routes=[*routes, *admin_routes(state), metrics_route(state)],
                     exception_handlers={HTTPException: http_error})
