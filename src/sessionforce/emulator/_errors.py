"""Error answers in the shapes Salesforce uses.

Agent API errors carry a JSON body like the one in Salesforce's own client's fixtures
(``status, path, mode, requestId, error, message, timestamp, expected``); the token endpoint answers
OAuth-style ``{"error", "error_description"}``. Handlers raise :class:`ApiError`; the route wrapper in
``app.py`` turns it into a response, so every error leaves through one function.
"""

from __future__ import annotations

import json
import time
import uuid

from starlette.responses import Response

# The ``error`` field is a Java exception class name on the real service. Only ``NotFoundException`` and
# ``HttpServerErrorException`` are seen in public fixtures; the others are our guess at the same style.
_EXCEPTION_NAMES: dict[int, str] = {
    400: "BadRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "NotFoundException",
    405: "MethodNotAllowedException",
    409: "ConflictException",
    423: "LockedException",
    429: "TooManyRequestsException",
    500: "HttpServerErrorException",
    502: "BadGatewayException",
    503: "ServiceUnavailableException",
    504: "GatewayTimeoutException",
}

API_PREFIX = "/einstein/ai-agent/"


def exception_name(status: int) -> str:
    """The exception class name the ``error`` field carries for ``status``."""
    if status in _EXCEPTION_NAMES:
        return _EXCEPTION_NAMES[status]
    return "HttpServerErrorException" if status >= 500 else "HttpClientErrorException"


def new_request_id() -> str:
    """A fresh request id (sent as ``requestId`` in error bodies and the ``x-request-id`` header)."""
    return str(uuid.uuid4())


class ApiError(Exception):
    """An Agent API error answer: raised by handlers, rendered by :func:`api_error_response`.

    ``error`` overrides the exception class name the status implies (``EngineConfigLookupException``).
    """

    def __init__(self, status: int, message: str, *, retry_after: float | None = None,
                 error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.error = error


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up and at least 1, as HTTP allows only integers."""
    whole = int(seconds)
    if whole < seconds:
        whole += 1
    return str(max(1, whole))


def api_error_response(error: ApiError, path: str, request_id: str) -> Response:
    """Render ``error`` as Salesforce's JSON error body, with ``x-request-id`` (and ``Retry-After``)."""
    # Salesforce reports the path without its "/einstein/ai-agent/" prefix ("v6.0.0/sessions/...").
    short_path = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path.lstrip("/")
    body = {
        "status": error.status,
        "path": short_path,
        "mode": "unknown",
        "requestId": request_id,
        "error": error.error or exception_name(error.status),
        "message": error.message,
        "timestamp": int(time.time() * 1000),
        "expected": error.status < 500,
    }
    headers = {"x-request-id": request_id}
    if error.retry_after is not None:
        headers["retry-after"] = retry_after_header(error.retry_after)
    return Response(
        json.dumps(body), status_code=error.status, headers=headers, media_type="application/json"
    )


class OAuthError(Exception):
    """A token-endpoint error answer (``{"error", "error_description"}``)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def oauth_error_response(error: OAuthError) -> Response:
    """Render ``error`` the way Salesforce's OAuth endpoint does."""
    body = {"error": error.error, "error_description": error.description}
    return Response(json.dumps(body), status_code=error.status, media_type="application/json")


class RestError(Exception):
    """An org REST API error answer (``/services/data/...``): Salesforce's ``[{"message", "errorCode"}]``."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def rest_error_response(error: RestError) -> Response:
    """Render ``error`` the way the org's REST API does (a list of one error)."""
    body = [{"message": error.message, "errorCode": error.error_code}]
    return Response(json.dumps(body), status_code=error.status, media_type="application/json")
