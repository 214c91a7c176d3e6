"""Resume policies: what a new session is told when it replaces one that expired, idled out or ended.

``none`` starts clean and resends the user's turn. ``replay`` carries the last few turns into the new
session, either as a preamble turn sent before the user's turn or as a session variable the agent reads.
Write your own by implementing :class:`ResumePolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from sessionforce.agent_api import Variable
from sessionforce.errors import ConfigError
from sessionforce.store import TranscriptEntry

__all__ = ["NoResume", "ReplayResume", "ResumeContext", "ResumePlan", "ResumePolicy", "resume_policy"]


@dataclass(frozen=True, slots=True)
class ResumeContext:
    """Why a new session is starting, and the conversation's recent turns (oldest first)."""

    conversation_id: str
    reason: str
    """``expired`` (the server answered 404), ``idle`` (past the idle policy), ``agent_ended`` or ``ended``."""
    previous_session_id: str | None
    history: list[TranscriptEntry]


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What to give the new session: start variables, and/or a preamble turn sent before the user's turn."""

    variables: list[Variable] = field(default_factory=list)
    preamble: str | None = None


@runtime_checkable
class ResumePolicy(Protocol):
    """Decides what a replacement session is told. ``history_turns`` says how many past turns it reads."""

    history_turns: int

    async def plan(self, context: ResumeContext) -> ResumePlan:
        """The plan for the new session."""
        ...


class NoResume:
    """Start the new session clean; the user's turn is resent there as it is."""

    history_turns = 0

    def __repr__(self) -> str:
        return "NoResume()"

    async def plan(self, context: ResumeContext) -> ResumePlan:
        """Nothing to carry over."""
        return ResumePlan()


class ReplayResume:
    """Carry the last ``turns`` turns (user text and the agent's reply) into the new session.

    ``mode="preamble"`` sends them as one ``Text`` turn before the user's turn (works with any agent);
    ``mode="variable"`` passes them as a ``Text`` session variable named ``variable_name`` that the agent
    must be set up to read. ``max_chars`` bounds the carried text (the oldest lines go first).
    """

    def __init__(
        self,
        turns: int = 5,
        *,
        mode: Literal["preamble", "variable"] = "preamble",
        variable_name: str = "$Context.sessionforce_history",
        max_chars: int = 4000,
    ) -> None:
        if turns < 1:
            raise ConfigError(f"ReplayResume(turns={turns}): turns must be at least 1.")
        if mode not in ("preamble", "variable"):
            raise ConfigError(f"ReplayResume(mode={mode!r}): mode must be 'preamble' or 'variable'.")
        self.history_turns = turns
        self.mode = mode
        self.variable_name = variable_name
        self.max_chars = max_chars

    def __repr__(self) -> str:
        return f"ReplayResume(turns={self.history_turns}, mode={self.mode!r})"

    def summary(self, history: list[TranscriptEntry]) -> str:
        """The carried context as plain lines, newest kept when it must be cut."""
        lines: list[str] = []
        for entry in history[-self.history_turns :]:
            if entry.text:
                lines.append(f"User: {entry.text}")
            said = " ".join(str(m.get("message")) for m in entry.reply or () if m.get("message"))
            if said:
                lines.append(f"Agent: {said}")
        while lines and sum(len(line) + 1 for line in lines) > self.max_chars:
            lines.pop(0)
        return "\n".join(lines)

    async def plan(self, context: ResumeContext) -> ResumePlan:
        """A preamble or a variable holding the recent turns (nothing when there is no history)."""
        summary = self.summary(context.history)
        if not summary:
            return ResumePlan()
        if self.mode == "variable":
            return ResumePlan(variables=[Variable(name=self.variable_name, type="Text", value=summary)])
        return ResumePlan(preamble=f"Context from earlier in this conversation:\n{summary}")


NO_RESUME = NoResume()
"""The shared ``none`` policy (it holds no state)."""


def resume_policy(value: str | ResumePolicy | None) -> ResumePolicy:
    """``"none"``, ``"replay"``, ``None`` or a policy object, as a policy."""
    if value is None or value == "none":
        return NO_RESUME
    if value == "replay":
        return ReplayResume()
    if isinstance(value, ResumePolicy):
        return value
    raise ConfigError(f"resume={value!r}: use 'none', 'replay' or a ResumePolicy object.")
