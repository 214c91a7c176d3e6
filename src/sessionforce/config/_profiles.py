"""Named profiles in a TOML file: where an org, its credentials, an agent and a store are written down.

The file lives at ``user_config_dir("sessionforce")/config.toml`` (``SESSIONFORCE_CONFIG`` overrides it)::

    default_profile = "dev"          # optional; else the profile named "default", if any

    [profiles.dev]
    my_domain = "https://acme.my.salesforce.com"
    client_id = "3MVG9..."
    client_secret = "..."
    agent_id = "0XxRM0000000001"
    base_url = "https://api.salesforce.com"     # optional
    store = "sqlite:////home/me/agents.db"      # optional

Precedence is arguments, then environment variables, then the profile: a profile value is used only for
settings that neither an argument nor an environment variable gives (applied in :mod:`._settings`).
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from sessionforce.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "PROFILE_ENV",
    "PROFILE_KEYS",
    "STORE_ENV",
    "Profile",
    "config_path",
    "load_profiles",
    "permission_warning",
    "select_profile",
    "write_profile",
]

CONFIG_ENV = "SESSIONFORCE_CONFIG"
"""Environment variable naming the config file (instead of the user config dir)."""
PROFILE_ENV = "SESSIONFORCE_PROFILE"
"""Environment variable naming the profile to use when no ``--profile`` is given."""
STORE_ENV = "SESSIONFORCE_STORE"
"""Environment variable naming the session store URL."""
PROFILE_KEYS: tuple[str, ...] = ("my_domain", "client_id", "client_secret", "agent_id", "base_url", "store")
"""The keys a ``[profiles.NAME]`` table may hold."""
SECRET_KEYS = frozenset({"client_secret"})


@dataclass(frozen=True)
class Profile:
    """One ``[profiles.NAME]`` table."""

    name: str
    values: dict[str, str] = field(default_factory=dict)


def config_path() -> Path:
    """The config file: ``SESSIONFORCE_CONFIG``, else ``config.toml`` in the user's config directory."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("sessionforce", appauthor=False)) / "config.toml"


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}). What to do: save it as UTF-8, or run "
            "`sessionforce config init`."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({exc}). What to do: fix the file or run `sessionforce config init`."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc}).") from None


def load_profiles(path: Path | None = None) -> tuple[dict[str, Profile], str | None]:
    """Every profile in the file (none if it does not exist) and its ``default_profile``, validated."""
    path = path or config_path()
    data = _read(path)
    unknown = sorted(set(data) - {"profiles", "default_profile"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; expected [profiles.NAME] tables.")
    default = data.get("default_profile")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{path}: default_profile must be a string (a profile name).")
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: 'profiles' must be a table of [profiles.NAME] tables.")
    profiles: dict[str, Profile] = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: profiles.{name} must be a table.")
        bad = sorted(set(table) - set(PROFILE_KEYS))
        if bad:
            raise ConfigError(
                f"{path}: profiles.{name}: unknown key(s) {', '.join(bad)}; known: {', '.join(PROFILE_KEYS)}."
            )
        for key, value in table.items():
            if not isinstance(value, str):
                raise ConfigError(f"{path}: profiles.{name}.{key} must be a string.")
        profiles[name] = Profile(name, dict(table))
    return profiles, default


def select_profile(name: str | None = None, path: Path | None = None) -> Profile | None:
    """The profile to use: ``name``, else ``SESSIONFORCE_PROFILE``, else the file's ``default_profile``,
    else the one named ``default``; ``None`` when there is none. A name that is not in the file raises."""
    path = path or config_path()
    profiles, default = load_profiles(path)
    wanted = name or os.environ.get(PROFILE_ENV) or default
    if wanted is None:
        return profiles.get("default")
    if wanted not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(
            f"No profile {wanted!r} in {path} (profiles: {known}). "
            f"What to do: run `sessionforce config init --profile {wanted}`."
        )
    return profiles[wanted]


def permission_warning(path: Path | None = None) -> str | None:
    """A warning when the config file can be read by group or others (it may hold a secret)."""
    path = path or config_path()
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"warning: {path} is readable by other users and may hold a secret. What to do: chmod 600 {path}"
    return None


def _toml_string(value: str) -> str:
    # JSON string escapes (\" \\ \n \uXXXX ...) are all valid in TOML basic strings.
    return json.dumps(value, ensure_ascii=False)


def write_profile(name: str, values: dict[str, str], path: Path | None = None, *, make_default: bool = False) -> Path:
    """Add or replace profile ``name`` (other profiles are kept; comments are not) and return the path.

    The file is created readable by its owner only (mode 600), since it may hold a client secret.
    """
    path = path or config_path()
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ConfigError(f"Profile name {name!r}: use letters, digits, '-' and '_'.")
    profiles, default = load_profiles(path)
    profiles[name] = Profile(name, {k: v for k, v in values.items() if k in PROFILE_KEYS and v})
    if make_default:
        default = name
    lines = ["# sessionforce profiles: see `sessionforce config --help`. Keep this file private (chmod 600).", ""]
    if default:
        lines += [f"default_profile = {_toml_string(default)}", ""]
    for profile in profiles.values():
        lines.append(f"[profiles.{profile.name}]")
        lines += [f"{key} = {_toml_string(profile.values[key])}" for key in PROFILE_KEYS if key in profile.values]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    os.chmod(path, 0o600)
    return path
