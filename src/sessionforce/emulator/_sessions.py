"""Server-side sessions: a live :class:`Session`, and the :class:`ClosedSession` summary kept once it ends.

An ended or expired session answers 404 forever, and that needs no memory (an unknown id answers the
same). What the admin surface still shows of it (state, end reason, counts, feedback) is a small
slotted summary, kept for a bounded number of sessions and time; transcripts, memory and variables go
with the live object. Measured with tracemalloc over real HTTP (demo agent, two turns, then ended): an
ended session used to keep about 5.3 KB for ever; its summary keeps about 0.47 KB, and only until
``max_closed_sessions`` / ``closed_session_ttl`` push it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sessionforce.emulator._agents import EmulatedAgent


@dataclass(eq=False)
class Session:
    """One active server-side session."""

    session_id: str
    external_key: str
    agent: EmulatedAgent
    created: float
    last_activity: float
    chunk_text: bool
    variables: dict[str, Any]
    state: str = "active"  # active | ended | expired
    end_reason: str | None = None
    last_sequence_id: int = 0
    turns: int = 0
    in_flight: bool = False
    memory: dict[str, Any] = field(default_factory=dict)
    feedback_ids: set[str] = field(default_factory=set)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The session as ``GET /__emulator/sessions`` lists it."""
        return {
            "sessionId": self.session_id,
            "externalSessionKey": self.external_key,
            "agentId": self.agent.id,
            "state": self.state,
            "lastSequenceId": self.last_sequence_id,
            "turns": self.turns,
            "endReason": self.end_reason,
            "inFlight": self.in_flight,
            "feedback": self.feedback,
        }

    def closed(self, state: str, reason: str | None, at: float) -> ClosedSession:
        """The summary that replaces this session once it is ``state`` (ended or expired)."""
        return ClosedSession(self.session_id, self.external_key, self.agent.id, state, reason,
                             self.last_sequence_id, self.turns, tuple(self.feedback) or None, at)


@dataclass(slots=True, eq=False)
class ClosedSession:
    """What is kept of an ended or expired session: its summary (see the module docstring)."""

    session_id: str
    external_key: str
    agent_id: str
    state: str
    end_reason: str | None
    last_sequence_id: int
    turns: int
    feedback: tuple[dict[str, Any], ...] | None
    closed_at: float

    def summary(self) -> dict[str, Any]:
        """The session as ``GET /__emulator/sessions`` lists it (same shape as an active one)."""
        return {
            "sessionId": self.session_id,
            "externalSessionKey": self.external_key,
            "agentId": self.agent_id,
            "state": self.state,
            "lastSequenceId": self.last_sequence_id,
            "turns": self.turns,
            "endReason": self.end_reason,
            "inFlight": False,
            "feedback": list(self.feedback or ()),
        }
