"""A conversation's server sessions: make sure one is live (start, resume, restart), close them, and fire
the lifecycle events. The base of :class:`~sessionforce.lifecycle.Conversation`, which runs the turns."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sessionforce._logging import log_context, update_log_context
from sessionforce.agent_api import EndReason, Reply
from sessionforce.errors import APIStatusError, ConversationEnded, StaleRecord, TransportError
from sessionforce.lifecycle._events import ConversationEvent, EventKind, Hooks
from sessionforce.lifecycle._locks import LocalLocks
from sessionforce.lifecycle._options import ConversationOptions
from sessionforce.lifecycle._resume import ResumeContext
from sessionforce.lifecycle._turn import _messages, _Turn
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

__all__ = ["_SessionSteps"]

logger = logging.getLogger("sessionforce.conversation")


class _SessionSteps:
    """The session half of a conversation: its fields, and every step that starts or closes a session."""

    # Slots: a process may hold thousands of conversations at once.
    __slots__ = (
        "_agent_id", "_hooks", "_lock_key", "_locks", "client", "conversation_id", "options", "store",
    )

    client: AsyncAgentClient
    conversation_id: str
    store: Store
    options: ConversationOptions
    _hooks: Hooks | None
    _agent_id: str | None
    _locks: LocalLocks
    _lock_key: str

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
