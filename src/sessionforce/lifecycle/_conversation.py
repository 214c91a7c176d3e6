"""`Conversation`: the application's logical thread with an agent, served by one session at a time.

One turn, in order (see docs/lifecycle.md):

1. take the conversation's turn lock: FIFO in this process, then the store's fenced lease;
2. load the record; report a turn left pending by a crashed sender as delivery-unknown;
3. make sure a live session exists (start one when there is none, or past the idle policy);
4. allocate the next sequenceId and write the pending turn to the store *before* sending;
5. send; on 404 mark the session expired, start a new one (resume policy), resend the same turn once;
6. save the reply, clear the pending turn, append the transcript, release the lock.

Scoped use (``async with``) ends the server session when the block exits, also on errors and
cancellation. Detached use (no ``with``) keeps the session open between calls, for web apps and bots
whose turns arrive on different requests or workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, Self

from sessionforce._logging import log_context, update_log_context
from sessionforce.agent_api import Awaiting, EndOfTurnEvent, EndReason, MessageType, Reply, StreamEvent, VariableInput
from sessionforce.agent_api._reply import construct_validated
from sessionforce.errors import (
    ConversationError,
    DeliveryUnknown,
    InvalidArgument,
    SessionLocked,
    SessionNotFound,
    StreamInterrupted,
)
from sessionforce.lifecycle._events import EventHook, EventKind, Hooks
from sessionforce.lifecycle._locks import LocalLocks, worker_identity
from sessionforce.lifecycle._options import ConversationOptions
from sessionforce.lifecycle._replies import ConversationReply, ConversationStream
from sessionforce.lifecycle._sessions import _SessionSteps
from sessionforce.lifecycle._turn import _messages, _Turn
from sessionforce.store import ConversationRecord, PendingTurn, SessionState, Store, TranscriptEntry

if TYPE_CHECKING:
    from sessionforce.agent_api import AsyncAgentClient

__all__ = ["Conversation"]

logger = logging.getLogger("sessionforce.conversation")


_DEFAULT_OPTIONS = ConversationOptions()


class Conversation(_SessionSteps):
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
        reason: EndReason = "UserRequest" if exc is None else "Error"
        # Shielded: the session must be ended even when the block is being cancelled.
        task = asyncio.ensure_future(self.end(reason))
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
        async with self._turn() as turn:
            await self._report_pending(turn)
            greeting, reason = await self._ensure_session(turn)
        if greeting is None:
            return None
        return self._reply(greeting, reason, None, None)

    async def send(
        self,
        text: str,
        *,
        variables: tuple[VariableInput, ...] | list[VariableInput] = (),
        message_type: MessageType = "Text",
        in_reply_to: str | None = None,
    ) -> ConversationReply:
        """Send one user turn and return the agent's reply. Turns queue up and run one at a time."""
        reply: ConversationReply | None = None
        async for item in self._run(text, variables, message_type, in_reply_to, streaming=False):
            if isinstance(item, ConversationReply):
                reply = item
        if reply is None:  # pragma: no cover - _run yields a reply or raises
            raise RuntimeError("turn ended without a reply")
        return reply

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
        return ConversationStream(self._run(text, variables, message_type, in_reply_to, streaming=True))

    async def end(self, reason: EndReason = "UserRequest") -> bool:
        """End the live server session, if any. Returns whether one was open. An already expired session
        is not an error. The conversation itself lives on: a later turn starts a new session."""
        async with self._turn() as turn:
            await self._report_pending(turn)
            return await self._close_session(turn, reason, SessionState.ENDED)

    async def end_if_idle(self, idle_for: float, reason: EndReason = "Expiration") -> bool:
        """End the live session only if the last activity is at least ``idle_for`` seconds old (the reaper)."""
        async with self._turn() as turn:
            await self._report_pending(turn)
            if self.options.clock() - turn.record.last_activity_at < idle_for:
                return False
            return await self._close_session(turn, reason, SessionState.ENDED)

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
        async with self._turn() as turn:
            return await self._report_pending(turn)

    # ------------------------------------------------------------------ the turn

    def _turn(self) -> _Turn:
        """The scope of one turn: ``async with self._turn() as turn`` (see :class:`_Turn`)."""
        return _Turn(self)

    async def _run(
        self,
        text: str,
        variables: tuple[VariableInput, ...] | list[VariableInput],
        message_type: MessageType,
        in_reply_to: str | None,
        *,
        streaming: bool,
    ) -> AsyncGenerator[StreamEvent | ConversationReply, None]:
        if not isinstance(text, str):
            raise InvalidArgument(f"text must be a string, got {type(text).__name__}.")
        async with self._turn() as turn:
            interrupted = await self._report_pending(turn)
            try:
                greeting, reason = await self._ensure_session(turn)
            except Exception as exc:
                await self._record_unsent(turn, text, message_type, exc)
                raise
            resumed_once = False
            loop = asyncio.get_running_loop()
            locked_until = loop.time() + self.options.lock_wait
            locked_waits = 0
            pending: PendingTurn | None = None
            while True:
                session_id = turn.record.session_id
                assert session_id is not None
                if pending is None:
                    # The turn's identity is fixed once per session: a 423 wait resends the same sequenceId.
                    seq = turn.record.last_sequence_id + 1
                    started = self.options.clock()
                    pending = PendingTurn(
                        sequence_id=seq, session_id=session_id, text=text, message_type=message_type,
                        in_reply_to=in_reply_to, started_at=started, owner=worker_identity(),
                    )
                    # Written before sending, so a crash mid-turn leaves a trace the next process reports.
                    await turn.save(last_sequence_id=seq, pending=pending)
                    update_log_context(sequenceId=seq)
                    if self._hooks is not None:  # (as in _finish: no coroutine made when nobody listens)
                        await self._emit(EventKind.TURN_SENT, turn, seq)
                try:
                    reply: Reply | None = None
                    if streaming:
                        async with self.client.stream_message(
                            session_id, text, sequence_id=seq, variables=variables, message_type=message_type,
                            in_reply_to=in_reply_to,
                        ) as stream:
                            async for event in stream:
                                if isinstance(event, EndOfTurnEvent):
                                    reply = event.reply
                                else:
                                    yield event
                    else:
                        reply = await self.client.send_message(
                            session_id, text, sequence_id=seq, variables=variables, message_type=message_type,
                            in_reply_to=in_reply_to,
                        )
                    assert reply is not None
                except SessionLocked:
                    # The server still runs an earlier request on this session: typically the turn of a worker
                    # that died mid-turn. Wait it out within lock_wait; the 423'd request was not accepted.
                    delay = min(2.0, 0.1 * 2**locked_waits) * (0.5 + random.random() / 2)
                    if loop.time() + delay > locked_until:
                        await self._fail(turn, pending, "error", "the session stayed locked (423)")
                        raise
                    locked_waits += 1
                    await asyncio.sleep(delay)
                    continue
                except SessionNotFound:
                    if resumed_once:
                        await self._fail(turn, pending, "error", "the new session answered 404 too")
                        raise
                    logger.info("session expired (404); starting a new one and resending", extra=log_context())
                    await self._mark_closed(turn, SessionState.EXPIRED, "Expired", pending=None)
                    await self._emit(EventKind.ENDED, turn, seq, session_id, reason="Expired")
                    greeting = await self._start_session(turn, "expired")
                    reason = "expired"
                    resumed_once = True
                    pending = None
                    continue
                except StreamInterrupted as exc:
                    await self._fail(turn, pending, "delivery_unknown", str(exc), partial_text=exc.partial_text,
                                     delivered=True)
                    raise
                except DeliveryUnknown as exc:
                    await self._fail(turn, pending, "delivery_unknown", str(exc))
                    raise
                except asyncio.CancelledError:
                    await self._fail(turn, pending, "delivery_unknown", "the turn was cancelled while in flight")
                    raise
                except GeneratorExit:
                    # The caller stopped reading a stream: the turn was delivered, its reply is incomplete.
                    await self._fail(turn, pending, "delivery_unknown", "the caller stopped reading the reply",
                                     delivered=True)
                    raise
                except Exception as exc:
                    await self._fail(turn, pending, "error", str(exc))
                    raise
                try:
                    result = await self._finish(turn, pending, reply, started, reason, interrupted, greeting)
                except ConversationError as exc:
                    # The agent answered but the store could not record it: hand the answer over anyway.
                    exc.reply = self._reply(reply, reason, interrupted, greeting)
                    raise
                yield result
                return

    async def _record_unsent(self, turn: _Turn, text: str, message_type: str, exc: Exception) -> None:
        """A turn that failed before it was sent (no session could be had for it) still gets its transcript
        entry, so the transcript accounts for every turn the application sent. The original error is
        what the caller sees, even if this write fails."""
        try:
            await turn.log("error", text=text, message_type=message_type, detail={"error": str(exc), "sent": False})
        except ConversationError as store_error:
            logger.warning("could not record the unsent turn: %s", store_error, extra=log_context())

    async def _fail(self, turn: _Turn, pending: PendingTurn, kind: str, why: str, **detail: Any) -> None:
        # Also runs while the task is being cancelled: the record must not keep a stale pending turn.
        entry = turn.entry(
            kind, session_id=pending.session_id, sequence_id=pending.sequence_id, text=pending.text,
            message_type=pending.message_type, detail={"error": why, **detail},
        )
        await turn.save(pending=None, log=[entry])
        if kind == "delivery_unknown":
            await self._emit(EventKind.DELIVERY_UNKNOWN, turn, pending.sequence_id, error=why)

    async def _finish(
        self,
        turn: _Turn,
        pending: PendingTurn,
        reply: Reply,
        started: float,
        reason: str | None,
        interrupted: PendingTurn | None,
        greeting: Reply | None,
    ) -> ConversationReply:
        now = self.options.clock()
        entry = turn.entry(
            "turn", session_id=pending.session_id, sequence_id=pending.sequence_id, text=pending.text,
            message_type=pending.message_type, reply=_messages(reply), duration_ms=(now - started) * 1000,
            detail={"resumed": reason} if reason else {},
        )
        changes: dict[str, Any] = {"pending": None, "turns": turn.record.turns + 1, "last_activity_at": now}
        if reply.escalated:
            changes["escalated"] = True
        awaiting = reply.awaiting
        # The turn's last write: it gives the lease up too.
        if awaiting is Awaiting.ENDED:
            await self._mark_closed(
                turn, SessionState.ENDED, reply.end_reason, [entry], release=True, agent_ended=True, **changes
            )
        else:
            await turn.save(log=[entry], release=True, **changes)
        if self._hooks is not None:  # (checked here too: the hot path skips making the coroutines)
            await self._emit(EventKind.REPLY, turn, pending.sequence_id, awaiting=awaiting.value)
            if awaiting is Awaiting.ENDED:
                await self._emit(
                    EventKind.ENDED, turn, pending.sequence_id, pending.session_id, reason=reply.end_reason, by="agent"
                )
        return self._reply(reply, reason, interrupted, greeting)

    def _reply(
        self, reply: Reply, reason: str | None, interrupted: PendingTurn | None, greeting: Reply | None
    ) -> ConversationReply:
        # The messages were validated when the reply was read; do not pay for it twice.
        fields = {
            "messages": reply.messages, "session_id": reply.session_id, "sequence_id": reply.sequence_id,
            "resumed": reason is not None, "resume_reason": reason, "interrupted_turn": interrupted,
            "greeting": greeting if greeting is not reply else None,
        }
        return construct_validated(ConversationReply, fields, {"_conversation": self})
