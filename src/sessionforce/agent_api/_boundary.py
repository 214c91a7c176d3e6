"""The boundary: the one table from aiohttp's errors to ours, the scrubbing of what is chained to them,
and the reading of an error answer (its message and request id) for the error builders.

Every lower-library exception stops here: it becomes the most specific sessionforce error (built by
:mod:`sessionforce.errors._build`), with the retry verdict's view of it (:class:`Failure`), and is kept as
the error's ``__cause__`` only after its request headers (bearer token) were scrubbed: aiohttp's
``ClientResponseError`` carries them in its ``repr`` and ``args``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from sessionforce.agent_api._retry import Failure
from sessionforce.errors import APIStatusError, SessionforceError
from sessionforce.errors._build import connection_failed, delivery_unknown, error_from_status, protocol_error
from sessionforce.errors._redact import REDACTED, scrub

__all__ = ["describe", "error_from_response", "map_exception", "request_id_of", "scrubbed", "server_message"]

_SECRET_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")


def scrubbed(exc: BaseException) -> BaseException:
    """``exc`` with the request headers it carries (``ClientResponseError.request_info``) scrubbed, so it
    can be chained to one of our errors without leaking the bearer token. Changed in place; returned."""
    if isinstance(exc, aiohttp.ClientResponseError):
        info = exc.request_info
        if any(name in info.headers for name in _SECRET_HEADERS):
            headers = CIMultiDict(info.headers)
            for name in _SECRET_HEADERS:
                if name in headers:
                    headers[name] = REDACTED
            exc.request_info = aiohttp.RequestInfo(info.url, info.method, CIMultiDictProxy(headers), info.real_url)
            exc.args = (exc.request_info, exc.history)
    return exc


def describe(exc: BaseException) -> str:
    """A short, scrubbed description of a lower exception for a message: its class and ``str`` (never its
    ``repr``, which for aiohttp's response errors holds the request headers)."""
    text = str(exc).strip()
    return scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def map_exception(exc: BaseException, what: str, *, idempotent: bool) -> tuple[Failure, SessionforceError]:
    """How the attempt ``what`` (e.g. ``"POST /sessions/x/messages"``) failed, and the error to raise."""
    scrubbed(exc)
    if isinstance(exc, aiohttp.ClientSSLError):
        # Not transient: retrying a certificate failure cannot help.
        return Failure.FATAL, connection_failed(what, describe(exc), tls=True)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return Failure.NOT_SENT, connection_failed(what, describe(exc))
    if isinstance(exc, aiohttp.InvalidURL):
        return Failure.FATAL, connection_failed(what, f"the URL is not valid ({describe(exc)})")
    if isinstance(exc, aiohttp.ClientResponseError):
        # aiohttp could not read the answer as HTTP (a bad status line, bad headers): something answered.
        return Failure.NO_ANSWER, protocol_error(f"{what} got an answer that is not valid HTTP ({describe(exc)})")
    if isinstance(exc, TimeoutError):
        return Failure.NO_ANSWER, delivery_unknown(what, "timed out waiting for the answer", idempotent=idempotent)
    if isinstance(exc, aiohttp.ClientError):
        reason = f"lost the connection ({describe(exc)})"
        return Failure.NO_ANSWER, delivery_unknown(what, reason, idempotent=idempotent)
    # Anything else from the HTTP library: never retried, and never claimed undelivered.
    return Failure.FATAL, delivery_unknown(what, f"failed unexpectedly ({describe(exc)})", idempotent=idempotent)


def _json_or_none(body: bytes) -> Any:
    if not body or body[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def server_message(body: bytes) -> str | None:
    """What an error body says (``message``, ``error_description``, ``error``), else its first 300 bytes."""
    data = _json_or_none(body)
    if isinstance(data, dict):
        for key in ("message", "error_description", "error"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    if isinstance(data, list) and data and isinstance(data[0], dict):
        value = data[0].get("message")
        return value if isinstance(value, str) else None
    text = body[:300].decode("utf-8", "replace").strip()
    return text or None


def request_id_of(headers: Mapping[str, str], body: bytes) -> str | None:
    """The request id of an answer: from its headers, else the body's ``requestId``."""
    for name in ("x-request-id", "x-sfdc-request-id", "sfdc-request-id"):
        value = headers.get(name)
        if value:
            return value
    data = _json_or_none(body)
    rid = data.get("requestId") if isinstance(data, dict) else None
    return rid if isinstance(rid, str) else None


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    on_session: bool = False,
    retry_after: float | None = None,
    idempotent: bool = False,
) -> APIStatusError:
    """The most specific error for an error answer (its body kept raw, secrets scrubbed)."""
    return error_from_status(
        status,
        server_message(body),
        request_id=request_id_of(headers, body),
        body=body,
        on_session=on_session,
        retry_after=retry_after,
        idempotent=idempotent,
    )
