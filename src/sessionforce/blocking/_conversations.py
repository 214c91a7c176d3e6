"""The blocking conversation lifecycle: :class:`BlockingConversations` hands out
:class:`BlockingConversation` objects, each driving its async twin on the client's loop thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Literal, Self

from pydantic import PrivateAttr

from sessionforce.agent_api import MessageType, VariableInput
from sessionforce.agent_api._reply import construct_validated
from sessionforce.blocking._client import AgentClient
from sessionforce.blocking._loop import EventLoopThread, blocking, blocking_stream
from sessionforce.errors import ClientClosed, InvalidArgument
from sessionforce.lifecycle import Conversation, Conversations, EventHook, EventKind, ResumePolicy, TurnReply
from sessionforce.store import Store
from sessionforce.telemetry import Telemetry

__all__ = ["BlockingConversation", "BlockingConversations", "BlockingReply"]


class BlockingReply(TurnReply):
    """A conversation turn's reply for blocking callers: :meth:`answer` and :meth:`feedback` block."""

    _conversation: BlockingConversation | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, reply: TurnReply, conversation: BlockingConversation) -> BlockingReply:
        """The blocking view of an async conversation reply (no re-validation)."""
        fields = {name: getattr(reply, name) for name in TurnReply.model_fields}
        return construct_validated(cls, fields, {"_conversation": conversation})

    def _owner(self) -> BlockingConversation:
        if self._conversation is None:
            raise InvalidArgument("This reply is not attached to a conversation.")
        return self._conversation

    def answer(self, text: str) -> BlockingReply:
        """Answer the agent's ``Confirm`` or ``Inquire`` with a ``Reply`` turn."""
        return self._owner().send(text, message_type="Reply", in_reply_to=self.question_id())

    def feedback(self, feedback: Literal["GOOD", "BAD"], text: str | None = None) -> None:
        """Rate this reply."""
        self._owner().feedback(self, feedback, text=text)


class BlockingConversation:
    """The blocking twin of :class:`~sessionforce.lifecycle.Conversation` (same methods, blocking)."""

    def __init__(self, runner: EventLoopThread, conversation: Conversation) -> None:
        self._runner = runner
        self._async = conversation

    def __repr__(self) -> str:
        return f"BlockingConversation({self._async.conversation_id!r})"

    @property
    def conversation_id(self) -> str:
        """The application's id for this conversation."""
        return self._async.conversation_id

    @property
    def async_conversation(self) -> Conversation:
        """The async conversation this facade drives."""
        return self._async

    def send(
        self,
        text: str,
        *,
        variables: tuple[VariableInput, ...] | list[VariableInput] = (),
        message_type: MessageType = "Text",
        in_reply_to: str | None = None,
    ) -> BlockingReply:
        """Send one user turn and return the reply (see :meth:`Conversation.send`)."""
        reply = self._runner.run(
            self._async.send(text, variables=variables, message_type=message_type, in_reply_to=in_reply_to)
        )
        return BlockingReply.of(reply, self)

    def start(self) -> BlockingReply | None:
        """Make sure a live session exists; its greeting when one was started now."""
        greeting = self._runner.run(self._async.start())
        return BlockingReply.of(greeting, self) if greeting is not None else None

    stream = blocking_stream(Conversation.stream)
    end = blocking(Conversation.end)
    end_if_idle = blocking(Conversation.end_if_idle)
    feedback = blocking(Conversation.feedback)
    record = blocking(Conversation.record)
    transcript = blocking(Conversation.transcript)
    export_jsonl = blocking(Conversation.export_jsonl)
    recover = blocking(Conversation.recover)

    def on(self, kind: EventKind | str, hook: EventHook) -> None:
        """Call ``hook`` on every event of ``kind``; hooks run on the client's event-loop thread."""
        self._async.on(kind, hook)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._runner.run(self._async.__aexit__(exc_type, exc, tb))


class BlockingConversations:
    """The blocking twin of :class:`~sessionforce.lifecycle.Conversations` (same arguments), over an
    :class:`AgentClient` (``None``: one built from the settings, closed by :meth:`close`).

    The common path is one line: ``reply = conversations.get("ticket-42").send("hi")``.
    """

    def __init__(
        self,
        client: AgentClient | None = None,
        *,
        store: Store | str | None = None,
        resume: str | ResumePolicy | None = None,
        hooks: Iterable[tuple[EventKind | str, EventHook]] = (),
        telemetry: Telemetry | None = None,
        **options: Any,
    ) -> None:
        self._owns_client = client is None
        self._client = client if client is not None else AgentClient(telemetry=telemetry)
        self._runner = self._client.runner
        self._async = Conversations(
            self._client.async_client, store=store, resume=resume, hooks=hooks, telemetry=telemetry, **options
        )

    def __repr__(self) -> str:
        return f"BlockingConversations(client={self._client!r})"

    @property
    def client(self) -> AgentClient:
        """The blocking client conversations send with."""
        return self._client

    @property
    def store(self) -> Store:
        """The session store (see :attr:`Conversations.store <sessionforce.lifecycle.Conversations.store>`)."""
        return self._async.store

    @property
    def async_conversations(self) -> Conversations:
        """The async manager this facade drives."""
        return self._async

    def get(self, conversation_id: str, **kwargs: Any) -> BlockingConversation:
        """The blocking twin of :meth:`Conversations.get <sessionforce.lifecycle.Conversations.get>` (same
        arguments; cheap, no I/O)."""
        return BlockingConversation(self._runner, self._async.get(conversation_id, **kwargs))

    def close(self) -> None:
        """Close what this manager opened: the store (unless passed in as an object) and the client (unless
        passed in)."""
        with contextlib.suppress(ClientClosed):  # the client was closed first: nothing left to close here
            self._runner.run(self._async.aclose())
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
