"""The reply a conversation turn hands back, and the stream of a conversation turn."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Literal, Protocol

from pydantic import PrivateAttr

from sessionforce.agent_api import EndOfTurnEvent, EventStream, MessageType, Reply, StreamEvent, VariableInput
from sessionforce.errors import InvalidArgument
from sessionforce.store import PendingTurn

__all__ = ["ConversationReply", "ConversationStream", "TurnReply"]


class _Owner(Protocol):
    """What a reply needs of its conversation (a :class:`~sessionforce.lifecycle.Conversation`); a
    protocol so this module does not import the conversation that imports it."""

    async def send(
        self,
        text: str,
        *,
        variables: tuple[VariableInput, ...] | list[VariableInput] = (),
        message_type: MessageType = "Text",
        in_reply_to: str | None = None,
    ) -> ConversationReply: ...

    def stream(
        self,
        text: str,
        *,
        variables: tuple[VariableInput, ...] | list[VariableInput] = (),
        message_type: MessageType = "Text",
        in_reply_to: str | None = None,
    ) -> ConversationStream: ...

    async def feedback(
        self, reply: Reply | str, feedback: Literal["GOOD", "BAD"], *, text: str | None = None
    ) -> None: ...


class TurnReply(Reply):
    """A conversation turn's reply: a :class:`~sessionforce.agent_api.Reply` plus what the lifecycle did."""

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

    _conversation: _Owner | None = PrivateAttr(default=None)

    def bind(self, conversation: _Owner) -> ConversationReply:
        """Attach the conversation this reply belongs to (done by the conversation)."""
        self._conversation = conversation
        return self

    def _owner(self) -> _Owner:
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
