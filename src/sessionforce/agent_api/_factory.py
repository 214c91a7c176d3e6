"""What the wire builds from settings: the token provider, the timeouts and the retry policy."""

from __future__ import annotations

from sessionforce.agent_api._auth import ClientCredentials, StaticToken, TokenProvider
from sessionforce.agent_api._retry import RetryPolicy
from sessionforce.agent_api._transport import Timeouts
from sessionforce.config import ClientSettings
from sessionforce.errors import ConfigError, InvalidArgument

__all__ = ["retry_policy_from", "timeouts_from", "token_provider_from"]


def token_provider_from(settings: ClientSettings) -> TokenProvider:
    """Client credentials when an id and secret are set, else a static token; else :class:`ConfigError`."""
    if settings.access_token is not None and settings.client_id is None:
        try:
            return StaticToken(settings.access_token)
        except InvalidArgument as exc:
            raise ConfigError(f"Invalid setting: access_token (SF_ACCESS_TOKEN): {exc.message}") from None
    settings.require("my_domain", "client_id", "client_secret")
    my_domain, client_id, secret = settings.my_domain, settings.client_id, settings.client_secret
    if my_domain is None or client_id is None or secret is None:  # pragma: no cover - require() raised
        raise ConfigError("unreachable")
    return ClientCredentials(my_domain, client_id, secret, lifetime=settings.token_lifetime)


def timeouts_from(settings: ClientSettings) -> Timeouts:
    """The timeouts, defaults filled in."""
    default = Timeouts()
    return Timeouts(
        connect=settings.connect_timeout or default.connect,
        read=settings.read_timeout or default.read,
        stream_read=settings.stream_read_timeout or default.stream_read,
        turn=settings.turn_timeout or default.turn,
    )


def retry_policy_from(settings: ClientSettings) -> RetryPolicy:
    """The retry policy, defaults filled in."""
    default = RetryPolicy()
    return RetryPolicy(
        max_retries=default.max_retries if settings.max_retries is None else settings.max_retries,
        locked_wait=default.locked_wait if settings.locked_wait is None else settings.locked_wait,
    )
