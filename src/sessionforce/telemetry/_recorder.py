"""What the lifecycle records a turn through, without OpenTelemetry: the no-op recorder every turn gets
when nothing records (and the base of the real one, :class:`._turn.TurnTrace`)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

__all__ = ["NOOP_TURN", "TurnRecorder", "TurnView"]

T = TypeVar("T")


class TurnView(Protocol):
    """What a trace reads of the lifecycle's turn when it ends (``record`` is missing when the turn failed
    before it was loaded)."""

    text: str | None
    pending: Any
    reply: Any
    resume_reason: str | None


class TurnRecorder:
    """What a turn records when nothing records: every call hands its awaitable back untouched."""

    __slots__ = ()

    def lease(self, acquiring: Awaitable[T]) -> Awaitable[T]:
        """``acquiring`` takes the conversation's lease (after the local queue, counted from the turn's start)."""
        return acquiring

    def store(self, operation: str, call: Awaitable[T]) -> Awaitable[T]:
        """``call`` is the store's ``operation`` (load, save, append, release, transcript)."""
        return call

    def session_start(self, starting: Awaitable[T], resume_reason: str | None) -> Awaitable[T]:
        """``starting`` starts a session (``resume_reason``: why the last one is replaced; ``None``: new)."""
        return starting

    def session_ended(self, end_reason: str | None) -> None:
        """The conversation's live session was closed, for ``end_reason``."""

    def first_event(self) -> None:
        """A streamed reply's first event arrived."""

    def end(self, exc: BaseException | None, turn: TurnView) -> None:
        """The turn is over: ``exc`` is what it raised (``None``: it returned)."""


NOOP_TURN = TurnRecorder()
