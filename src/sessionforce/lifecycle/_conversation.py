"""`Conversation`: the application's logical thread with an agent, served by one session at a time.

One turn, in order (see docs/lifecycle.md):

1. take the conversation's turn lock: FIFO in this process, then the store's fenced lease;
2. load the record; report a turn left pending by a crashed sender as delivery-unknown;
3. make sure a live session exists (start one when there is none, or past the idle policy);
4. allocate the next sequenceId and write the pending turn to the store *before* sending;
5. send; on 404 mark the session expired, start a new one (resume policy), resend the same turn once;
6. save the reply, clear the pending turn, append the transcript, release the lock.

The steps live in :mod:`._outcomes` and :mod:`._sessions`, the turn's state in :class:`._turn.Turn`;
here are the public calls, and the two ways a turn goes over the wire (whole reply, or streamed).

Scoped use (``async with``) ends the server session when the block exits, also on errors and
cancellation. Detached use (no ``with``) keeps the session open between calls, for web apps and bots
whose turns arrive on different requests or workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Literal, Self

from sessionforce._logging import log_context
from sessionforce.agent_api import EndReason, MessageType, Reply, StreamEvent, VariableInput
from sessionforce.errors import InvalidArgument, SessionforceError
from sessionforce.lifecycle._events import EventHook, EventKind, Hooks
from sessionforce.lifecycle._locks import LocalLocks
from sessionforce.lifecycle._options import ConversationOptions
from sessionforce.lifecycle._outcomes import _TurnSteps
from sessionforce.lifecycle._replies import ConversationReply, ConversationStream
from sessionforce.lifecycle._turn import Turn
from sessionforce.store import ConversationRecord, PendingTurn, SessionState, Store, TranscriptEntry
from sessionforce.telemetry import Telemetry

if TYPE_CHECKING:
    from sessionforce.agent_api import AsyncAgentClient

__all__ = ["Conversation"]

logger = logging.getLogger("sessionforce.conversation")


_DEFAULT_OPTIONS = ConversationOptions()


class Conversation(_TurnSteps):
    """A conversation with an agent, keyed by an id the application chooses (a user, chat or ticket id).

    Get it from :meth:`Conversations.get <sessionforce.lifecycle.Conversations.get>` (cheap: no I/O until
    the first turn).
    """

    __slots__ = ()  # the fields are _SessionSteps' slots

    def __init__(
        self,
        client: AsyncAgentClient,
        conversation_id: str,
        *,
        store: Store,
        locks: LocalLocks,
        agent_id: str | None = None,
        options: ConversationOptions | None = None,
        hooks: Hooks | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        if not isinstance(conversation_id, str) or not conversation_id.strip():
            raise InvalidArgument(f"conversation_id must be a non-empty string, got {conversation_id!r}.")
        self.client = client
        self.conversation_id = conversation_id
        self.store = store
        self.options = options or _DEFAULT_OPTIONS
        # None until a hook is added: most conversations have none, and an object fewer per conversation
        # is less for the garbage collector to walk in a process holding thousands.
        self._hooks = hooks if hooks else None
        self._agent_id = agent_id
        self._locks = locks
        self._lock_key = f"{id(store)}:{conversation_id}"
        self._telemetry = telemetry or client.telemetry

    def __repr__(self) -> str:
        return f"Conversation({self.conversation_id!r})"

    def on(self, kind: EventKind | str, hook: EventHook) -> None:
        """Call ``hook`` (plain or async) on every event of ``kind`` (``"*"`` for all)."""
        if self._hooks is None:
            self._hooks = Hooks()
        self._hooks.add(kind, hook)

    # ------------------------------------------------------------------ scoped use

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        end_reason: EndReason = "UserRequest" if exc is None else "Error"
        # Shielded: the session must be ended even when the block is being cancelled.
        task = asyncio.ensure_future(self.end(end_reason))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=self.options.lock_wait)
            raise
        except Exception:
            if exc is None:
                raise
            logger.warning("could not end the session after an error", exc_info=True, extra=log_context())

    # ------------------------------------------------------------------ public calls

    async def start(self) -> ConversationReply | None:
        """Make sure a live session exists; return its greeting when one was started now, else ``None``."""
        async with Turn(self) as turn:
            if turn.record.pending is not None:
                turn.interrupted = await self._report_pending(turn)
            await self._ensure_session(turn)
        if turn.greeting is None:
            return None
        return self._conversation_reply(turn, turn.greeting)

    async def send(
        self,
        text: str,
        *,
        variables: tuple[VariableInput, ...] | list[VariableInput] = (),
        message_type: MessageType = "Text",
        in_reply_to: str | None = None,
    ) -> ConversationReply:
        """Send one user turn and return the agent's reply. Turns queue up and run one at a time."""
        async with self._new_turn(text, variables, message_type, in_reply_to, stream=False) as turn:
            await self._prepare(turn)
            while True:
                pending = turn.pending
                assert pending is not None
                try:
                    reply = await self.client.send_message(
                        pending.session_id, text, sequence_id=pending.sequence_id, variables=variables,
                        message_type=message_type, in_reply_to=in_reply_to,
                    )
                except BaseException as exc:
                    if await self._resend_after(turn, exc):
                        continue
                    raise
                return await self._answered(turn, reply)

    def stream(
        self,
        text: str,
        *,
        variables: tuple[VariableInput, ...] | list[VariableInput] = (),
        message_type: MessageType = "Text",
        in_reply_to: str | None = None,
    ) -> ConversationStream:
        """Send one user turn and yield its events as they arrive; the last is an
        :class:`~sessionforce.agent_api.EndOfTurnEvent` whose ``reply`` is a :class:`ConversationReply`."""
        return ConversationStream(
            self._streamed_turn(self._new_turn(text, variables, message_type, in_reply_to, stream=True))
        )

    async def end(self, end_reason: EndReason = "UserRequest") -> bool:
        """End the live server session, if any. Returns whether one was open. An already expired session
        is not an error. The conversation itself lives on: a later turn starts a new session.

        While a request of ours is still running on the session (a turn cancelled in flight), the server
        refuses to end it (423): the wire waits that out within ``RetryPolicy.locked_wait``. A session
        that still could not be ended raises, and stays live in the record with an ``end_failed`` marker,
        so a later ``end()`` or the reaper ends it."""
        async with Turn(self) as turn:
            if turn.record.pending is not None:
                turn.interrupted = await self._report_pending(turn)
            return await self._end_or_mark(turn, end_reason)

    async def end_if_idle(self, idle_for: float, end_reason: EndReason = "Expiration") -> bool:
        """End the live session only if the last activity is at least ``idle_for`` seconds old (the reaper)."""
        async with Turn(self) as turn:
            if turn.record.pending is not None:
                turn.interrupted = await self._report_pending(turn)
            if self.options.clock() - turn.record.last_activity_at < idle_for:
                return False
            return await self._end_or_mark(turn, end_reason)

    async def feedback(
        self, reply: Reply | str, feedback: Literal["GOOD", "BAD"], *, text: str | None = None
    ) -> None:
        """Rate a reply (or a ``feedback_id``) ``GOOD`` or ``BAD``, with an optional comment."""
        feedback_id = reply if isinstance(reply, str) else reply.feedback_id
        session_id = reply.session_id if isinstance(reply, Reply) else None
        if session_id is None:
            record = await self.store.load(self.conversation_id)
            session_id = record.session_id if record else None
        if not feedback_id or not session_id:
            raise InvalidArgument("Feedback needs a reply with a feedback id, on a session of this conversation.")
        await self.client.submit_feedback(session_id, feedback_id, feedback, text)

    async def record(self) -> ConversationRecord | None:
        """The stored record (sessions, sequence counter, status), freshly loaded."""
        return await self.store.load(self.conversation_id)

    async def transcript(self) -> list[TranscriptEntry]:
        """Every transcript entry, oldest first."""
        return await self.store.transcript(self.conversation_id)

    async def export_jsonl(self, destination: str | Path | IO[str]) -> int:
        """Write the transcript as JSON Lines (one entry per line); returns the number of lines."""
        entries = await self.transcript()
        lines = [entry.to_json() + "\n" for entry in entries]
        if isinstance(destination, str | Path):
            await asyncio.to_thread(Path(destination).write_text, "".join(lines), encoding="utf-8")
        else:
            await asyncio.to_thread(destination.writelines, lines)
        return len(lines)

    async def recover(self) -> PendingTurn | None:
        """Report a turn left pending by a crashed sender (as delivery-unknown) without sending anything."""
        async with Turn(self) as turn:
            return await self._report_pending(turn)

    # ------------------------------------------------------------------ the turn

    def _new_turn(
        self,
        text: str,
        variables: tuple[VariableInput, ...] | list[VariableInput],
        message_type: MessageType,
        in_reply_to: str | None,
        *,
        stream: bool,
    ) -> Turn:
        if not isinstance(text, str):
            raise InvalidArgument(f"text must be a string, got {type(text).__name__}.")
        return Turn(self, text, variables, message_type, in_reply_to, stream)

    async def _streamed_turn(self, turn: Turn) -> AsyncGenerator[StreamEvent | ConversationReply, None]:
        """:meth:`send`, with the reply's events yielded as they arrive (the same steps; only the wire call
        differs). The last item is the :class:`ConversationReply`."""
        async with turn:
            await self._prepare(turn)
            while True:
                pending = turn.pending
                assert pending is not None
                try:
                    async with self.client.stream_message(
                        pending.session_id, pending.text, sequence_id=pending.sequence_id, variables=turn.variables,
                        message_type=turn.message_type, in_reply_to=turn.in_reply_to,
                    ) as stream:
                        # receive() hands the Reply itself at the end of turn: the conversation's
                        # EndOfTurnEvent (with its ConversationReply) is built once, by ConversationStream.
                        item = await stream.receive()
                        turn.trace.first_event()
                        while not isinstance(item, Reply):
                            yield item
                            item = await stream.receive()
                    reply = item
                except BaseException as exc:
                    if await self._resend_after(turn, exc):
                        continue
                    raise
                yield await self._answered(turn, reply)
                return

    async def _end_or_mark(self, turn: Turn, end_reason: EndReason) -> bool:
        try:
            return await self._close_session(turn, end_reason, SessionState.ENDED)
        except SessionforceError as exc:
            await self._mark_end_failed(turn, end_reason, exc)
            raise
