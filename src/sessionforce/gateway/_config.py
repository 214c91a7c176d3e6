"""The gateway's settings: arguments, then ``SESSIONFORCE_GATEWAY_*`` environment variables, then defaults.

The org (My Domain, client credentials, agent) and the store URL are the library's own settings, resolved
by :mod:`sessionforce.gateway._agent` with the usual precedence (arguments > environment > profile); this
module holds only what the gateway adds. Secrets are ``SecretStr``: never printed, never logged.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sessionforce.errors import ConfigError

__all__ = ["ENV_PREFIX", "GatewaySettings", "SigningKey"]

ENV_PREFIX = "SESSIONFORCE_GATEWAY_"
MIN_KEY_BYTES = 32
"""HS256 keys shorter than the hash are brute-forceable from one token (RFC 7518 §3.2)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One HS256 key; its ``kid`` is derived from it, so a key list needs no names."""

    secret: SecretStr

    @property
    def kid(self) -> str:
        """The key id written into a token's header: the first 16 hex digits of the key's SHA-256."""
        return hashlib.sha256(self.secret.get_secret_value().encode()).hexdigest()[:16]

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key (for one run of a gateway whose signing key was not configured)."""
        return cls(SecretStr(secrets.token_urlsafe(48)))


def _split(value: Any) -> Any:
    """A comma-separated environment value as a list (arguments arrive as lists already)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class GatewaySettings(BaseSettings):
    """Everything the gateway adds to the library's settings. Every field has a safe default.

    Environment: ``SESSIONFORCE_GATEWAY_<FIELD>`` (e.g. ``SESSIONFORCE_GATEWAY_API_KEY``); list fields take
    comma-separated values.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, populate_by_name=True)

    api_key: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Keys the application's backend authenticates with (``Authorization: Bearer <key>``); several for
    rotation. None: ``POST /v1/tokens`` refuses every caller."""
    signing_key: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """HS256 keys for end-user tokens: the first signs, all verify (rotation). None: a random key per run."""
    cors_origin: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed to call from a browser (CORS). None: no cross-origin call is allowed."""
    demo: bool = False
    """Offer ``POST /v1/demo/token`` (mints a token for a new conversation, no key needed)."""

    token_ttl: float = 900.0
    """Default lifetime of an end-user token, seconds."""
    max_token_ttl: float = 24 * 3600.0
    max_body_bytes: int = 64 * 1024
    max_text_chars: int = 16_000
    max_id_chars: int = 100
    user_rate: int = 120
    """Requests per minute one end user (token subject) may make; 0 turns the limit off."""
    ip_rate: int = 1200
    """Requests per minute one client address may make; 0 turns the limit off."""

    queue_wait: float = 20.0
    """Seconds a message waits for the conversation's running turn before 409 ``turn_in_progress``."""
    max_queued: int = 4
    """Messages of one conversation a worker lets wait behind its running turn before answering 409."""
    lease_ttl: float = 30.0
    """Seconds a dead worker keeps a conversation (and a message id) blocked; renewed while alive."""
    event_retention: int = 1000
    """Events kept per conversation for re-attach (older ones are dropped)."""
    retention: float = 24 * 3600.0
    """Seconds an idle conversation's events and message ids are kept."""
    idle_timeout: float = 900.0
    """The reaper ends sessions idle this long (seconds); 0 turns the reaper off."""
    reap_interval: float = 60.0
    keepalive: float = 15.0
    """Seconds between SSE keep-alive comments."""
    shutdown_timeout: float = 30.0
    """Seconds in-flight turns get to finish on shutdown before they are cancelled (and recorded so)."""
    log_format: Literal["text", "json"] = "text"
    metrics_key: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Keys a Prometheus scraper must send (``Authorization: Bearer <key>``) to read ``GET /metrics``; several
    for rotation. None: ``/metrics`` answers anyone who reaches it (counts only: no id, text or secret)."""

    @field_validator("api_key", "signing_key", "cors_origin", "metrics_key", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("signing_key")
    @classmethod
    def _key_length(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            if len(key.get_secret_value().encode()) < MIN_KEY_BYTES:
                raise ValueError(f"every signing key must be at least {MIN_KEY_BYTES} bytes (a random 48-character "
                                 "string is good: python -c 'import secrets; print(secrets.token_urlsafe(48))')")
        return value

    @field_validator("api_key", "metrics_key")
    @classmethod
    def _api_key_length(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(key.get_secret_value()) < 16 for key in value):
            raise ValueError("every key must be at least 16 characters")
        return value

    @field_validator("cors_origin")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and (not origin.startswith(("http://", "https://")) or origin.count("/") != 2):
                raise ValueError(f"{origin!r} is not an origin: use scheme://host[:port], e.g. https://shop.example")
        return [origin.rstrip("/") for origin in value]

    @field_validator("token_ttl", "max_token_ttl", "queue_wait", "lease_ttl", "retention", "reap_interval",
                     "keepalive", "shutdown_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be a number of seconds greater than 0")
        return value

    @field_validator("max_body_bytes", "max_text_chars", "max_id_chars", "event_retention")
    @classmethod
    def _size(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be a whole number of at least 1")
        return value

    @field_validator("user_rate", "ip_rate", "max_queued", "idle_timeout")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must be 0 (off) or more")
        return value

    @classmethod
    def load(cls, **arguments: Any) -> GatewaySettings:
        """Settings from ``arguments`` (``None`` or an empty list = not given), then the environment.

        Raises :class:`ConfigError` naming each bad setting and its variable, never echoing a value.
        """
        given = {k: v for k, v in arguments.items() if v is not None and v != [] and v != ()}
        unknown = sorted(set(given) - set(cls.model_fields))
        if unknown:
            raise ConfigError(f"Unknown gateway setting(s): {', '.join(unknown)}.")
        try:
            return cls(**given)
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_input=False, include_url=False):
                name = str(error["loc"][0]) if error["loc"] else "?"
                problems.append(f"{name} ({ENV_PREFIX}{name.upper()}): {error['msg']}")
            raise ConfigError("Invalid gateway setting: " + "; ".join(problems)) from None

    def signing_keys(self) -> Sequence[SigningKey]:
        """The configured signing keys, the signing one first."""
        return [SigningKey(key) for key in self.signing_key]
