"""Session stores: where conversation records, transcripts and turn leases live.

Choose one by URL (``store=`` or ``SESSIONFORCE_STORE``): ``memory://``, ``sqlite:///path/to/file.db``
(the default, a file under the user's data directory), ``redis://host:port/db`` (optionally
``?prefix=myapp:`` to keep several apps apart in one Redis; keys default to ``sessionforce:``; a cluster as
``redis+cluster://host1:port,host2:port``, Sentinel as ``redis+sentinel://s1:port,s2:port/service``), or
``postgresql://user:password@host:5432/dbname`` (optionally ``?schema=myapp``; default ``sessionforce``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from sessionforce.config import STORE_ENV
from sessionforce.errors import ConfigError
from sessionforce.errors._redact import redact_url
from sessionforce.store._lease_wait import acquire_lease
from sessionforce.store._memory import MemoryStore
from sessionforce.store._protocol import Store
from sessionforce.store._records import (
    ConversationRecord,
    ConversationStatus,
    Held,
    Lease,
    PendingTurn,
    SessionInfo,
    SessionState,
    TranscriptEntry,
)
from sessionforce.store._sqlite import SQLiteStore

if TYPE_CHECKING:
    from sessionforce.store._postgres import PostgresStore
    from sessionforce.store._redis import RedisStore

__all__ = [
    "ConversationRecord",
    "ConversationStatus",
    "Held",
    "Lease",
    "MemoryStore",
    "PendingTurn",
    "PostgresStore",
    "RedisStore",
    "SQLiteStore",
    "SessionInfo",
    "SessionState",
    "Store",
    "TranscriptEntry",
    "acquire_lease",
    "default_sqlite_path",
    "open_store",
]

_SCHEMES = (
    "memory://, sqlite:///path/to/file.db, redis://host:6379/0 (redis+cluster://host1:6379,host2:6379 for a "
    "cluster, redis+sentinel://sentinel1:26379,sentinel2:26379/mymaster for Sentinel) or "
    "postgresql://user@host:5432/dbname"
)
_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel")


def __getattr__(name: str) -> Any:
    # RedisStore and PostgresStore need optional extras (``redis``, ``postgres``): imported on first use only.
    if name == "RedisStore":
        from sessionforce.store._redis import RedisStore

        return RedisStore
    if name == "PostgresStore":
        from sessionforce.store._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'sessionforce.store' has no attribute {name!r}")


def default_sqlite_path() -> Path:
    """Where the default SQLite store lives: ``sessions.db`` in the user's data directory."""
    return Path(platformdirs.user_data_dir("sessionforce", appauthor=False)) / "sessions.db"


def _naming_source(open_it: Callable[[], Store], label: str) -> Store:
    """Open a store; a ConfigError about a URL that came from the environment says so."""
    try:
        return open_it()
    except ConfigError as exc:
        if not label:
            raise
        raise ConfigError(f"{exc.message} (The URL came from {STORE_ENV}.)") from None


def open_store(url: str | None = None) -> Store:
    """Open the store a URL names; ``None`` reads ``SESSIONFORCE_STORE``, else the default SQLite file.

    A URL that cannot be used raises :class:`~sessionforce.errors.ConfigError` saying why; a password in it
    is never shown. Messages name ``SESSIONFORCE_STORE`` only when the URL came from it (a caller that passes
    a URL names its own source, e.g. the CLI's ``--store``).
    """
    label = "" if url else f" ({STORE_ENV})"
    url = url or os.environ.get(STORE_ENV) or f"sqlite:///{default_sqlite_path()}"
    scheme, sep, rest = url.partition("://")
    shown = redact_url(url)
    if not sep:
        raise ConfigError(f"Store URL {shown!r}{label} has no scheme. What to do: use {_SCHEMES}.")
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(
                f"Store URL {shown!r}{label} needs a file path: sqlite:///absolute/path.db "
                "(three slashes, then the path)."
            )
        return SQLiteStore(rest[1:] if rest.startswith("//") else rest)
    if scheme in _REDIS_SCHEMES:
        from sessionforce.store._redis import RedisStore

        # The whole URL, our query parameters (prefix, wait_replicas, ...) included: the Redis store reads it.
        return _naming_source(lambda: RedisStore.from_url(url), label)
    if scheme in ("postgresql", "postgres"):
        from sessionforce.store._postgres import PostgresStore

        return _naming_source(lambda: PostgresStore.from_url(url), label)
    raise ConfigError(
        f"Store URL {shown!r}{label} has an unknown scheme {redact_url(scheme)!r}. What to do: use {_SCHEMES}."
    )
