"""The blocking API: a thin facade that runs the async core on a private event-loop thread.

There is one logic, the async one. Each blocking method is generated from its async twin
(:func:`blocking`), so signatures, validation and behaviour cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, Self, TypeVar

from pydantic import PrivateAttr

from sessionforce.client import AsyncAgentClient
from sessionforce.conversation import Conversation
from sessionforce.conversation_types import TurnReply
from sessionforce.errors import ClientClosed, InvalidArgument
from sessionforce.events import EventHook, EventKind
from sessionforce.models import MessageType, VariableInput
from sessionforce.reply import Reply, construct_validated
from sessionforce.streaming import EventStream, StreamEvent

__all__ = [
    "AgentClient",
    "BlockingConversation",
    "BlockingReply",
    "EventLoopThread",
    "SyncMessageStream",
    "blocking",
    "blocking_stream",
]

P = ParamSpec("P")
T = TypeVar("T")
A = TypeVar("A")


class EventLoopThread:
    """An asyncio event loop running in a daemon thread, for blocking callers."""

    def __init__(self, name: str = "sessionforce-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it. Ctrl-C cancels it (its cleanup runs) and re-raises."""
        if self._closed:
            coro.close()
            raise ClientClosed("This blocking client is closed. What to do: create a new one.")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("A blocking sessionforce call was made from its own event loop (e.g. in a hook): "
                               "use the async API there.")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()
                # Give the coroutine's cleanup (ending a session, releasing a lock) a moment to run.
                with contextlib.suppress(BaseException):  # cancelled or failed: either way it has stopped
                    future.exception(timeout=5)
            raise

    def close(self) -> None:
        """Stop the loop and its thread."""
        if self._closed:
            return
        self._closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


def blocking(
    method: Callable[Concatenate[A, P], Coroutine[Any, Any, T]], target: str = "_async"
) -> Callable[Concatenate[Any, P], T]:
    """Make a blocking method from an async one: it runs ``getattr(self, target).method(...)`` on the loop."""

    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        runner: EventLoopThread = self._runner
        return runner.run(method(getattr(self, target), *args, **kwargs))

    functools.update_wrapper(call, method)
    return call


async def _anext(iterator: AsyncIterator[T]) -> T:
    return await iterator.__anext__()


def blocking_stream(
    method: Callable[Concatenate[A, P], EventStream[Any]], target: str = "_async"
) -> Callable[Concatenate[Any, P], SyncMessageStream]:
    """Make a blocking streaming method from an async one: it returns a :class:`SyncMessageStream`."""

    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> SyncMessageStream:
        return SyncMessageStream(self._runner, method(getattr(self, target), *args, **kwargs))

    functools.update_wrapper(call, method)
    return call


class SyncMessageStream:
    """The events of one streamed turn, for blocking callers: iterate it; ``reply`` is set at the end."""

    def __init__(self, runner: EventLoopThread, stream: EventStream[Any]) -> None:
        self._runner = runner
        self._stream = stream

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        try:
            return self._runner.run(_anext(self._stream))
        except StopAsyncIteration:
            raise StopIteration from None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and release the connection."""
        self._runner.run(self._stream.aclose())

    @property
    def reply(self) -> Reply | None:
        """The complete reply, once the end of turn arrived."""
        return self._stream.reply

    def final_reply(self) -> Reply:
        """Read the rest of the stream and return the complete reply."""
        for _ in self:
            pass
        reply = self.reply
        if reply is None:  # pragma: no cover - the async stream sets it or raises
            raise RuntimeError("the stream ended without a reply")
        return reply


class AgentClient:
    """The blocking twin of :class:`~sessionforce.client.AsyncAgentClient`: same arguments, same methods.

    Use it with ``with`` or call :meth:`close`. Calls are run on a private event-loop thread.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._async = AsyncAgentClient(**kwargs)
        self._runner = EventLoopThread()

    def __repr__(self) -> str:
        return f"AgentClient(my_domain={self._async.my_domain!r}, agent_id={self._async.settings.agent_id!r})"

    @property
    def async_client(self) -> AsyncAgentClient:
        """The async client this facade drives."""
        return self._async

    @property
    def runner(self) -> EventLoopThread:
        """The private event-loop thread."""
        return self._runner

    fetch_token = blocking(AsyncAgentClient.fetch_token)
    start_session = blocking(AsyncAgentClient.start_session)
    send_message = blocking(AsyncAgentClient.send_message)
    end_session = blocking(AsyncAgentClient.end_session)
    submit_feedback = blocking(AsyncAgentClient.submit_feedback)

    stream_message = blocking_stream(AsyncAgentClient.stream_message)

    def conversation(self, conversation_id: str, **kwargs: Any) -> BlockingConversation:
        """The blocking twin of :meth:`AsyncAgentClient.conversation` (same arguments)."""
        return BlockingConversation(self._runner, self._async.conversation(conversation_id, **kwargs))

    @property
    def store(self) -> Any:
        """The session store conversations use (see :attr:`AsyncAgentClient.store`)."""
        return self._async.store

    def close(self) -> None:
        """Close the connections and stop the loop thread."""
        try:
            self._runner.run(self._async.aclose())
        except ClientClosed:
            return
        self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


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
    """The blocking twin of :class:`~sessionforce.conversation.Conversation` (same methods, blocking)."""

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
