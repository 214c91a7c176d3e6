"""Opening the gateway's shared state: the backend the store URL names (see :mod:`._state`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sessionforce.errors import ConfigError
from sessionforce.gateway._state import GatewayState

__all__ = ["open_state", "sibling_path"]


def sibling_path(store_path: str) -> Path:
    """The gateway's SQLite file next to the store's: ``sessions.db`` -> ``sessions-gateway.db``."""
    path = Path(store_path)
    return path.with_name(f"{path.stem}-gateway{path.suffix or '.db'}")


def open_state(
    url: str, *, origin: str, event_retention: int = 1000, retention: float = 24 * 3600.0,
    clock: Callable[[], float] | None = None,
) -> GatewayState:
    """The backend the store URL names. ``origin`` identifies this process (its own appends are not
    reported back to it by :meth:`GatewayState.listen`)."""
    now = clock or time.time
    scheme, sep, rest = url.partition("://")
    if scheme == "memory" and sep:
        from sessionforce.gateway._state_memory import MemoryState

        return MemoryState(event_retention=event_retention, retention=retention, clock=now)
    if scheme == "sqlite" and sep and rest.startswith("/") and rest != "/":
        from sessionforce.gateway._state_sqlite import SQLiteState

        path = sibling_path(rest[1:] if rest.startswith("//") else rest)
        return SQLiteState(path, origin=origin, event_retention=event_retention, retention=retention, clock=now)
    if scheme in ("redis", "rediss", "unix") and sep:
        from sessionforce.gateway._state_redis import RedisState

        return RedisState.from_url(url, origin=origin, event_retention=event_retention, retention=retention,
                                   clock=now)
    raise ConfigError(
        "The store URL names no backend the gateway can share state through. What to do: use memory:// (one "
        "process), sqlite:///path/to/file.db (one machine) or redis://host:6379/0 (many hosts)."
    )
