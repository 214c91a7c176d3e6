"""Every error the gateway answers, built in one place: ``{"error": {"code", "message"}}`` with a status.

Messages say what was wrong and what to do, and never hold a secret or echo a token.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import Response

__all__ = ["GatewayError", "error_body", "json_response"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response (UTF-8, no spaces)."""
    return Response(_encode(body).encode(), status_code=status, media_type="application/json", headers=headers)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The error document every gateway error uses."""
    return {"error": {"code": code, "message": message, **extra}}


class GatewayError(Exception):
    """An answer the gateway gives instead of doing what was asked; raised anywhere in a request."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.extra = extra

    def response(self) -> Response:
        """The JSON response for this error (``Retry-After`` in whole seconds when known)."""
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return json_response(error_body(self.code, self.message, **self.extra), self.status, headers)


def bad_request(what: str) -> GatewayError:
    """400 ``invalid_request``."""
    return GatewayError(400, "invalid_request", what)


def unauthorized(expired: bool = False) -> GatewayError:
    """401: the only detail given is whether the token expired."""
    if expired:
        return GatewayError(401, "invalid_token", "The token has expired. What to do: get a new one "
                            "(POST /v1/tokens/refresh before it expires, or from your application).", expired=True)
    return GatewayError(401, "invalid_token", "Missing or invalid credentials. What to do: send "
                        "'Authorization: Bearer <token>' with a token from your application.")


def forbidden() -> GatewayError:
    """403: a valid token, but not for this conversation."""
    return GatewayError(403, "forbidden", "This token is not scoped to this conversation. What to do: ask your "
                        "application for a token that lists it.")


def not_found(what: str = "No such route.") -> GatewayError:
    """404 ``not_found``."""
    return GatewayError(404, "not_found", what)


def rate_limited(retry_after: float) -> GatewayError:
    """429 with ``Retry-After``."""
    return GatewayError(429, "rate_limited", "Too many requests. What to do: wait "
                        f"{max(1, math.ceil(retry_after))} s (Retry-After) and try again.", retry_after=retry_after)


def shutting_down() -> GatewayError:
    """503 while the gateway drains for shutdown."""
    return GatewayError(503, "shutting_down", "This gateway is shutting down. What to do: retry; another "
                        "instance will answer.", retry_after=1)
