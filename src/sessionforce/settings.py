"""Client settings: from arguments, then the environment, validated at construction.

Every setting has one environment variable; a missing or malformed one raises :class:`ConfigError`
naming both the argument and the variable, never echoing the value (it may be a secret).
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sessionforce.auth import ClientCredentials, StaticToken, TokenProvider
from sessionforce.errors import ConfigError
from sessionforce.http import RetryPolicy, Timeouts

__all__ = ["ENV_NAMES", "ClientSettings"]

ENV_NAMES: dict[str, str] = {
    "my_domain": "SF_MY_DOMAIN",
    "client_id": "SF_CLIENT_ID",
    "client_secret": "SF_CLIENT_SECRET",
    "agent_id": "SF_AGENT_ID",
    "access_token": "SF_ACCESS_TOKEN",
    "base_url": "SESSIONFORCE_BASE_URL",
    "connect_timeout": "SESSIONFORCE_CONNECT_TIMEOUT",
    "read_timeout": "SESSIONFORCE_READ_TIMEOUT",
    "stream_read_timeout": "SESSIONFORCE_STREAM_READ_TIMEOUT",
    "token_lifetime": "SESSIONFORCE_TOKEN_LIFETIME",
    "max_retries": "SESSIONFORCE_MAX_RETRIES",
}
"""Each setting's environment variable."""


def _env(name: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(name, ENV_NAMES[name]))


class ClientSettings(BaseSettings):
    """Where the org and agent are and how to reach them. Arguments win over the environment."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    my_domain: str | None = _env("my_domain")
    """The org's My Domain URL (token endpoint; sent as ``instanceConfig.endpoint``)."""
    client_id: str | None = _env("client_id")
    client_secret: SecretStr | None = _env("client_secret")
    agent_id: str | None = _env("agent_id")
    access_token: SecretStr | None = _env("access_token")
    """A token minted elsewhere, used instead of client credentials."""
    base_url: str | None = _env("base_url")
    """The Agent API host; overrides the token's ``api_instance_url`` (Government Cloud, tests)."""
    connect_timeout: float | None = _env("connect_timeout")
    read_timeout: float | None = _env("read_timeout")
    stream_read_timeout: float | None = _env("stream_read_timeout")
    token_lifetime: float | None = _env("token_lifetime")
    max_retries: int | None = _env("max_retries")

    @field_validator("my_domain", "base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")) or len(value) < 10:
            raise ValueError("must be a URL starting with https://, e.g. https://acme.my.salesforce.com")
        return value

    @field_validator("connect_timeout", "read_timeout", "stream_read_timeout", "token_lifetime")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be a number of seconds greater than 0")
        return value

    @field_validator("max_retries")
    @classmethod
    def _retries(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 20:
            raise ValueError("must be a whole number from 0 to 20")
        return value

    @classmethod
    def load(cls, **arguments: Any) -> ClientSettings:
        """Build settings from ``arguments`` (``None`` means "not given") and the environment."""
        given = {k: v for k, v in arguments.items() if v is not None}
        unknown = sorted(set(given) - set(cls.model_fields))
        if unknown:
            raise ConfigError(f"Unknown setting(s): {', '.join(unknown)}. Known: {', '.join(cls.model_fields)}.")
        try:
            return cls(**given)
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_input=False, include_url=False):
                name = str(error["loc"][0]) if error["loc"] else "?"
                env = ENV_NAMES.get(name, name)
                problems.append(f"{name} ({env}): {error['msg']}")
            raise ConfigError("Invalid setting: " + "; ".join(problems)) from None

    def require(self, *names: str) -> None:
        """Raise :class:`ConfigError` naming every listed setting that is not set."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            listed = ", ".join(f"{n} (environment variable {ENV_NAMES[n]})" for n in missing)
            raise ConfigError(f"Missing setting(s): {listed}. What to do: pass them as arguments or set the variables.")

    def token_provider(self) -> TokenProvider:
        """Client credentials when an id and secret are set, else a static token; else :class:`ConfigError`."""
        if self.access_token is not None and self.client_id is None:
            return StaticToken(self.access_token)
        self.require("my_domain", "client_id", "client_secret")
        my_domain, client_id, secret = self.my_domain, self.client_id, self.client_secret
        if my_domain is None or client_id is None or secret is None:  # pragma: no cover - require() raised
            raise ConfigError("unreachable")
        return ClientCredentials(my_domain, client_id, secret, lifetime=self.token_lifetime)

    def timeouts(self) -> Timeouts:
        """The timeouts, defaults filled in."""
        default = Timeouts()
        return Timeouts(
            connect=self.connect_timeout or default.connect,
            read=self.read_timeout or default.read,
            stream_read=self.stream_read_timeout or default.stream_read,
        )

    def retry_policy(self) -> RetryPolicy:
        """The retry policy, defaults filled in."""
        return RetryPolicy() if self.max_retries is None else RetryPolicy(max_retries=self.max_retries)
