"""The HTTP transport: one pooled aiohttp session and one retry loop.

Which failures are retried is decided by the pure verdict in :mod:`._retry`; aiohttp's errors become ours
at one boundary (:mod:`._boundary`); every error is built by :mod:`sessionforce.errors._build`. A
non-idempotent request (start session, send a turn) that was sent but got no answer raises
:class:`DeliveryUnknown` and is never resent. A 401 refreshes the token once and resends once. A 423 is
waited out within ``RetryPolicy.locked_wait``, for every call.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp

from sessionforce._logging import log_context
from sessionforce._version import __version__
from sessionforce.agent_api._auth import AccessToken, TokenProvider
from sessionforce.agent_api._boundary import error_from_response, map_exception, server_message
from sessionforce.agent_api._retry import (
    Failure,
    RetryPolicy,
    Verdict,
    backoff_delay,
    locked_delay,
    parse_retry_after,
    verdict,
    verdict_name,
)
from sessionforce.errors import InvalidArgument, SessionforceError
from sessionforce.errors._build import client_closed, protocol_error, session_locked
from sessionforce.errors._redact import remember_secret
from sessionforce.telemetry import Telemetry

__all__ = ["API_PREFIX", "DEFAULT_BASE_URL", "RawResponse", "Timeouts", "Transport"]

logger = logging.getLogger("sessionforce.http")

DEFAULT_BASE_URL = "https://api.salesforce.com"
API_PREFIX = "/einstein/ai-agent/v1"
USER_AGENT = f"sessionforce/{__version__} python/{platform.python_version()} aiohttp/{aiohttp.__version__}"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait: to connect; for the whole response of a request (``read``: sending it, the
    agent's work and reading the answer, counted from when the request asks the pool for a connection);
    for the next *complete* event of a stream (``stream_read``: bytes and keep-alive comments that do not
    complete an event do not count); for a whole turn (``turn``: a send's answer, or a stream from the
    request to its end of turn; the Agent API itself gives up on a call after 120 s); and how long an idle
    pooled connection is kept (keep it below the server's own idle timeout, or a request may go out on a
    connection the server just closed and end as ``DeliveryUnknown``).

    A request still waiting for a free pooled connection when ``read`` runs out is reported as
    ``DeliveryUnknown`` too (it was not sent, but that cannot be told apart): never resent, never
    duplicated. Keep ``read`` well above the longest queueing your pool sees under load.
    """

    connect: float = 10.0
    read: float = 120.0
    stream_read: float = 120.0
    keepalive: float = 15.0
    turn: float = 130.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "stream_read", "keepalive", "turn"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
                raise InvalidArgument(f"Timeouts.{name} must be a number of seconds greater than 0, got {value!r}.")


@dataclass(slots=True)
class RawResponse:
    """A complete HTTP response."""

    status: int
    headers: Mapping[str, str]
    body: bytes


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
    turn: bool = False
    return_errors: bool = False


def _is_event_stream(response: aiohttp.ClientResponse) -> bool:
    # A missing Content-Type is read as SSE (tolerant); a different one is not an answer to a stream.
    kind = response.headers.get("Content-Type")
    return kind is None or kind.lower().startswith("text/event-stream")


class Transport:
    """Owns the pooled ``aiohttp.ClientSession`` and runs every request through one retry loop.

    ``clock``, ``sleep`` and ``rng`` are injectable: the retry and 423 waits use nothing else.
    ``telemetry``: where each attempt's span and the retry metrics go.
    """

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
        telemetry: Telemetry | None = None,
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
        self.telemetry = telemetry or Telemetry()
        self._closed = False
        self._known_token: AccessToken | None = None
        # A request's read timeout bounds the whole request (one timer), not the time between bytes:
        # aiohttp's sock_read arms a fresh timer on every chunk, and a cancelled timer stays in the event
        # loop's heap until its time comes (two minutes here), holding a context copy: under load, that
        # doubled the objects each request leaves for the garbage collector and the collections with them.
        t = self.timeouts
        self._timeout = aiohttp.ClientTimeout(total=t.read, sock_connect=t.connect)
        self._turn_timeout = aiohttp.ClientTimeout(total=min(t.read, t.turn), sock_connect=t.connect)
        # A stream: the turn bounds the whole of it (aiohttp's total runs until the body is read); the gap
        # between complete events is MessageStream's own timer; sock_read bounds waiting for the headers.
        self._stream_timeout = aiohttp.ClientTimeout(total=t.turn, sock_connect=t.connect, sock_read=t.stream_read)

    # ------------------------------------------------------------------ lifecycle

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise client_closed()
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
        turn: bool = False,
        url: str | None = None,
        return_errors: bool = False,
    ) -> RawResponse:
        """Send one Agent API request and return its successful response, or raise the mapped error.
        ``turn`` marks a user turn: its answer is bounded by ``Timeouts.turn`` as well as ``read``.
        ``url``: an absolute URL instead of the Agent API's (the org's REST API, same token and loop);
        ``return_errors``: return an error answer (after the loop's retries) instead of raising it."""
        request = _Request(
            method=method,
            url=url,
            path=path,
            body=body,
            extra_headers=headers or {},
            idempotent=idempotent,
            on_session=on_session,
            turn=turn,
            return_errors=return_errors,
        )
        response = await self._run(request)
        assert isinstance(response, RawResponse)
        return response

    async def open_stream(self, path: str, *, body: bytes) -> aiohttp.ClientResponse:
        """POST to a streaming endpoint; return the live 200 response (the caller must release it).

        A 200 that is not an event stream (JSON, HTML) is not an answer: :class:`ProtocolError`.
        """
        request = _Request(
            method="POST",
            url=None,
            path=path,
            body=body,
            extra_headers={"Accept": "text/event-stream"},
            on_session=True,
            stream=True,
            turn=True,
        )
        response = await self._run(request)
        if isinstance(response, RawResponse):
            kind = response.headers.get("Content-Type", "no content type")
            said = server_message(response.body)
            raise protocol_error(
                f"the stream answered {response.status} with {kind} instead of an event stream"
                + (f" ({said})" if said else ""),
                body=response.body,
                status=response.status,
            )
        return response

    # ------------------------------------------------------------------ the loop

    async def _run(self, request: _Request) -> RawResponse | aiohttp.ClientResponse:
        started = self.clock()
        attempt = 0
        refreshed = False
        locked_since: float | None = None
        locked_waits = 0
        while True:
            token = None
            if request.authenticated:
                token = await self.token_provider.get_token(self.post_form)
                if token is not self._known_token:  # a new token: scrubbed from every error from now on
                    remember_secret(token.value)
                    self._known_token = token
            retry_after: float | None = None
            try:
                base = self.api_base(token)
                outcome = await self.telemetry.http_attempt(self._attempt(request, token, base), request, base,
                                                            verdict_name)
            except _AttemptFailed as failed:
                decision = verdict(status=None, failure=failed.failure, idempotent=request.idempotent)
                if decision is Verdict.RAISE:
                    raise failed.error from failed.__cause__
                error: SessionforceError = failed.error
                error_response: RawResponse | None = None
            else:
                if isinstance(outcome, aiohttp.ClientResponse) or outcome.status < 300:
                    return outcome
                if outcome.status < 400:
                    if request.return_errors:
                        return outcome
                    where = outcome.headers.get("Location", "elsewhere")
                    raise protocol_error(f"a redirect ({outcome.status} to {where}); sessionforce does not follow "
                                         "redirects", body=outcome.body, status=outcome.status)
                if outcome.status == 401 and token is not None and not refreshed:
                    refreshed = True
                    await self.token_provider.refresh(self.post_form, token)
                    continue
                error_response = outcome
                if outcome.status in (423, 429, 503):
                    retry_after = parse_retry_after(outcome.headers)
                error = error_from_response(
                    outcome.status, outcome.headers, outcome.body, on_session=request.on_session,
                    retry_after=retry_after, idempotent=request.idempotent,
                    starting=request.method == "POST" and request.path.startswith("/agents/"),
                    token=token.value if token is not None else None,
                )
                decision = verdict(status=outcome.status, failure=None, idempotent=request.idempotent)
                if decision is Verdict.RAISE:
                    if request.return_errors:
                        return outcome
                    raise error
            if decision is Verdict.WAIT_LOCKED:
                now = self.clock()
                locked_since = now if locked_since is None else locked_since
                delay = locked_delay(locked_waits, now - locked_since, self.retry, self.rng, retry_after)
                if delay is None:
                    raise session_locked(error, waited=now - locked_since, budget=self.retry.locked_wait)
                locked_waits += 1
                self.telemetry.locked_wait()
                self._log_wait(request, delay, f"the session is locked (423), wait {locked_waits}", error)
                await self.sleep(delay)
                continue
            delay = backoff_delay(attempt, self.retry, retry_after, self.rng)
            too_long = retry_after is not None and retry_after > self.retry.max_retry_after
            out_of_time = self.clock() - started + delay > self.retry.total_timeout
            if attempt >= self.retry.max_retries or too_long or out_of_time:
                if request.return_errors and error_response is not None:
                    return error_response
                raise error
            attempt += 1
            self.telemetry.retried(error_response.status if error_response is not None else None, error)
            self._log_wait(request, delay, f"attempt {attempt} of {self.retry.max_retries}", error)
            await self.sleep(delay)

    def _log_wait(self, request: _Request, delay: float, which: str, error: SessionforceError) -> None:
        logger.info(
            "retrying %s %s in %.2fs (%s): %s", request.method, request.path, delay, which, error.message,
            extra=log_context(),
        )

    async def _attempt(
        self, request: _Request, token: AccessToken | None, base: str
    ) -> RawResponse | aiohttp.ClientResponse:
        url = request.url or base + API_PREFIX + request.path
        headers = {"Content-Type": request.content_type, **request.extra_headers}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        http = self._http()
        debug = logger.isEnabledFor(logging.DEBUG)
        sent_at = self.clock() if debug else 0.0
        timeout = self._stream_timeout if request.stream else self._turn_timeout if request.turn else self._timeout
        response: aiohttp.ClientResponse | None = None
        live = False
        try:
            response = await http.request(
                request.method, url, data=request.body, headers=headers, timeout=timeout, allow_redirects=False
            )
            if request.stream and response.status == 200 and _is_event_stream(response):
                live = True
                return response
            body = await response.read()
        except asyncio.CancelledError:
            if response is not None:
                response.close()
            raise
        except Exception as exc:
            if response is not None:
                response.close()
            failure, error = map_exception(exc, f"{request.method} {request.path}", idempotent=request.idempotent)
            raise _AttemptFailed(failure, error) from exc
        finally:
            if response is not None and not live:
                response.release()
        if debug:
            logger.debug(
                "%s %s -> %d in %.0f ms",
                request.method, request.path, response.status, (self.clock() - sent_at) * 1000,
                extra=log_context(),
            )
        return RawResponse(status=response.status, headers=response.headers, body=body)


class _AttemptFailed(Exception):
    def __init__(self, failure: Failure, error: SessionforceError) -> None:
        super().__init__(error.message)
        self.failure = failure
        self.error = error
