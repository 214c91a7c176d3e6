"""Configuration, one module: settings from arguments, then the environment, then a TOML profile.

Values only: nothing here builds a transport or a token provider (that is :mod:`sessionforce.agent_api`'s
job), so the configuration can be read without loading the wire client.
"""

from __future__ import annotations

from sessionforce.config._profiles import (
    CONFIG_ENV,
    PROFILE_ENV,
    PROFILE_KEYS,
    STORE_ENV,
    Profile,
    config_path,
    load_profiles,
    permission_warning,
    select_profile,
    write_profile,
)
from sessionforce.config._settings import ENV_NAMES, ClientSettings, Resolved, resolve

__all__ = [
    "CONFIG_ENV",
    "ENV_NAMES",
    "PROFILE_ENV",
    "PROFILE_KEYS",
    "STORE_ENV",
    "ClientSettings",
    "Profile",
    "Resolved",
    "config_path",
    "load_profiles",
    "permission_warning",
    "resolve",
    "select_profile",
    "write_profile",
]
