"""`Reply`: the friendly view of what the agent said in one turn."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from sessionforce.agent_api._models import (
    AgentMessage,
    AnyAgentMessage,
    CitedReference,
    ConfirmMessage,
    EscalateMessage,
    EscalationTarget,
    FailureMessage,
    InformMessage,
    InquireMessage,
    SessionEndedMessage,
)

__all__ = ["Awaiting", "Reply"]

R = TypeVar("R", bound=BaseModel)
_set_attribute = object.__setattr__


def construct_validated(cls: type[R], fields: dict[str, Any], private: dict[str, Any] | None = None) -> R:
    """``cls.model_construct(**fields)`` for values validated already (a reply's messages, validated as
    they were read): ``fields`` must name every field of ``cls``; ``private`` holds its private attributes.

    Every turn builds its reply this way; pydantic's generic ``model_construct`` walks the model's fields
    and defaults each time and costs four times as much. This sets the same attributes it sets (the
    ones pydantic documents on ``BaseModel``); a test holds the two to the same result.
    """
    model = cls.__new__(cls)
    _set_attribute(model, "__dict__", fields)
    _set_attribute(model, "__pydantic_fields_set__", set(fields))
    _set_attribute(model, "__pydantic_extra__", None)
    _set_attribute(model, "__pydantic_private__", private)
    return model


class Awaiting(enum.StrEnum):
    """What the agent waits for after a turn."""

    MESSAGE = "message"
    """Nothing in particular: the user may say anything next."""
    INPUT = "input"
    """The agent asked for a value (``Inquire``); answer it with :meth:`Reply.answer`."""
    CONFIRMATION = "confirmation"
    """The agent asks to confirm before it acts (``Confirm``); answer it with :meth:`Reply.answer`."""
    ESCALATED = "escalated"
    """Nothing: the agent handed the conversation to a human."""
    ENDED = "ended"
    """Nothing: the session has ended."""


class Reply(BaseModel):
    """Everything the agent said in one turn (or the greeting), with the parts an app needs most.

    ``messages`` keeps every message as sent, unknown types included; the properties are views on it.
    """

    model_config = ConfigDict(frozen=True)

    messages: list[AnyAgentMessage] = Field(default_factory=list)
    session_id: str | None = None
    sequence_id: int | None = None
    """The user turn this replies to; ``None`` for the greeting."""

    @property
    def text(self) -> str:
        """The reply's text: every message's text, in order, one per line."""
        return "\n".join(m.message for m in self.messages if m.message)

    @property
    def actions(self) -> list[Any]:
        """The action results (``result`` payloads) of every ``Inform`` message, in order."""
        return [item for m in self.messages if isinstance(m, InformMessage) for item in m.result]

    @property
    def citations(self) -> list[CitedReference]:
        """The knowledge citations of every ``Inform`` message, in order."""
        return [c for m in self.messages if isinstance(m, InformMessage) for c in m.cited_references]

    @property
    def failures(self) -> list[FailureMessage]:
        """The ``Failure`` messages: actions that failed."""
        return [m for m in self.messages if isinstance(m, FailureMessage)]

    @property
    def escalation_targets(self) -> list[EscalationTarget]:
        """Where the agent escalated to, when it did."""
        return [t for m in self.messages if isinstance(m, EscalateMessage) for t in m.targets]

    @property
    def feedback_id(self) -> str | None:
        """The id to send feedback on this reply with: the last non-empty ``feedbackId``."""
        ids = [m.feedback_id for m in self.messages if m.feedback_id]
        return ids[-1] if ids else None

    @property
    def awaiting(self) -> Awaiting:
        """What the agent waits for next (ending and escalation win over questions)."""
        types = set(map(type, self.messages))
        if SessionEndedMessage in types:
            return Awaiting.ENDED
        if EscalateMessage in types:
            return Awaiting.ESCALATED
        if ConfirmMessage in types:
            return Awaiting.CONFIRMATION
        if InquireMessage in types:
            return Awaiting.INPUT
        return Awaiting.MESSAGE

    @property
    def ended(self) -> bool:
        """The session ended in this turn (``SessionEnded``)."""
        return self.awaiting is Awaiting.ENDED

    @property
    def escalated(self) -> bool:
        """The agent handed the conversation to a human in this turn."""
        for message in self.messages:  # noqa: SIM110 (any() of a generator costs a frame, every turn)
            if isinstance(message, EscalateMessage):
                return True
        return False

    @property
    def end_reason(self) -> str | None:
        """The ``reason`` of the ``SessionEnded`` message, when the session ended."""
        ended = [m for m in self.messages if isinstance(m, SessionEndedMessage)]
        return ended[-1].reason if ended else None

    @property
    def question(self) -> AgentMessage | None:
        """The ``Confirm`` or ``Inquire`` message a ``Reply`` turn should answer, if any."""
        for m in reversed(self.messages):
            if isinstance(m, ConfirmMessage | InquireMessage):
                return m
        return None
