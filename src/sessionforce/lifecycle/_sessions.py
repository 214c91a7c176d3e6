"""A conversation's server sessions: make sure one is live (start, resume, restart), close them, and fire
the lifecycle events. The base of :class:`~sessionforce.lifecycle.Conversation`, which runs the turns."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sessionforce._logging import log_context, update_log_context
from sessionforce.agent_api import EndReason, Reply
from sessionforce.errors import (
    APIStatusError,
    ConversationEnded,
    ConversationError,
    DeliveryUnknown,
    SessionforceError,
    StaleRecord,
    TransportError,
)
from sessionforce.lifecycle._events import ConversationEvent, EventKind, Hooks
from sessionforce.lifecycle._locks import LocalLocks
from sessionforce.lifecycle._options import ConversationOptions
from sessionforce.lifecycle._resume import ResumeContext
from sessionforce.lifecycle._turn import Turn, reply_messages
from sessionforce.store import (
    ConversationRecord,
    ConversationStatus,
    PendingTurn,
    SessionInfo,
    SessionState,
    Store,
    TranscriptEntry,
)

if TYPE_CHECKING:
    from sessionforce.agent_api import AsyncAgentClient
    from sessionforce.telemetry import Telemetry

__all__ = ["END_FAILED", "_SessionSteps"]

logger = logging.getLogger("sessionforce.conversation")

END_FAILED = "end_failed"
"""The record's ``metadata`` key (and the transcript entry kind) of a session that could not be ended:
the record keeps it live, so the reaper and the next ``end()`` try again."""


class _SessionSteps:
    """The session half of a conversation: its fields, and every step that starts or closes a session."""

    # Slots: a process may hold thousands of conversations at once.
    __slots__ = (
        "_agent_id", "_hooks", "_lock_key", "_locks", "_telemetry", "client", "conversation_id", "options", "store",
    )

    client: AsyncAgentClient
    conversation_id: str
    store: Store
    options: ConversationOptions
    _hooks: Hooks | None
    _agent_id: str | None
    _locks: LocalLocks
    _lock_key: str
    _telemetry: Telemetry

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
            org=self.client.my_domain,
        )

    async def _load_existing(self) -> ConversationRecord:
        record = await self.store.load(self.conversation_id)
        if record is None:  # pragma: no cover - only after a concurrent delete
            raise StaleRecord(f"Conversation {self.conversation_id!r} vanished while it was being created.")
        return record

    async def _emit(
        self,
        kind: EventKind,
        turn: Turn,
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

    async def _report_pending(self, turn: Turn) -> PendingTurn | None:
        """Record a turn left pending; return it when its fate is unknown (``None``: none, or known).

        Pending means its sender stopped before recording the outcome. When that sender was this process
        and only the store failed, the outcome it remembered is recorded now (an answered turn, or the
        delivery-unknown it really was); otherwise the sender died mid-turn: delivery unknown."""
        pending = turn.record.pending
        if pending is None:
            return None
        known = self._locks.unrecorded.pop(self._lock_key, None) if self._locks.unrecorded else None
        if known is not None and (known.sequence_id, known.session_id) == (pending.sequence_id, pending.session_id):
            logger.info("recording turn %d, whose outcome the store failed to record", pending.sequence_id,
                        extra=log_context())
            known.detail["recorded_late"] = True
            if known.kind == "turn":  # answered: the application got the reply with the store's error
                await turn.save(pending=None, log=[known], turns=turn.record.turns + 1)
                return None
            await turn.save(pending=None, log=[known])
            await self._emit(EventKind.DELIVERY_UNKNOWN, turn, pending.sequence_id, error=known.detail.get("error"))
            return pending
        logger.warning(
            "turn %d (sent by %s) was interrupted: delivery unknown", pending.sequence_id, pending.owner,
            extra=log_context(),
        )
        entry = turn.pending_entry(
            "delivery_unknown", pending, detail={"cause": "sender stopped mid-turn", "owner": pending.owner}
        )
        await turn.save(pending=None, log=[entry])
        await self._emit(EventKind.DELIVERY_UNKNOWN, turn, pending.sequence_id, owner=pending.owner)
        return pending

    async def _ensure_session(self, turn: Turn) -> None:
        """Make sure the record names a live session; when one is started, set the turn's ``greeting``
        and ``resume_reason`` (``None``: a fresh start, not a resume)."""
        record = turn.record
        idle = self.options.idle_timeout
        resume_reason: str | None
        if record.status is ConversationStatus.ACTIVE and record.session_id:
            if idle is None or self.options.clock() - record.last_activity_at <= idle:
                return
            try:
                await self._close_session(turn, "Expiration", SessionState.EXPIRED)
            except (APIStatusError, TransportError) as exc:
                # Ending the stale session only frees server resources (it expires there anyway): the
                # user's turn must not fail for it.
                logger.warning("could not end the idle session: %s", exc, extra=log_context())
                await self._mark_closed(turn, SessionState.EXPIRED, "Expiration")
            resume_reason = "idle"
        elif record.agent_ended:
            if self.options.on_agent_end == "raise":
                raise ConversationEnded(
                    f"The agent ended conversation {self.conversation_id!r}'s session. What to do: start a new "
                    "conversation, or open this one with on_agent_end='restart'."
                )
            resume_reason = "agent_ended"
        elif record.sessions:
            last = record.sessions[-1]
            if last.state is SessionState.EXPIRED:
                resume_reason = "expired"
            elif last.end_reason == "UserRequest":
                resume_reason = None  # the app ended it on purpose: the next session is a fresh start, not a resume
            else:
                resume_reason = "ended"
        else:
            resume_reason = None
        turn.greeting = await self._start_session(turn, resume_reason)
        turn.resume_reason = resume_reason

    async def _start_session(self, turn: Turn, resume_reason: str | None) -> Reply:
        """Start a session (applying the resume policy when ``resume_reason`` is set) and record it; return
        its greeting."""
        record = turn.record
        previous = record.sessions[-1].session_id if record.sessions else None
        policy = self.options.resume
        plan = None
        if resume_reason is not None:
            history = []
            if policy.history_turns:
                entries = await turn.trace.store("transcript", self.store.transcript(self.conversation_id))
                history = [e for e in entries if e.kind == "turn"]
            plan = await policy.plan(ResumeContext(self.conversation_id, resume_reason, previous, history))
        key = record.external_session_key if not record.sessions else str(uuid.uuid4())
        variables = [*self.options.variables, *(plan.variables if plan else ())]
        session = await turn.trace.session_start(self.client.start_session(
            record.agent_id, external_session_key=key, variables=variables, bypass_user=self.options.bypass_user,
            tz=self.options.tz, streaming=self.options.streaming,
        ), resume_reason)
        now = self.options.clock()
        info = SessionInfo(session_id=session.session_id, external_session_key=key, started_at=now)
        started = turn.entry(
            "session_started", session_id=session.session_id, reply=reply_messages(session.greeting),
            detail={"resume_reason": resume_reason, "previous_session_id": previous, "external_session_key": key},
        )
        try:
            await turn.save(
                status=ConversationStatus.ACTIVE, session_id=session.session_id, sessions=[*record.sessions, info],
                external_session_key=key, last_activity_at=now, agent_ended=False, escalated=False, log=[started],
            )
        except ConversationError:
            # Open on the server but in no record: nobody (not even the reaper) could end it later.
            await self._end_unrecorded_session(session.session_id)
            raise
        update_log_context(externalSessionKey=key, sessionId=session.session_id)
        logger.info(
            "session started%s", f" (resuming: {resume_reason})" if resume_reason else "", extra=log_context()
        )
        await self._emit(EventKind.SESSION_STARTED, turn, resume_reason=resume_reason, greeting=session.greeting)
        if resume_reason is not None:
            await self._emit(EventKind.RESUMED, turn, reason=resume_reason, previous_session_id=previous)
        if plan is not None and plan.preamble:
            await self._send_preamble(turn, plan.preamble)
        return session.greeting

    async def _end_unrecorded_session(self, session_id: str) -> None:
        self._telemetry.session_ended("Error")
        try:
            await self.client.end_session(session_id, "Error")
        except SessionforceError as exc:
            logger.warning("could not end session %s, which the store failed to record: %s", session_id, exc,
                           extra=log_context())

    async def _send_preamble(self, turn: Turn, text: str) -> None:
        """Send the resume policy's preamble turn; it gets its own transcript entry, also when it fails."""
        record = turn.record
        assert record.session_id is not None
        seq = record.last_sequence_id + 1
        await turn.save(last_sequence_id=seq)
        started = self.options.clock()
        try:
            reply = await self.client.send_message(record.session_id, text, sequence_id=seq)
        except Exception as exc:
            detail: dict[str, Any] = {"error": str(exc)}
            if isinstance(exc, DeliveryUnknown):
                detail["delivery_unknown"] = True
            try:
                await turn.log("preamble", session_id=record.session_id, sequence_id=seq, text=text, detail=detail)
            except ConversationError as store_error:
                logger.warning("could not record the failed preamble: %s", store_error, extra=log_context())
            raise
        await turn.log(
            "preamble", session_id=record.session_id, sequence_id=seq, text=text, reply=reply_messages(reply),
            duration_ms=(self.options.clock() - started) * 1000,
        )

    async def _close_session(self, turn: Turn, end_reason: EndReason, state: SessionState) -> bool:
        """End the live session on the server and record it; ``False`` when there was none. A failure to
        end it is raised with the record unchanged (still live)."""
        record = turn.record
        session_id = record.session_id
        if record.status is not ConversationStatus.ACTIVE or session_id is None:
            return False
        ended = await self.client.end_session(session_id, end_reason)
        final_state = state if ended is not None else SessionState.EXPIRED
        await self._mark_closed(turn, final_state, end_reason if ended is not None else "AlreadyGone")
        await self._emit(EventKind.ENDED, turn, None, session_id, reason=end_reason, already_gone=ended is None)
        return True

    async def _mark_end_failed(self, turn: Turn, end_reason: EndReason, error: SessionforceError) -> None:
        """Keep a session that could not be ended findable: the record stays live (status active, its
        session id) with an ``end_failed`` marker saying why, and the transcript says so too. The
        original error is what the caller sees, even if this write fails."""
        record = turn.record
        marker = {"session_id": record.session_id, "end_reason": end_reason, "error": str(error),
                  "at": self.options.clock()}
        entry = turn.entry(END_FAILED, session_id=record.session_id, detail=marker)
        logger.warning("could not end session %s: %s", record.session_id, error, extra=log_context())
        try:
            await turn.save(metadata={**record.metadata, END_FAILED: marker}, log=[entry])
        except ConversationError as store_error:
            logger.warning("could not record the failed end: %s", store_error, extra=log_context())

    async def _mark_closed(
        self,
        turn: Turn,
        state: SessionState,
        end_reason: str | None,
        log: Sequence[TranscriptEntry] = (),
        release: bool = False,
        **changes: Any,
    ) -> None:
        """Record the live session as closed (``state``, ``end_reason``): the conversation goes idle."""
        record = turn.record
        now = self.options.clock()
        sessions = [
            s.replace(state=state, ended_at=now, end_reason=end_reason) if s.session_id == record.session_id else s
            for s in record.sessions
        ]
        if END_FAILED in record.metadata:
            changes["metadata"] = {k: v for k, v in record.metadata.items() if k != END_FAILED}
        detail = {"state": state.value, "reason": end_reason}
        ended = turn.entry("session_ended", session_id=record.session_id, detail=detail)
        await turn.save(
            status=ConversationStatus.IDLE, session_id=None, sessions=sessions, log=[*log, ended], release=release,
            **changes,
        )
        turn.trace.session_ended(end_reason)
