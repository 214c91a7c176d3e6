"""Where bearer tokens come from: OAuth client credentials against My Domain, or a static token.

Salesforce's token response carries ``issued_at`` but no ``expires_in``, so a token is refreshed when the
Agent API answers 401 (once; the call is then retried once), and ahead of time only when the caller
configured a lifetime. Refreshes are single-flight: however many calls hit a 401 together, one token
request goes out and all of them use its answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import SecretStr, ValidationError

from sessionforce.agent_api._models import TokenResponse
from sessionforce.errors import APIStatusError, InvalidArgument
from sessionforce.errors._build import static_token_refused, token_endpoint_error, token_unreadable
from sessionforce.errors._redact import remember_secret

__all__ = ["AccessToken", "ClientCredentials", "FormPoster", "StaticToken", "TokenProvider"]


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and what the token endpoint said about where to use it."""

    value: str = field(repr=False)
    api_instance_url: str | None = None
    instance_url: str | None = None
    issued_at_ms: int | None = None
    obtained_at: float = 0.0
    """When it was obtained, on the provider's monotonic clock."""


FormPoster = Callable[[str, Mapping[str, str]], Awaitable[tuple[int, Mapping[str, str], bytes]]]
"""Posts a form to a URL and returns ``(status, headers, body)``; supplied by the client's transport."""


@runtime_checkable
class TokenProvider(Protocol):
    """Supplies bearer tokens to the client. Implement it to plug in tokens minted elsewhere."""

    async def get_token(self, post_form: FormPoster) -> AccessToken:
        """The current token, fetching one when there is none (or it is past its configured lifetime)."""
        ...

    async def refresh(self, post_form: FormPoster, stale: AccessToken) -> AccessToken:
        """A token newer than ``stale``, which the server refused. Fetches at most once per stale token."""
        ...


class StaticToken:
    """A token minted elsewhere (or for tests). It cannot be refreshed: a 401 raises :class:`AuthError`."""

    def __init__(self, token: str | SecretStr, *, api_instance_url: str | None = None) -> None:
        value = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not _header_safe(value):
            raise InvalidArgument(
                "The access token must be a non-empty string of visible ASCII characters (it goes into the "
                "Authorization header). What to do: pass the token exactly as the token endpoint issued it."
            )
        remember_secret(value)
        self._token = AccessToken(value=value, api_instance_url=api_instance_url)

    def __repr__(self) -> str:
        return "StaticToken(token='**********')"

    async def get_token(self, post_form: FormPoster) -> AccessToken:
        """The static token."""
        return self._token

    async def refresh(self, post_form: FormPoster, stale: AccessToken) -> AccessToken:
        """A static token cannot be refreshed: raise :class:`AuthError`."""
        raise static_token_refused()


class ClientCredentials:
    """OAuth 2.0 client credentials against ``{my_domain}/services/oauth2/token``.

    The token is cached and shared by every call of the client. ``lifetime`` (seconds), when given,
    refreshes ahead of time (at 90% of it); otherwise tokens are refreshed only when refused.
    One instance belongs to one event loop (the one its client runs on).
    """

    def __init__(
        self,
        my_domain: str,
        client_id: str,
        client_secret: str | SecretStr,
        *,
        lifetime: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.my_domain = my_domain.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        remember_secret(self._secret.get_secret_value())
        self.lifetime = lifetime
        self._clock = clock
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many tokens were fetched (observability, and tests of single flight)."""

    def __repr__(self) -> str:
        return (
            f"ClientCredentials(my_domain={self.my_domain!r}, client_id={self.client_id!r}, "
            "client_secret='**********')"
        )

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return f"{self.my_domain}/services/oauth2/token"

    def _fresh(self, token: AccessToken | None) -> bool:
        if token is None:
            return False
        return self.lifetime is None or self._clock() - token.obtained_at < 0.9 * self.lifetime

    async def get_token(self, post_form: FormPoster) -> AccessToken:
        """The cached token, or a new one (single flight) when there is none or it is past its lifetime."""
        token = self._token
        if self._fresh(token):
            assert token is not None
            return token
        async with self._lock:
            if self._fresh(self._token):
                assert self._token is not None
                return self._token
            return await self._fetch(post_form)

    async def refresh(self, post_form: FormPoster, stale: AccessToken) -> AccessToken:
        """A token newer than ``stale``: if another caller already refreshed it, that one is returned."""
        async with self._lock:
            if self._token is not None and self._token is not stale:
                return self._token
            return await self._fetch(post_form)

    async def _fetch(self, post_form: FormPoster) -> AccessToken:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret.get_secret_value(),
        }
        status, _, body = await post_form(self.token_url, form)
        self.fetches += 1
        if status != 200:
            raise _token_error(self.token_url, status, body)
        try:
            parsed = TokenResponse.model_validate_json(body)
        except ValidationError as exc:
            raise token_unreadable(self.token_url, exc.error_count(), status=status, body=body) from None
        remember_secret(parsed.access_token)
        if not _header_safe(parsed.access_token):
            raise token_unreadable(self.token_url, 1, status=status, body=body)
        self._token = AccessToken(
            value=parsed.access_token,
            api_instance_url=parsed.api_instance_url,
            instance_url=parsed.instance_url,
            issued_at_ms=parsed.issued_at,
            obtained_at=self._clock(),
        )
        return self._token


def _header_safe(value: object) -> bool:
    """Whether ``value`` can be sent as a bearer token: visible ASCII, no spaces."""
    return isinstance(value, str) and bool(value) and value.isascii() and value.isprintable() and " " not in value


def _token_error(token_url: str, status: int, body: bytes) -> APIStatusError:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    code = data.get("error") if isinstance(data, dict) else None
    description = data.get("error_description") if isinstance(data, dict) else None
    return token_endpoint_error(
        token_url,
        status,
        code if isinstance(code, str) else None,
        description if isinstance(description, str) else None,
        body,
    )
