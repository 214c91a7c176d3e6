"""What becomes of a turn once it is written ahead: the delivery outcomes table, and the steps that
settle a turn (send again after a 404, record a failure, record the answer).

The rule every step follows: what the application is told is the truth about its turn's delivery
(not sent / maybe delivered / answered). A store failure while recording an outcome never replaces it:
the turn stays pending in the record (the next turn reports it as delivery-unknown) and the original
outcome is raised, or, when the agent answered, the store's error is raised carrying the reply.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, NoReturn

from sessionforce._logging import log_context, update_log_context
from sessionforce.agent_api import Awaiting, Reply
from sessionforce.agent_api._reply import construct_validated
from sessionforce.errors import (
    ConnectionFailed,
    ConversationError,
    Delivery,
    DeliveryUnknown,
    InvalidArgument,
    SessionforceError,
    SessionLocked,
    SessionNotFound,
    StreamInterrupted,
)
from sessionforce.errors._build import session_start_failed, turn_store_failure
from sessionforce.lifecycle._events import EventKind
from sessionforce.lifecycle._locks import worker_identity
from sessionforce.lifecycle._replies import ConversationReply
from sessionforce.lifecycle._sessions import _SessionSteps
from sessionforce.lifecycle._turn import Turn, reply_messages
from sessionforce.store import PendingTurn, SessionState

__all__ = ["OUTCOMES", "Outcome", "_TurnSteps", "not_sent", "outcome_of"]

logger = logging.getLogger("sessionforce.conversation")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a turn that failed after it was written ahead records, and whom it tells."""

    kind: str
    """Its transcript entry: ``delivery_unknown`` (it may have reached the agent) or ``error``."""
    sent: bool | None
    """``False``: the agent provably did not take it; ``True``: delivered, the reply is incomplete;
    ``None``: unknown (for ``error``: the server answered with an error the exception describes)."""
    event: EventKind | None
    """The event hooks receive, if any."""
    error: str | None = None
    """The transcript's account of it; ``None``: the exception's message."""


_UNKNOWN = EventKind.DELIVERY_UNKNOWN

OUTCOMES: dict[type[BaseException], Outcome] = {
    StreamInterrupted: Outcome("delivery_unknown", True, _UNKNOWN),
    DeliveryUnknown: Outcome("delivery_unknown", None, _UNKNOWN),
    asyncio.CancelledError: Outcome("delivery_unknown", None, _UNKNOWN, "the turn was cancelled while in flight"),
    GeneratorExit: Outcome("delivery_unknown", True, _UNKNOWN, "the caller stopped reading the reply"),
    SessionLocked: Outcome("error", False, None),  # 423 past the wire's wait: the request was refused
    SessionNotFound: Outcome("error", False, None),  # 404 on the session the turn was resent to
    ConnectionFailed: Outcome("error", False, None),
    InvalidArgument: Outcome("error", False, None),
    BaseException: Outcome("error", None, None),
}
"""Exception class → outcome; the most specific class of an exception's MRO wins."""


def outcome_of(exc: BaseException) -> Outcome:
    """The outcome of a turn whose send raised ``exc`` (see :data:`OUTCOMES`)."""
    for cls in type(exc).__mro__:
        outcome = OUTCOMES.get(cls)
        if outcome is not None:
            return outcome
    raise AssertionError("unreachable: BaseException is in the table")  # pragma: no cover


def not_sent(exc: BaseException) -> BaseException:
    """The error to raise for a turn that failed before it was sent, telling that truth: a store's error
    (which cannot know) restated as *not sent*; an error that may have reached the server while making a
    session ready (a start or a resume preamble cut off) as :class:`SessionStartFailed`, never as a
    ``DeliveryUnknown`` the application would read as its own turn's; any other error as it is."""
    if isinstance(exc, ConversationError) and exc.delivery is None:
        return turn_store_failure(exc, Delivery.NOT_SENT)
    if isinstance(exc, SessionforceError) and exc.delivery not in (Delivery.NOT_SENT, None):
        return session_start_failed("making a session ready for it", exc)
    return exc


class _TurnSteps(_SessionSteps):
    """The turn half of a conversation: every step of a turn between its lock and its wire call."""

    __slots__ = ()

    async def _prepare(self, turn: Turn) -> None:
        """Everything before the turn is sent: report a turn a crashed sender left pending, make sure a
        session is live, and write the turn ahead. A failure here is the turn's one transcript entry
        (not sent) and is raised as such (see :func:`not_sent`)."""
        try:
            if turn.record.pending is not None:
                turn.interrupted = await self._report_pending(turn)
            await self._ensure_session(turn)
            await self._write_ahead(turn)
        except BaseException as exc:
            await self._fail_unsent(turn, exc)

    async def _write_ahead(self, turn: Turn) -> None:
        """Allocate the turn's sequenceId on the live session and save it as pending *before* sending, so
        a crash mid-turn leaves a trace the next process reports."""
        record = turn.record
        assert record.session_id is not None
        assert turn.text is not None
        seq = record.last_sequence_id + 1
        started_at = turn.started_at = self.options.clock()
        pending = turn.pending = PendingTurn(
            sequence_id=seq, session_id=record.session_id, text=turn.text, message_type=turn.message_type,
            in_reply_to=turn.in_reply_to, started_at=started_at, owner=worker_identity(),
        )
        await turn.save(last_sequence_id=seq, pending=pending)
        update_log_context(sequenceId=seq)
        if self._hooks is not None:  # no coroutine made when nobody listens (the hot path)
            await self._emit(EventKind.TURN_SENT, turn, seq)

    async def _fail_unsent(self, turn: Turn, exc: BaseException) -> NoReturn:
        """A turn that failed before it was sent still gets its one transcript entry, saying it was not
        sent; then the truth is raised (:func:`not_sent`), whatever this write does."""
        try:
            await turn.log(
                "error", text=turn.text, message_type=turn.message_type, detail={"error": str(exc), "sent": False}
            )
        except ConversationError as store_error:
            logger.warning("could not record the unsent turn: %s", store_error, extra=log_context())
        truth = not_sent(exc)
        if truth is exc:
            raise exc
        raise truth from exc

    async def _resend_after(self, turn: Turn, exc: BaseException) -> bool:
        """Settle a failed send: ``True`` when the turn moved to a new session and is to be sent again
        there (the first 404: the session expired); otherwise its outcome is recorded and ``False``."""
        if isinstance(exc, SessionNotFound) and not turn.resent:
            await self._resume_after_expiry(turn)
            return True
        await self._record_outcome(turn, exc, outcome_of(exc))
        return False

    async def _resume_after_expiry(self, turn: Turn) -> None:
        """The session answered 404: record it expired, start a new one (the resume policy applies) and
        write the turn ahead there. The 404'd request was not taken, so the turn is sent once more; should
        any of this fail, the turn was not sent, and its one transcript entry says so."""
        pending = turn.pending
        assert pending is not None
        logger.info("session expired (404); starting a new one and resending", extra=log_context())
        turn.resent = True
        try:
            await self._mark_closed(turn, SessionState.EXPIRED, "Expired", pending=None)
            await self._emit(EventKind.ENDED, turn, pending.sequence_id, pending.session_id, reason="Expired")
            turn.greeting = await self._start_session(turn, "expired")
            turn.resume_reason = "expired"
            await self._write_ahead(turn)
        except BaseException as exc:
            await self._fail_unsent(turn, exc)

    async def _record_outcome(self, turn: Turn, exc: BaseException, outcome: Outcome) -> None:
        """Record a failed send as ``outcome`` says; a store failure here is logged, never raised (the
        turn's own outcome is what the caller must see)."""
        pending = turn.pending
        assert pending is not None
        error = outcome.error or str(exc)
        detail: dict[str, Any] = {"error": error}
        if outcome.sent is False:
            detail["sent"] = False
        elif outcome.sent:
            detail["delivered"] = True
        if isinstance(exc, StreamInterrupted):
            detail["partial_text"] = exc.partial_text
        entry = turn.pending_entry(outcome.kind, pending, detail=detail)
        try:
            await turn.save(pending=None, log=[entry])
        except ConversationError as store_error:
            logger.warning(
                "could not record the outcome of turn %d (%s): %s; it stays pending, and the next turn records "
                "it", pending.sequence_id, outcome.kind, store_error, extra=log_context(),
            )
            self._locks.unrecorded[self._lock_key] = entry
            exc.add_note(f"The store could not record this outcome: {store_error}")
            return
        if outcome.event is not None:
            await self._emit(outcome.event, turn, pending.sequence_id, error=error)

    async def _answered(self, turn: Turn, reply: Reply) -> ConversationReply:
        """Record the agent's answer (reply, transcript entry and lease release in one store write) and
        return it. Should the store fail, its error carries the reply (``exc.reply``): the turn was
        answered, and is never to be sent again."""
        turn.reply = reply
        pending = turn.pending
        assert pending is not None
        now = self.options.clock()
        entry = turn.pending_entry(
            "turn", pending, reply=reply_messages(reply), duration_ms=(now - turn.started_at) * 1000,
            detail={"resumed": turn.resume_reason} if turn.resume_reason else {},
        )
        changes: dict[str, Any] = {"pending": None, "turns": turn.record.turns + 1, "last_activity_at": now}
        if reply.escalated:
            changes["escalated"] = True
        awaiting = reply.awaiting
        try:  # the turn's last write: it gives the lease up too
            if awaiting is Awaiting.ENDED:
                await self._mark_closed(
                    turn, SessionState.ENDED, reply.end_reason, [entry], release=True, agent_ended=True, **changes
                )
            else:
                await turn.save(log=[entry], release=True, **changes)
        except ConversationError as store_error:
            self._locks.unrecorded[self._lock_key] = entry  # the next turn of this process records it
            truth = turn_store_failure(store_error, Delivery.ANSWERED)
            truth.reply = self._conversation_reply(turn, reply)
            raise truth from store_error
        if self._hooks is not None:  # (checked here too: the hot path skips making the coroutines)
            await self._emit(EventKind.REPLY, turn, pending.sequence_id, awaiting=awaiting.value)
            if awaiting is Awaiting.ENDED:
                await self._emit(
                    EventKind.ENDED, turn, pending.sequence_id, pending.session_id, reason=reply.end_reason, by="agent"
                )
        return self._conversation_reply(turn, reply)

    def _conversation_reply(self, turn: Turn, reply: Reply) -> ConversationReply:
        """``reply`` with what the turn did (resumed, the interrupted turn, a new session's greeting)."""
        # The messages were validated when the reply was read; do not pay for it twice.
        greeting = turn.greeting
        fields = {
            "messages": reply.messages, "session_id": reply.session_id, "sequence_id": reply.sequence_id,
            "resumed": turn.resume_reason is not None, "resume_reason": turn.resume_reason,
            "interrupted_turn": turn.interrupted, "greeting": greeting if greeting is not reply else None,
        }
        return construct_validated(ConversationReply, fields, {"_conversation": self})
