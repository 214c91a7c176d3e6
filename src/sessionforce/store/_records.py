"""The records a session store keeps, and the lease that makes turns one at a time.

A store keeps one :class:`ConversationRecord` per conversation (compare-and-save by ``version``), an
append-only transcript per conversation, and a lease per conversation that makes turns one at a time
across processes and machines. Every write made under a lease carries the whole lease (owner and fencing
token), and the store refuses it unless that exact lease is the current one, so a worker that stalled past
its lease can never overwrite the work of the worker that took over, even after the store lost its state.

Times are wall-clock seconds (``time.time()``), since several processes and machines must agree on them.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from sessionforce._version import __version__
from sessionforce.errors._build import corrupt_record, unstorable

__all__ = [
    "ConversationRecord",
    "ConversationStatus",
    "Held",
    "Lease",
    "PendingTurn",
    "SessionInfo",
    "SessionState",
    "TranscriptEntry",
]


class SessionState(enum.StrEnum):
    """The state of one server session, as this conversation knows it."""

    ACTIVE = "active"
    ENDED = "ended"
    EXPIRED = "expired"


class ConversationStatus(enum.StrEnum):
    """Whether a conversation currently holds a live server session."""

    ACTIVE = "active"
    """A server session is open (as far as we know)."""
    IDLE = "idle"
    """No live session: the next turn starts one."""


class _Value:
    """JSON and copying for the store's records: plain slotted dataclasses, read and written through a
    pydantic ``TypeAdapter``. (Not pydantic models: a record is copied on every save, and a model costs
    six times the memory of a slotted dataclass, which matters to a process holding 10,000 of them.)"""

    __slots__ = ()

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (records are never changed in place once saved). An unknown
        field name raises ``AttributeError``."""
        cls = type(self)
        copied: Self = (_COPIERS.get(cls) or _copier(cls))(self, changes)  # the lookup inline: runs every save
        return copied

    def to_json(self) -> str:
        """The JSON text stores keep. A value JSON cannot hold (a lone surrogate in a text, an object in
        ``metadata``) raises :class:`~sessionforce.errors.InvalidArgument`."""
        try:
            cls = type(self)
            return (_ADAPTERS.get(cls) or _adapter(cls)).dump_json(self).decode()
        except PydanticSerializationError as exc:
            raise unstorable(self._described(), exc) from None

    def _described(self) -> str:
        return "transcript entry" if isinstance(self, TranscriptEntry) else type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for printing and exports)."""
        data: dict[str, Any] = _adapter(type(self)).dump_python(self, mode="json")
        return data

    @classmethod
    def from_json(cls, data: str | bytes) -> Self:
        """Read one back (validated: a store's content is input like any other)."""
        value: Self = _adapter(cls).validate_json(data)
        return value

    @classmethod
    def from_stored(cls, data: str | bytes, *, store: str, conversation_id: str) -> Self:
        """:meth:`from_json` for a store reading its own rows: a damaged one raises
        :class:`~sessionforce.errors.CorruptRecord` naming the conversation and ``store``."""
        try:
            value: Self = (_ADAPTERS.get(cls) or _adapter(cls)).validate_json(data)
        except ValidationError as exc:
            what = "transcript" if cls is TranscriptEntry else "record"
            raise corrupt_record(store, conversation_id, what, exc) from None
        return value


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}
_COPIERS: dict[type[Any], Callable[[Any, dict[str, Any]], Any]] = {}


def _copier(cls: type[Any]) -> Callable[[Any, dict[str, Any]], Any]:
    """A function copying a ``cls`` field by field, then applying changes.

    Generated once per class, like ``dataclasses`` generates ``__init__``: every turn copies its record
    twice, and a straight-line copy costs a quarter of ``dataclasses.replace``, which inspects the fields
    on every call (0.8 us against 3.2 us here).
    """
    copier = _COPIERS.get(cls)
    if copier is None:
        lines = ["def copy(self, changes):", "    new = new_object(cls)"]
        lines += [f"    new.{f.name} = self.{f.name}" for f in dataclasses.fields(cls)]
        lines += ["    for name, value in changes.items():", "        setattr(new, name, value)", "    return new"]
        namespace: dict[str, Any] = {"new_object": object.__new__, "cls": cls}
        exec("\n".join(lines), namespace)  # our own field names, never input
        copier = _COPIERS[cls] = namespace["copy"]
    return copier


def _adapter(cls: type[Any]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter


@dataclass(slots=True, kw_only=True)
class SessionInfo(_Value):
    """One server session a conversation has had."""

    session_id: str
    external_session_key: str
    started_at: float
    state: SessionState = SessionState.ACTIVE
    ended_at: float | None = None
    end_reason: str | None = None
    """Why it ended: an end reason we sent, or the agent's ``SessionEnded`` reason, or ``Expired``."""


@dataclass(slots=True, kw_only=True)
class PendingTurn(_Value):
    """A user turn written to the store before it is sent, cleared when its answer is saved.

    Found set by a later process, it means the sender died mid-turn: delivery is unknown.
    """

    sequence_id: int
    session_id: str
    text: str
    message_type: str = "Text"
    in_reply_to: str | None = None
    started_at: float
    owner: str
    """Who sent it (host:pid), for the report."""


@dataclass(slots=True, kw_only=True)
class ConversationRecord(_Value):
    """Everything needed to carry a conversation on from any process: its keys, sessions and counters."""

    conversation_id: str
    agent_id: str
    external_session_key: str
    """Generated when the conversation is opened; sent with its first session (the log handle)."""
    status: ConversationStatus = ConversationStatus.IDLE
    session_id: str | None = None
    """The live server session, when ``status`` is active."""
    sessions: list[SessionInfo] = field(default_factory=list)
    last_sequence_id: int = 0
    """The last sequenceId allocated; the next turn uses one more. Never reused, never reset."""
    pending: PendingTurn | None = None
    created_at: float
    last_activity_at: float
    """When the last turn (or session start) finished: the idle policy and the reaper read it."""
    turns: int = 0
    agent_ended: bool = False
    """The agent ended the last session itself (``SessionEnded``)."""
    escalated: bool = False
    """The agent handed the conversation to a human in the last session."""
    metadata: dict[str, Any] = field(default_factory=dict)
    org: str | None = None
    """The My Domain URL of the org the conversation's sessions live on (``None`` in older records)."""
    version: int = 0
    """Compare-and-save counter: 0 for a record not yet stored; the store bumps it on each save."""

    def _described(self) -> str:
        return f"record of conversation {self.conversation_id!r}"

    def current_session(self) -> SessionInfo | None:
        """The :class:`SessionInfo` of the live session, if any."""
        if self.session_id is None:
            return None
        for info in reversed(self.sessions):
            if info.session_id == self.session_id:
                return info
        return None


@dataclass(slots=True, kw_only=True)
class TranscriptEntry(_Value):
    """One line of a conversation's transcript (exported as JSON Lines). Never holds secrets."""

    kind: str
    """``turn``, ``preamble``, ``session_started``, ``session_ended``, ``delivery_unknown`` or ``error``."""
    at: float
    session_id: str | None = None
    sequence_id: int | None = None
    text: str | None = None
    """The user's text, for turns."""
    message_type: str | None = None
    reply: list[dict[str, Any]] | None = None
    """The agent's messages as they came on the wire."""
    duration_ms: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    client_version: str = __version__


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to run one turn on a conversation, until ``expires_at`` unless renewed.

    ``owner`` names the holder; ``fence`` grows with every new lease on the conversation and never goes
    back. Stores accept a write made under a lease only while exactly this owner and fence hold it.
    ``expires_at`` is the holder's own reckoning (its clock when it asked, plus the ttl).
    """

    conversation_id: str
    owner: str
    fence: int
    expires_at: float


class Held(float):
    """What :meth:`Store.try_acquire <sessionforce.store.Store.try_acquire>` answers when someone else holds
    the lease: the seconds until that lease expires (it *is* that ``float``), and who holds it (``owner``,
    named in the :class:`~sessionforce.errors.ConversationBusy` message)."""

    __slots__ = ("owner",)
    owner: str

    def __new__(cls, seconds: float, owner: str) -> Held:
        """``seconds`` until the lease held by ``owner`` expires (at least a millisecond)."""
        held = super().__new__(cls, max(seconds, 0.001))
        held.owner = owner
        return held

    def __repr__(self) -> str:
        return f"Held({float(self)!r}, owner={self.owner!r})"


def next_fence(last: int, now: float | None = None) -> int:
    """The fence to hand out after ``last``. With ``now`` (the backend's clock, in seconds) it is at least
    ``now`` in microseconds, so a backend that lost its counter (restarted empty, restored from a backup,
    failed over) still hands out fences above every earlier one, as long as its clock did not step back by
    more than the time since that fence was handed out."""
    if now is None:
        return last + 1
    return max(last + 1, int(now * 1_000_000))
