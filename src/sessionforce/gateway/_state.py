"""What the gateway's workers share, beyond the conversation store: event logs, message ids, rate counters.

Chosen by the same URL as the conversation store: ``memory://`` (one process), ``sqlite:///path.db`` (one
machine: a sibling file ``path-gateway.db``, so the gateway's writes never queue behind the store's) or
``redis://...`` (many hosts, same ``?prefix=``, keys under ``<prefix>gw:``).

* **Event log** per conversation: ids 1, 2, 3... never reused (the counter outlives retention), the
  newest ``event_retention`` events kept, the log dropped ``retention`` seconds after its last event.
  Appends are atomic per conversation; other processes learn of them through :meth:`GatewayState.listen`.
* **Message ids**: the first attempt at a client message id *claims* it (holding it while it runs, like
  a lease: ``owner`` + ``expires_at``, renewed); it then *settles* it with its outcome, kept ``retention``
  seconds for retries, or drops it when nothing was sent (so a retry may run it afresh).
* **Counters** for rate limits (fixed windows) and **jobs** (one worker at a time runs the reaper).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Protocol

from sessionforce.errors import ConfigError

__all__ = [
    "Event",
    "GatewayState",
    "MessageClaim",
    "NewEvent",
    "StateUnavailable",
    "open_state",
]

NewEvent = tuple[str, str, str]
"""An event to append: ``(type, data as JSON text, message id of the turn that made it or "")``."""


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event. ``data`` stays JSON text: SSE writes it as it is, never re-encoded."""

    id: int
    type: str
    data: str
    turn: str


@dataclass(slots=True)
class MessageClaim:
    """The state of one client message id."""

    state: Literal["running", "done"]
    fingerprint: str
    """What the message said (hash of type, text, in_reply_to): a reused id with other content is refused."""
    owner: str
    """The attempt running it (random per attempt)."""
    expires_at: float
    """While running: past this, its owner counts as gone (it renews every third of the ttl)."""
    after: int
    """The conversation's last event id when it was claimed: its events come after this one."""
    outcome: str | None = None
    """When done: the outcome as JSON text."""

    def to_json(self) -> str:
        """The claim as JSON text (how the memory and SQLite backends keep it)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> MessageClaim:
        """Read one back."""
        return cls(**json.loads(text))


class StateUnavailable(Exception):
    """The gateway's shared state cannot be reached; the message says where (never with a password)."""


class GatewayState(Protocol):
    """The operations every backend provides, each one atomic."""

    where: str
    """Where the state lives, for messages (no password)."""

    async def append(self, batches: Mapping[str, Sequence[NewEvent]]) -> dict[str, int | StateUnavailable]:
        """Append each conversation's events in order; per conversation, the id of its last new event (the
        batch's ids are consecutive, ending there) or the error that stopped it."""
        ...

    async def read(self, conversation_id: str, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` retained events with ids greater than ``after``, oldest first."""
        ...

    async def last_id(self, conversation_id: str) -> int:
        """The id of the conversation's newest event (0 if none ever)."""
        ...

    async def claim(
        self, conversation_id: str, message_id: str, fingerprint: str, owner: str, ttl: float
    ) -> tuple[bool, MessageClaim]:
        """Claim a message id for ``owner``: ``(True, the new claim)``, or ``(False, the existing one)``."""
        ...

    async def renew(
        self, conversation_id: str, message_id: str, owner: str, ttl: float, *, take_over_as: str | None = None
    ) -> bool:
        """Extend a running claim ``owner`` holds; ``False`` if it no longer holds it. With ``take_over_as``,
        only a claim whose ttl has run out (its owner is gone), which then belongs to ``take_over_as``."""
        ...

    async def settle(self, conversation_id: str, message_id: str, owner: str, outcome: str | None) -> bool:
        """Finish the running claim ``owner`` holds: keep ``outcome`` for retries, or drop the claim (``None``)."""
        ...

    async def message(self, conversation_id: str, message_id: str) -> MessageClaim | None:
        """The claim of a message id, if any."""
        ...

    async def hit(self, counters: Sequence[tuple[str, int, float]]) -> float | None:
        """Count one request against each ``(key, limit, window seconds)``; the seconds to wait when any is
        over its limit, else ``None``."""
        ...

    async def try_job(self, name: str, owner: str, ttl: float) -> bool:
        """Whether ``owner`` may run job ``name`` now (no one else has in the last ``ttl`` seconds)."""
        ...

    async def purge(self) -> None:
        """Drop what retention says is gone (backends with their own expiry do nothing)."""
        ...

    async def ping(self) -> None:
        """Raise :class:`StateUnavailable` unless the backend answers."""
        ...

    async def listen(self, on_change: Callable[[str | None], None]) -> None:
        """Call ``on_change(conversation_id)`` for events other processes append, until cancelled;
        ``on_change(None)`` when notifications may have been missed (every watcher should look again)."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...


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
    import time

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
