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
import uuid
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, Self

from sessionforce._logging import enter_log_context, log_context, restore_log_context, update_log_context
from sessionforce.conversation_types import ConversationOptions, ConversationReply, ConversationStream
from sessionforce.errors import (
    APIStatusError,
    ConversationEnded,
    ConversationError,
    DeliveryUnknown,
    InvalidArgument,
    SessionLocked,
    SessionNotFound,
    StaleRecord,
    StreamInterrupted,
    TransportError,
)
from sessionforce.events import ConversationEvent, EventHook, EventKind, Hooks
from sessionforce.locks import LocalLocks, TurnLock, worker_identity
from sessionforce.models import EndReason, MessageType, VariableInput
from sessionforce.reply import Awaiting, Reply, construct_validated
from sessionforce.resume import ResumeContext
from sessionforce.store.base import (
    ConversationRecord,
    ConversationStatus,
    PendingTurn,
    SessionInfo,
    SessionState,
    Store,
    TranscriptEntry,
)
from sessionforce.streaming import EndOfTurnEvent, StreamEvent

if TYPE_CHECKING:
    from sessionforce.client import AsyncAgentClient

__all__ = ["Conversation"]

logger = logging.getLogger("sessionforce.conversation")


class _Turn:
    """One turn's hold on its conversation, used as ``async with conversation._turn() as turn``.

    Entering takes the conversation's turn lock (FIFO in this process, then the store's lease), loads
    (or creates) the record and sets the log context; leaving undoes all of it in reverse order. In
    between, ``record`` is the current record and ``lock`` holds the fence every write carries.

    A class rather than ``@asynccontextmanager``: it runs on every turn, and a generator-based context
    manager costs an async generator (and the event loop's bookkeeping for it) each time.
    """

    __slots__ = ("_log", "conversation", "lock", "record")

    record: ConversationRecord
    lock: TurnLock

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation

    async def __aenter__(self) -> Self:
        conv = self.conversation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + conv.options.lock_wait
        await conv._locks.acquire(conv._lock_key, conv.options.lock_wait)
        lock = self.lock = TurnLock(
            conv.store, conv.conversation_id, ttl=conv.options.lease_ttl, owner=worker_identity(),
            keeper=conv._locks.keeper,
        )
        previous_log = enter_log_context(conversationId=conv.conversation_id)
        try:
            await lock.acquire(wait=max(0.0, deadline - loop.time()))
            record = await conv.store.load(conv.conversation_id)
            self.record = record or conv._new_record()
            if record is None:
                try:
                    await self.save()
                except StaleRecord:
                    self.record = await conv._load_existing()
            update_log_context(externalSessionKey=self.record.external_session_key, sessionId=self.record.session_id)
        except BaseException:
            restore_log_context(previous_log)
            try:
                await lock.release()
            finally:
                conv._locks.release(conv._lock_key)
            raise
        self._log = previous_log
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conv = self.conversation
        restore_log_context(self._log)
        try:
            await self.lock.release()
        finally:
            conv._locks.release(conv._lock_key)

    async def save(
        self, *, log: Sequence[TranscriptEntry] = (), release: bool = False, **changes: Any
    ) -> ConversationRecord:
        """Save the record with ``changes``, appending ``log`` to the transcript in the same atomic step.

        ``release``: this is the turn's last write; give the lease up with it (one store write fewer).
        """
        lock = self.lock
        if release:
            lock.stop_renewing()
        self.record = await self.conversation.store.save(
            self.record.replace(**changes), fence=lock.fence, transcript=log, release=lock.lease if release else None
        )
        if release:
            lock.lease = None  # given up by the save: nothing left for the turn's exit to release
        return self.record

    def entry(self, kind: str, **fields: Any) -> TranscriptEntry:
        """A transcript entry stamped now."""
        return TranscriptEntry(kind=kind, at=self.conversation.options.clock(), **fields)

    async def log(self, kind: str, **fields: Any) -> None:
        """Append one transcript entry on its own (when there is no record change to go with it)."""
        await self.conversation.store.append_transcript(
            self.record.conversation_id, self.entry(kind, **fields), fence=self.lock.fence
        )


def _messages(reply: Reply) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in reply.messages]


_DEFAULT_OPTIONS = ConversationOptions()


class Conversation:
    """A conversation with an agent, keyed by an id the application chooses (a user, chat or ticket id).

    Create it with :meth:`AsyncAgentClient.conversation` (cheap: no I/O until the first turn).
    """

    # Slots: a process may hold thousands of these at once.
    __slots__ = (
        "_agent_id", "_hooks", "_lock_key", "_locks", "client", "conversation_id", "options", "store",
    )

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
        :class:`~sessionforce.streaming.EndOfTurnEvent` whose ``reply`` is a :class:`ConversationReply`."""
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

    def _new_record(self) -> ConversationRecord:
        agent_id = self._agent_id or self.client.settings.agent_id
        if agent_id is None:
            self.client.settings.require("agent_id")
        assert agent_id is not None
        now = self.options.clock()
        return ConversationRecord(
            conversation_id=self.conversation_id,
            agent_id=agent_id,
            external_session_key=str(uuid.uuid4()),
            created_at=now,
            last_activity_at=now,
        )

    async def _load_existing(self) -> ConversationRecord:
        record = await self.store.load(self.conversation_id)
        if record is None:  # pragma: no cover - only after a concurrent delete
            raise StaleRecord(f"Conversation {self.conversation_id!r} vanished while it was being created.")
        return record

    async def _emit(
        self,
        kind: EventKind,
        turn: _Turn,
        sequence_id: int | None = None,
        session_id: str | None = None,
        **detail: Any,
    ) -> None:
        """Fire an event; ``session_id`` names the session when it is no longer the record's live one."""
        if self._hooks is not None:
            record = turn.record
            await self._hooks.emit(
                ConversationEvent(
                    kind, self.conversation_id, session_id or record.session_id, record.external_session_key,
                    sequence_id, detail,
                )
            )

    async def _report_pending(self, turn: _Turn) -> PendingTurn | None:
        pending = turn.record.pending
        if pending is None:
            return None
        logger.warning(
            "turn %d (sent by %s) was interrupted: delivery unknown", pending.sequence_id, pending.owner,
            extra=log_context(),
        )
        entry = turn.entry(
            "delivery_unknown", session_id=pending.session_id, sequence_id=pending.sequence_id, text=pending.text,
            message_type=pending.message_type, detail={"cause": "sender stopped mid-turn", "owner": pending.owner},
        )
        await turn.save(pending=None, log=[entry])
        await self._emit(EventKind.DELIVERY_UNKNOWN, turn, pending.sequence_id, owner=pending.owner)
        return pending

    async def _ensure_session(self, turn: _Turn) -> tuple[Reply | None, str | None]:
        """A live session for the turn: ``(greeting, resume reason)`` when one was started, else Nones."""
        record = turn.record
        idle = self.options.idle_timeout
        if record.status is ConversationStatus.ACTIVE and record.session_id:
            if idle is None or self.options.clock() - record.last_activity_at <= idle:
                return None, None
            try:
                await self._close_session(turn, "Expiration", SessionState.EXPIRED)
            except (APIStatusError, TransportError) as exc:
                # Ending the stale session only frees server resources (it expires there anyway): the
                # user's turn must not fail for it.
                logger.warning("could not end the idle session: %s", exc, extra=log_context())
                await self._mark_closed(turn, SessionState.EXPIRED, "Expiration")
            reason: str | None = "idle"
        elif record.agent_ended:
            if self.options.on_agent_end == "raise":
                raise ConversationEnded(
                    f"The agent ended conversation {self.conversation_id!r}'s session. What to do: start a new "
                    "conversation, or open this one with on_agent_end='restart'."
                )
            reason = "agent_ended"
        elif record.sessions:
            last = record.sessions[-1]
            if last.state is SessionState.EXPIRED:
                reason = "expired"
            elif last.end_reason == "UserRequest":
                reason = None  # the app ended it on purpose: the next session is a fresh start, not a resume
            else:
                reason = "ended"
        else:
            reason = None
        return await self._start_session(turn, reason), reason

    async def _start_session(self, turn: _Turn, reason: str | None) -> Reply:
        record = turn.record
        previous = record.sessions[-1].session_id if record.sessions else None
        policy = self.options.resume
        plan = None
        if reason is not None:
            history = []
            if policy.history_turns:
                history = [e for e in await self.store.transcript(self.conversation_id) if e.kind == "turn"]
            plan = await policy.plan(ResumeContext(self.conversation_id, reason, previous, history))
        key = record.external_session_key if not record.sessions else str(uuid.uuid4())
        variables = [*self.options.variables, *(plan.variables if plan else ())]
        session = await self.client.start_session(
            record.agent_id, external_session_key=key, variables=variables, bypass_user=self.options.bypass_user,
            tz=self.options.tz, streaming=self.options.streaming,
        )
        now = self.options.clock()
        info = SessionInfo(session_id=session.session_id, external_session_key=key, started_at=now)
        started = turn.entry(
            "session_started", session_id=session.session_id, reply=_messages(session.greeting),
            detail={"resume_reason": reason, "previous_session_id": previous, "external_session_key": key},
        )
        await turn.save(
            status=ConversationStatus.ACTIVE, session_id=session.session_id, sessions=[*record.sessions, info],
            external_session_key=key, last_activity_at=now, agent_ended=False, escalated=False, log=[started],
        )
        update_log_context(externalSessionKey=key, sessionId=session.session_id)
        logger.info("session started%s", f" (resuming: {reason})" if reason else "", extra=log_context())
        await self._emit(EventKind.SESSION_STARTED, turn, resume_reason=reason, greeting=session.greeting)
        if reason is not None:
            await self._emit(EventKind.RESUMED, turn, reason=reason, previous_session_id=previous)
        if plan is not None and plan.preamble:
            await self._send_preamble(turn, plan.preamble)
        return session.greeting

    async def _send_preamble(self, turn: _Turn, text: str) -> None:
        record = turn.record
        assert record.session_id is not None
        seq = record.last_sequence_id + 1
        await turn.save(last_sequence_id=seq)
        started = self.options.clock()
        reply = await self.client.send_message(record.session_id, text, sequence_id=seq)
        await turn.log(
            "preamble", session_id=record.session_id, sequence_id=seq, text=text, reply=_messages(reply),
            duration_ms=(self.options.clock() - started) * 1000,
        )

    async def _close_session(self, turn: _Turn, reason: EndReason, state: SessionState) -> bool:
        record = turn.record
        session_id = record.session_id
        if record.status is not ConversationStatus.ACTIVE or session_id is None:
            return False
        ended = await self.client.end_session(session_id, reason)
        final_state = state if ended is not None else SessionState.EXPIRED
        await self._mark_closed(turn, final_state, reason if ended is not None else "AlreadyGone")
        await self._emit(EventKind.ENDED, turn, None, session_id, reason=reason)
        return True

    async def _mark_closed(
        self,
        turn: _Turn,
        state: SessionState,
        reason: str | None,
        log: Sequence[TranscriptEntry] = (),
        release: bool = False,
        **changes: Any,
    ) -> None:
        record = turn.record
        now = self.options.clock()
        sessions = [
            s.replace(state=state, ended_at=now, end_reason=reason) if s.session_id == record.session_id else s
            for s in record.sessions
        ]
        detail = {"state": state.value, "reason": reason}
        ended = turn.entry("session_ended", session_id=record.session_id, detail=detail)
        await turn.save(
            status=ConversationStatus.IDLE, session_id=None, sessions=sessions, log=[*log, ended], release=release,
            **changes,
        )

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
