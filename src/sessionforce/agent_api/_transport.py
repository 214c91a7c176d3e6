"""The HTTP transport: one pooled aiohttp session, one retry loop, one map from aiohttp errors to ours.

Which failures are retried is decided by the pure verdict in :mod:`._retry`. A non-idempotent request
(start session, send a turn) that was sent but got no answer raises :class:`DeliveryUnknown` and is never
resent. A 401 refreshes the token once and resends once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from sessionforce._logging import log_context
from sessionforce._version import __version__
from sessionforce.agent_api._auth import AccessToken, TokenProvider
from sessionforce.agent_api._retry import Failure, RetryPolicy, backoff_delay, parse_retry_after, should_retry
from sessionforce.errors import (
    APIStatusError,
    ClientClosed,
    ConnectionFailed,
    DeliveryUnknown,
    RateLimited,
    SessionforceError,
    error_from_status,
)

__all__ = ["API_PREFIX", "DEFAULT_BASE_URL", "RawResponse", "Timeouts", "Transport", "status_error"]

logger = logging.getLogger("sessionforce.http")

DEFAULT_BASE_URL = "https://api.salesforce.com"
API_PREFIX = "/einstein/ai-agent/v1"
USER_AGENT = f"sessionforce/{__version__} python/{platform.python_version()} aiohttp/{aiohttp.__version__}"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait: to connect; for the whole response of a request (``read``: sending it, the
    agent's work and reading the answer, counted from when the request asks the pool for a connection);
    between events of a stream; and how long an idle pooled connection is kept (keep it below the
    server's own idle timeout, or a request may go out on a connection the server just closed and end as
    ``DeliveryUnknown``).

    A request still waiting for a free pooled connection when ``read`` runs out is reported as
    ``DeliveryUnknown`` too (it was not sent, but that cannot be told apart): never resent, never
    duplicated. Keep ``read`` well above the longest queueing your pool sees under load.
    """

    connect: float = 10.0
    read: float = 120.0
    stream_read: float = 120.0
    keepalive: float = 15.0


@dataclass(slots=True)
class RawResponse:
    """A complete HTTP response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    request_id: str | None = None


@dataclass(slots=True)
class _Request:
    method: str
    url: str | None  # absolute, or None to build from path and the resolved base URL
    path: str
    body: bytes | None
    content_type: str = "application/json"
    extra_headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool = False
    authenticated: bool = True
    on_session: bool = False
    stream: bool = False
    return_errors: bool = False


def _request_id(headers: Mapping[str, str], body: bytes) -> str | None:
    for name in ("x-request-id", "x-sfdc-request-id", "sfdc-request-id"):
        value = headers.get(name)
        if value:
            return value
    data = _json_or_none(body)
    rid = data.get("requestId") if isinstance(data, dict) else None
    return rid if isinstance(rid, str) else None


def _json_or_none(body: bytes) -> Any:
    if not body or body[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _server_message(body: bytes) -> str | None:
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


def status_error(request: _Request | None, response: RawResponse) -> APIStatusError:
    """The most specific error for an error response (body kept raw)."""
    return error_from_status(
        response.status,
        _server_message(response.body),
        request_id=response.request_id,
        body=response.body,
        on_session=request.on_session if request else False,
        retry_after=parse_retry_after(response.headers) if response.status == 429 else None,
    )


class Transport:
    """Owns the pooled ``aiohttp.ClientSession`` and runs every request through one retry loop."""

    def __init__(
        self,
        token_provider: TokenProvider,
        *,
        base_url: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 100,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.token_provider = token_provider
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._max_connections = max_connections
        self._session = session
        self._owns_session = session is None
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._closed = False
        # A request's read timeout bounds the whole request (one timer), not the time between bytes:
        # aiohttp's sock_read arms a fresh timer on every chunk, and a cancelled timer stays in the event
        # loop's heap until its time comes (two minutes here), holding a context copy: under load, that
        # doubled the objects each request leaves for the garbage collector and the collections with them.
        # Streams keep sock_read: there the time between events is what matters.
        self._timeout = aiohttp.ClientTimeout(total=self.timeouts.read, sock_connect=self.timeouts.connect)
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeouts.connect, sock_read=self.timeouts.stream_read
        )

    # ------------------------------------------------------------------ lifecycle

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosed("This client is closed. What to do: create a new client.")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, limit_per_host=0, keepalive_timeout=self.timeouts.keepalive
                ),
                headers={"User-Agent": USER_AGENT, "x-client-name": "sessionforce"},
                timeout=self._timeout,
            )
        return self._session

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    async def aclose(self) -> None:
        """Close the pooled connections (only the session this transport created)."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    # ------------------------------------------------------------------ public calls

    def api_base(self, token: AccessToken | None) -> str:
        """The API host: the configured base URL, else the token's ``api_instance_url``, else the default."""
        if self.base_url:
            return self.base_url
        if token is not None and token.api_instance_url:
            return token.api_instance_url.rstrip("/")
        return DEFAULT_BASE_URL

    async def post_form(self, url: str, form: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        """POST a form without auth (the token request), retried where safe; errors are returned."""
        request = _Request(
            method="POST",
            url=url,
            path=url,
            body=urlencode(dict(form)).encode(),
            content_type="application/x-www-form-urlencoded",
            idempotent=True,
            authenticated=False,
            return_errors=True,
        )
        response = await self._run(request)
        assert isinstance(response, RawResponse)
        return response.status, response.headers, response.body

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = False,
        on_session: bool = False,
    ) -> RawResponse:
        """Send one Agent API request and return its successful response, or raise the mapped error."""
        request = _Request(
            method=method,
            url=None,
            path=path,
            body=body,
            extra_headers=headers or {},
            idempotent=idempotent,
            on_session=on_session,
        )
        response = await self._run(request)
        assert isinstance(response, RawResponse)
        return response

    async def open_stream(self, path: str, *, body: bytes) -> aiohttp.ClientResponse:
        """POST to a streaming endpoint; return the live 200 response (the caller must release it)."""
        request = _Request(
            method="POST",
            url=None,
            path=path,
            body=body,
            extra_headers={"Accept": "text/event-stream"},
            on_session=True,
            stream=True,
        )
        response = await self._run(request)
        assert isinstance(response, aiohttp.ClientResponse)
        return response

    # ------------------------------------------------------------------ the loop

    async def _run(self, request: _Request) -> RawResponse | aiohttp.ClientResponse:
        started = self.clock()
        attempt = 0
        refreshed = False
        while True:
            token = (
                await self.token_provider.get_token(self.post_form) if request.authenticated else None
            )
            try:
                outcome = await self._attempt(request, token)
            except _AttemptFailed as failed:
                if not should_retry(status=None, failure=failed.failure, idempotent=request.idempotent):
                    raise failed.error from failed.error.__cause__
                error: SessionforceError = failed.error
                retry_after: float | None = None
                error_response: RawResponse | None = None
            else:
                if isinstance(outcome, aiohttp.ClientResponse) or outcome.status < 400:
                    return outcome
                if outcome.status == 401 and token is not None and not refreshed:
                    refreshed = True
                    await self.token_provider.refresh(self.post_form, token)
                    continue
                error_response = outcome
                error = status_error(request, outcome)
                retry_after = error.retry_after if isinstance(error, RateLimited) else None
                if not should_retry(status=outcome.status, failure=None, idempotent=request.idempotent):
                    if request.return_errors:
                        return outcome
                    raise error
            delay = backoff_delay(attempt, self.retry, retry_after, self.rng)
            too_long = retry_after is not None and retry_after > self.retry.max_retry_after
            out_of_time = self.clock() - started + delay > self.retry.total_timeout
            if attempt >= self.retry.max_retries or too_long or out_of_time:
                if request.return_errors and error_response is not None:
                    return error_response
                raise error
            attempt += 1
            logger.info(
                "retrying %s %s in %.2fs (attempt %d of %d): %s",
                request.method, request.path, delay, attempt, self.retry.max_retries, error.message,
                extra=log_context(),
            )
            await self.sleep(delay)

    async def _attempt(
        self, request: _Request, token: AccessToken | None
    ) -> RawResponse | aiohttp.ClientResponse:
        url = request.url or self.api_base(token) + API_PREFIX + request.path
        headers = {"Content-Type": request.content_type, **request.extra_headers}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        http = self._http()
        debug = logger.isEnabledFor(logging.DEBUG)
        sent_at = self.clock() if debug else 0.0
        response: aiohttp.ClientResponse | None = None
        try:
            response = await http.request(
                request.method,
                url,
                data=request.body,
                headers=headers,
                timeout=self._stream_timeout if request.stream else self._timeout,
                allow_redirects=False,
            )
            if request.stream and response.status == 200:
                return response
            body = await response.read()
        except asyncio.CancelledError:
            if response is not None:
                response.close()
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            if response is not None:
                response.close()
            raise _map_exception(exc, request) from exc
        finally:
            if response is not None and not (request.stream and response.status == 200):
                response.release()
        raw = RawResponse(
            status=response.status,
            headers=response.headers,
            body=body,
            request_id=_request_id(response.headers, body) if response.status >= 400 else None,
        )
        if debug:
            logger.debug(
                "%s %s -> %d in %.0f ms",
                request.method, request.path, raw.status, (self.clock() - sent_at) * 1000,
                extra=log_context(),
            )
        return raw


class _AttemptFailed(Exception):
    def __init__(self, failure: Failure, error: SessionforceError) -> None:
        super().__init__(error.message)
        self.failure = failure
        self.error = error


def _map_exception(exc: BaseException, request: _Request) -> _AttemptFailed:
    """The one table from aiohttp's errors to ours (chained by the caller)."""
    what = f"{request.method} {request.path}"
    if isinstance(exc, aiohttp.ClientSSLError):
        # Not transient: retrying a certificate failure cannot help.
        error: SessionforceError = ConnectionFailed(
            f"TLS failed for {what}: {exc}. What to do: check the base URL and the machine's CA certificates."
        )
        return _AttemptFailed(Failure.FATAL, error)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        error = ConnectionFailed(
            f"Could not connect for {what}: {exc}. The request did not reach the server. "
            "What to do: check the base URL / My Domain and the network."
        )
        error.__cause__ = exc
        return _AttemptFailed(Failure.NOT_SENT, error)
    kind = "timed out waiting for the answer" if isinstance(exc, TimeoutError) else f"lost the connection ({exc!r})"
    if request.idempotent:
        error = DeliveryUnknown(f"{what} {kind}. What to do: retry later.")
    else:
        error = DeliveryUnknown(
            f"{what} {kind} after the request was sent: the agent may or may not have received it, so it "
            "was not resent. What to do: check the conversation's state before sending the turn again."
        )
    error.__cause__ = exc
    return _AttemptFailed(Failure.NO_ANSWER, error)
