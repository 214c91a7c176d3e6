"""Session stores: where conversation records, transcripts and turn leases live.

Choose one by URL (``store=`` or ``SESSIONFORCE_STORE``): ``memory://``, ``sqlite:///path/to/file.db``
(the default, a file under the user's data directory), or ``redis://host:port/db`` (optionally
``?prefix=myapp:`` to keep several apps apart in one Redis; keys default to ``sessionforce:``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import platformdirs

from sessionforce.config import STORE_ENV
from sessionforce.errors import ConfigError
from sessionforce.store._memory import MemoryStore
from sessionforce.store._protocol import Store
from sessionforce.store._records import (
    ConversationRecord,
    ConversationStatus,
    Lease,
    PendingTurn,
    SessionInfo,
    SessionState,
    TranscriptEntry,
)
from sessionforce.store._sqlite import SQLiteStore

if TYPE_CHECKING:
    from sessionforce.store._redis import RedisStore

__all__ = [
    "ConversationRecord",
    "ConversationStatus",
    "Lease",
    "MemoryStore",
    "PendingTurn",
    "RedisStore",
    "SQLiteStore",
    "SessionInfo",
    "SessionState",
    "Store",
    "TranscriptEntry",
    "default_sqlite_path",
    "open_store",
]



def __getattr__(name: str) -> Any:
    # RedisStore needs the optional ``redis`` extra: imported on first use only.
    if name == "RedisStore":
        from sessionforce.store._redis import RedisStore

        return RedisStore
    raise AttributeError(f"module 'sessionforce.store' has no attribute {name!r}")


def default_sqlite_path() -> Path:
    """Where the default SQLite store lives: ``sessions.db`` in the user's data directory."""
    return Path(platformdirs.user_data_dir("sessionforce", appauthor=False)) / "sessions.db"


def open_store(url: str | None = None) -> Store:
    """Open the store a URL names; ``None`` reads ``SESSIONFORCE_STORE``, else the default SQLite file."""
    url = url or os.environ.get(STORE_ENV) or f"sqlite:///{default_sqlite_path()}"
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(
            f"Store URL {url!r} ({STORE_ENV}) has no scheme. What to do: use memory://, "
            "sqlite:///path/to/file.db or redis://host:6379/0."
        )
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(
                f"Store URL {url!r} ({STORE_ENV}) needs a file path: sqlite:///absolute/path.db "
                "(three slashes, then the path)."
            )
        return SQLiteStore(rest[1:] if rest.startswith("//") else rest)
    if scheme in ("redis", "rediss", "unix"):
        from sessionforce.store._redis import RedisStore

        # Our own query parameter (the rest of the URL is redis-py's): a key prefix per app or environment.
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [v for k, v in query if k == "prefix"]
        rest = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"])))
        return RedisStore.from_url(rest, prefix=prefixes[-1]) if prefixes else RedisStore.from_url(rest)
    raise ConfigError(
        f"Store URL {url!r} ({STORE_ENV}) has an unknown scheme {scheme!r}. What to do: use memory://, "
        "sqlite:///path/to/file.db or redis://host:6379/0."
    )
