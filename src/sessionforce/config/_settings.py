"""Client settings: from arguments, then the environment, then the selected TOML profile, validated.

Every setting has one environment variable; a missing or malformed one raises :class:`ConfigError`
naming both the argument and the variable, never echoing the value (it may be a secret). Values only:
what is built from them (token providers, timeouts, retry policies) belongs to the wire package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sessionforce.config._profiles import STORE_ENV, Profile, select_profile
from sessionforce.errors import ConfigError

__all__ = ["ENV_NAMES", "ClientSettings", "Resolved", "resolve"]

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
    "turn_timeout": "SESSIONFORCE_TURN_TIMEOUT",
    "token_lifetime": "SESSIONFORCE_TOKEN_LIFETIME",
    "max_retries": "SESSIONFORCE_MAX_RETRIES",
    "locked_wait": "SESSIONFORCE_LOCKED_WAIT",
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
    turn_timeout: float | None = _env("turn_timeout")
    """The deadline of a whole turn (a send's answer, or a stream to its end of turn)."""
    token_lifetime: float | None = _env("token_lifetime")
    max_retries: int | None = _env("max_retries")
    locked_wait: float | None = _env("locked_wait")
    """How long a call waits out a session locked by another request (423) before it raises."""

    @field_validator("my_domain", "base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")) or len(value) < 10:
            raise ValueError("must be a URL starting with https://, e.g. https://acme.my.salesforce.com")
        return value

    @field_validator("connect_timeout", "read_timeout", "stream_read_timeout", "turn_timeout", "token_lifetime")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < float("inf"):
            raise ValueError("must be a number of seconds greater than 0")
        return value

    @field_validator("locked_wait")
    @classmethod
    def _not_negative(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value < float("inf"):
            raise ValueError("must be a number of seconds, 0 or more (0: never wait on a locked session)")
        return value

    @field_validator("max_retries")
    @classmethod
    def _retries(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 20:
            raise ValueError("must be a whole number from 0 to 20")
        return value

    @classmethod
    def load(cls, *, profile: str | None = None, **arguments: Any) -> ClientSettings:
        """Build settings from ``arguments`` (``None`` means "not given"), then the environment, then the
        TOML profile (``profile``, else ``SESSIONFORCE_PROFILE``, else the file's ``default_profile``, else
        the one named ``default``; none when there is no config file)."""
        return resolve(profile, **arguments).settings

    @classmethod
    def _validated(cls, given: dict[str, Any]) -> ClientSettings:
        """Settings from ``given`` values and the environment (no profile), errors named by variable."""
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


@dataclass(frozen=True)
class Resolved:
    """Settings after precedence was applied, and where each came from (for ``config show``)."""

    settings: ClientSettings
    store_url: str | None
    """``None``: the library default (``SESSIONFORCE_STORE``, else the default SQLite file)."""
    profile: Profile | None
    sources: dict[str, str]
    """Setting name → ``argument``, ``environment (VAR)`` or ``profile NAME``; unset settings absent."""

    @property
    def has_org(self) -> bool:
        """Whether an org is configured at all (a My Domain URL or a ready-made access token)."""
        return self.settings.my_domain is not None


def resolve(profile_name: str | None = None, *, store: str | None = None, **arguments: Any) -> Resolved:
    """Settings from ``arguments`` (``None`` = not given), then the environment, then the profile.

    Raises :class:`ConfigError` for a bad file, an unknown profile or a malformed setting.
    """
    profile = select_profile(profile_name)
    given = {k: v for k, v in arguments.items() if v is not None}
    sources: dict[str, str] = dict.fromkeys(given, "argument")
    for name, env in ENV_NAMES.items():
        if name not in given and os.environ.get(env):
            sources[name] = f"environment ({env})"
    if profile is not None:
        for key, value in profile.values.items():
            if key != "store" and key not in sources and value:
                given[key] = value
                sources[key] = f"profile {profile.name}"
    settings = ClientSettings._validated(given)
    store_url = store
    if store is not None:
        sources["store"] = "argument"
    elif os.environ.get(STORE_ENV):
        sources["store"] = f"environment ({STORE_ENV})"
    elif profile is not None and profile.values.get("store"):
        store_url = profile.values["store"]
        sources["store"] = f"profile {profile.name}"
    return Resolved(settings, store_url, profile, sources)
