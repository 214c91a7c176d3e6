"""What a conversation is configured with, and the reply it hands back."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import PrivateAttr

from sessionforce.errors import ConfigError, InvalidArgument
from sessionforce.models import VariableInput
from sessionforce.reply import Reply
from sessionforce.resume import NO_RESUME, ResumePolicy
from sessionforce.store.base import PendingTurn
from sessionforce.streaming import EndOfTurnEvent, EventStream, StreamEvent

if TYPE_CHECKING:
    from sessionforce.conversation import Conversation

__all__ = ["ConversationOptions", "ConversationReply", "ConversationStream", "TurnReply"]


@dataclass(frozen=True, slots=True)
class ConversationOptions:
    """How a conversation behaves. Every field has a safe default."""

    lock_wait: float = 30.0
    """Seconds a turn waits for the one before it (in this process and in others) before ConversationBusy."""
    lease_ttl: float = 30.0
    """Seconds a store lease lives without renewal; renewed every third of it while a turn runs."""
    idle_timeout: float | None = None
    """Start a fresh session before sending when the last activity is older than this (seconds), rather
    than waiting for the server's 404. ``None``: rely on the 404."""
    resume: ResumePolicy = NO_RESUME
    on_agent_end: Literal["raise", "restart"] = "raise"
    """After the agent ended the session: ``raise`` ConversationEnded on the next send, or ``restart``."""
    variables: Sequence[VariableInput] = ()
    """Variables every session of this conversation starts with."""
    streaming: bool = True
    """Ask for streaming support when starting sessions."""
    tz: str | None = None
    bypass_user: bool = True
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        for name in ("lock_wait", "lease_ttl"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a number of seconds greater than 0.")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ConfigError("idle_timeout must be a number of seconds greater than 0, or None.")
        if self.on_agent_end not in ("raise", "restart"):
            raise ConfigError(f"on_agent_end={self.on_agent_end!r}: use 'raise' or 'restart'.")


class TurnReply(Reply):
    """A conversation turn's reply: a :class:`~sessionforce.reply.Reply` plus what the lifecycle did."""

    resumed: bool = False
    """This turn ran on a new session that replaced an expired, idle or ended one."""
    resume_reason: str | None = None
    interrupted_turn: PendingTurn | None = None
    """A turn whose sender died mid-turn, found (and reported as delivery-unknown) before this one."""
    greeting: Reply | None = None
    """The greeting of the session this turn had to start (first turn, resume, restart), if any."""

    def question_id(self) -> str:
        """The id of the ``Confirm``/``Inquire`` message to answer; :class:`InvalidArgument` if none."""
        question = self.question
        if question is None or not question.id:
            raise InvalidArgument(
                "This reply asks nothing to answer (no Confirm or Inquire message with an id). "
                "What to do: send a normal turn with conversation.send()."
            )
        return question.id


class ConversationReply(TurnReply):
    """A reply that knows its conversation: answer it, rate it, see whether the turn resumed."""

    _conversation: Conversation | None = PrivateAttr(default=None)

    def bind(self, conversation: Conversation) -> ConversationReply:
        """Attach the conversation this reply belongs to (done by the conversation)."""
        self._conversation = conversation
        return self

    def _owner(self) -> Conversation:
        if self._conversation is None:
            raise InvalidArgument("This reply is not attached to a conversation.")
        return self._conversation

    async def answer(self, text: str) -> ConversationReply:
        """Answer the agent's ``Confirm`` or ``Inquire`` with a ``Reply`` turn (``inReplyToMessageId``)."""
        return await self._owner().send(text, message_type="Reply", in_reply_to=self.question_id())

    def stream_answer(self, text: str) -> ConversationStream:
        """Like :meth:`answer`, streaming the agent's next reply as it arrives."""
        return self._owner().stream(text, message_type="Reply", in_reply_to=self.question_id())

    async def feedback(self, feedback: Literal["GOOD", "BAD"], text: str | None = None) -> None:
        """Rate this reply (``GOOD`` or ``BAD``, with an optional comment)."""
        await self._owner().feedback(self, feedback, text=text)


class ConversationStream(EventStream[ConversationReply]):
    """The events of one streamed conversation turn; the last is an ``EndOfTurnEvent`` whose ``reply``
    is a :class:`ConversationReply`. Use ``async with`` (or read to the end) so the turn lock is released."""

    def __init__(self, events: AsyncGenerator[StreamEvent | ConversationReply, None]) -> None:
        self._events = events

    async def __anext__(self) -> StreamEvent:
        if self.reply is not None:
            raise StopAsyncIteration
        item = await self._events.__anext__()
        if isinstance(item, ConversationReply):
            self.reply = item
            # Finish the turn now (release its lock here, in this task), not when the generator is collected.
            await self._events.aclose()
            return EndOfTurnEvent(item)
        return item

    async def aclose(self) -> None:
        """Stop reading; the turn's cleanup runs and its lock is released."""
        await self._events.aclose()
