"""One HTTP attempt's span: method, server, status code, and the retry rules' verdict on it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind, Status, StatusCode

from sessionforce.telemetry import _names as n
from sessionforce.telemetry._turn import set_error

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["RequestView", "Verdict", "traced_attempt"]

T = TypeVar("T")

Verdict = Callable[[int | None, Any, bool, bool], str]
"""The retry rules' verdict on an attempt: (status, failure, idempotent, authenticated) → its name."""

_IDS = re.compile(r"^/(agents|sessions)/[^/]+")


class RequestView(Protocol):
    """What an attempt's span reads of the transport's request."""

    method: str
    path: str
    url: str | None
    idempotent: bool
    authenticated: bool


class _Answer(Protocol):
    status: int


def _template(request: RequestView) -> str:
    """The path without its ids (``/sessions/{id}/messages``): a span name of bounded cardinality."""
    if request.url is not None:  # an absolute URL (token, org REST): its path alone
        return urlsplit(request.url).path or "/"
    return _IDS.sub(lambda m: f"/{m.group(1)}/{{id}}", request.path)


async def traced_attempt(
    tracer: Tracer, attempt: Awaitable[T], request: RequestView, base: str, verdict: Verdict
) -> T:
    """Await ``attempt`` inside a CLIENT span named ``METHOD /path/template``."""
    template = _template(request)
    where = urlsplit(request.url or base)
    attributes: dict[str, Any] = {n.HTTP_METHOD: request.method, n.URL_TEMPLATE: template}
    if where.hostname:
        attributes[n.SERVER_ADDRESS] = where.hostname
        attributes[n.SERVER_PORT] = where.port or (443 if where.scheme == "https" else 80)
    span = tracer.start_span(f"{request.method} {template}", kind=SpanKind.CLIENT, attributes=attributes)
    try:
        answer: Any = await attempt
    except BaseException as exc:
        failure = getattr(exc, "failure", None)  # the transport's failed attempt carries the error we raise
        if failure is not None:
            span.set_attribute(n.RETRY_VERDICT, verdict(None, failure, request.idempotent, request.authenticated))
        set_error(span, getattr(exc, "error", exc))
        span.end()
        raise
    status = int(answer.status)
    span.set_attribute(n.HTTP_STATUS, status)
    if status >= 400:
        span.set_attribute(n.ERROR_TYPE, str(status))
        span.set_attribute(n.RETRY_VERDICT, verdict(status, None, request.idempotent, request.authenticated))
        span.set_status(Status(StatusCode.ERROR))
    span.end()
    return answer  # type: ignore[no-any-return]
