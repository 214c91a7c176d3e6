"""What every request goes through before its route does anything: credentials, rate limits, body limits.

Each check raises a :class:`~sessionforce.gateway._errors.GatewayError`; nothing here echoes a token, a
key or a body back.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr
from starlette.requests import Request

from sessionforce.gateway._errors import GatewayError, bad_request, forbidden, rate_limited, unauthorized
from sessionforce.gateway._state import GatewayState, StateUnavailable
from sessionforce.gateway._tokens import EndUser, TokenError, TokenVerifier, valid_conversation_id

__all__ = ["Guard", "read_json"]

WINDOW = 60.0


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object body; 415 unless it says JSON, 413 past ``max_bytes``, 400 unless an object."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise GatewayError(415, "unsupported_media_type", "Send the body as JSON with 'Content-Type: "
                           "application/json'.")
    too_large = GatewayError(413, "body_too_large", f"The body is larger than {max_bytes} bytes. What to do: send "
                             "less.")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The body is not valid JSON. What to do: send a JSON object.") from None
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object.")
    return body


def _one_of(request: Request, keys: Sequence[bytes]) -> None:
    """401 unless the request's bearer credential is one of ``keys`` (none: 401 to everyone)."""
    given = _bearer(request)
    if given is None or not keys:
        raise unauthorized()
    encoded = given.encode()
    # Every key compared, always: the time taken says nothing about which one (or how much) matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(encoded, key)
    if not matched:
        raise unauthorized()


class Guard:
    """Credentials and rate limits, by the rules of the gateway's settings."""

    def __init__(self, tokens: TokenVerifier, api_keys: Sequence[SecretStr], state: GatewayState, *,
                 user_rate: int, ip_rate: int, metrics_keys: Sequence[SecretStr] = ()) -> None:
        self.tokens = tokens
        self._api_keys = [key.get_secret_value().encode() for key in api_keys]
        self._metrics_keys = [key.get_secret_value().encode() for key in metrics_keys]
        self._state = state
        self._user_rate = user_rate
        self._ip_rate = ip_rate

    @staticmethod
    def client_ip(request: Request) -> str:
        """The caller's address (uvicorn rewrites it from X-Forwarded-For only for trusted proxies)."""
        return request.client.host if request.client is not None else "unknown"

    async def limit(self, request: Request, user: str | None = None) -> None:
        """Count the request against its address and, when known, its end user; 429 past either limit."""
        counters = []
        if self._ip_rate:
            counters.append(("ip:" + self.client_ip(request), self._ip_rate, WINDOW))
        if user is not None and self._user_rate:
            counters.append(("user:" + user, self._user_rate, WINDOW))
        if not counters:
            return
        try:
            wait = await self._state.hit(counters)
        except StateUnavailable:
            return  # fail open: a rate limit is protection, not a reason to refuse every user
        if wait is not None:
            raise rate_limited(wait)

    def api_key(self, request: Request) -> None:
        """401 unless the request carries one of the configured API keys (compared in constant time)."""
        _one_of(request, self._api_keys)

    def metrics(self, request: Request) -> None:
        """For ``GET /metrics``: 401 unless it carries a metrics key, when any is configured."""
        if self._metrics_keys:
            _one_of(request, self._metrics_keys)

    async def end_user(self, request: Request, *, allow_query: bool = False) -> EndUser:
        """The verified end-user token of the request (``?access_token=`` only where ``allow_query``),
        counted against the limits of its user and address; a refused token counts against the address."""
        token = _bearer(request)
        if token is None and allow_query:
            token = request.query_params.get("access_token")
        try:
            if not token:
                raise TokenError(expired=False)
            user = self.tokens.verify(token)
        except TokenError as exc:
            await self.limit(request)  # guessing tokens costs requests like anything else (429 first)
            raise unauthorized(exc.expired) from None
        await self.limit(request, user.user)
        return user

    async def conversation(self, request: Request, *, allow_query: bool = False) -> tuple[EndUser, str]:
        """The end user and the path's conversation id; 401 without a valid token, 403 for another
        conversation (a malformed id cannot be in any token: 403 too, saying nothing more)."""
        user = await self.end_user(request, allow_query=allow_query)
        conversation_id = request.path_params["conversation_id"]
        if not valid_conversation_id(conversation_id) or not user.may_touch(conversation_id):
            raise forbidden()
        return user, conversation_id
