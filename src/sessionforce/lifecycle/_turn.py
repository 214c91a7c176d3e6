"""One turn of a conversation: its hold on the conversation (lock, lease, record, log context) and the
outcome it carries from step to step (the turn it sends, the session it had to start, its reply)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, Self

from sessionforce._logging import enter_log_context, restore_log_context, update_log_context
from sessionforce.agent_api import MessageType, Reply, VariableInput
from sessionforce.errors import ConversationError, Delivery, StaleRecord
from sessionforce.errors._build import turn_store_failure
from sessionforce.lifecycle._locks import LocalLocks, TurnLock
from sessionforce.lifecycle._options import ConversationOptions
from sessionforce.store import ConversationRecord, PendingTurn, Store, TranscriptEntry
from sessionforce.telemetry import Telemetry
from sessionforce.telemetry._recorder import NOOP_TURN, TurnRecorder

__all__ = ["Turn", "reply_messages"]


class _Owner(Protocol):
    """What a turn needs of its conversation (a protocol: the conversation module imports this one)."""

    conversation_id: str
    store: Store
    options: ConversationOptions
    _locks: LocalLocks
    _lock_key: str
    _telemetry: Telemetry

    def _new_record(self) -> ConversationRecord: ...

    async def _load_existing(self) -> ConversationRecord: ...


class Turn:
    """One turn on a conversation, used as ``async with Turn(conversation, ...) as turn``.

    Entering takes the conversation's turn lock (FIFO in this process, then the store's lease), loads
    (or creates) the record and sets the log context; leaving undoes all of it in reverse order. In
    between, ``record`` is the current record and ``lock`` holds the lease every write carries.

    The turn carries its own outcome from step to step: the user's message (``text``, ``variables``,
    ``message_type``, ``in_reply_to``; ``None`` text for turns that only start or end a session),
    ``interrupted`` (a turn a crashed sender left pending, reported before this one), ``greeting`` and
    ``resume_reason`` (of a session this turn had to start), ``pending`` (the turn as written ahead,
    with its sequenceId and session), ``started_at``, ``resent`` (already resent once after a 404) and
    ``reply`` (the agent's answer, once it came). ``trace`` records its span and metrics (``stream``: the
    reply is streamed).

    A class with slots rather than ``@asynccontextmanager``: it runs on every turn, and a generator-based
    context manager costs an async generator (and the event loop's bookkeeping for it) each time.
    """

    __slots__ = (
        "_log", "conversation", "greeting", "in_reply_to", "interrupted", "lock", "message_type", "pending",
        "record", "reply", "resent", "resume_reason", "started_at", "stream", "text", "trace", "variables",
    )

    record: ConversationRecord
    lock: TurnLock

    def __init__(
        self,
        conversation: _Owner,
        text: str | None = None,
        variables: Sequence[VariableInput] = (),
        message_type: MessageType = "Text",
        in_reply_to: str | None = None,
        stream: bool = False,
    ) -> None:
        self.conversation = conversation
        self.stream = stream
        self.trace: TurnRecorder = NOOP_TURN
        self.text = text
        self.variables = variables
        self.message_type: MessageType = message_type
        self.in_reply_to = in_reply_to
        self.interrupted: PendingTurn | None = None
        self.greeting: Reply | None = None
        self.resume_reason: str | None = None
        self.pending: PendingTurn | None = None
        self.started_at = 0.0
        self.resent = False
        self.reply: Reply | None = None

    # ------------------------------------------------------------------ the hold on the conversation

    async def __aenter__(self) -> Self:
        conv = self.conversation
        options = conv.options
        loop = asyncio.get_running_loop()
        deadline = loop.time() + options.lock_wait
        trace = self.trace = conv._telemetry.turn(conv.conversation_id, self.text, self.stream, conv.store)
        try:
            await conv._locks.acquire(conv._lock_key, options.lock_wait)
        except BaseException as exc:  # busy past lock_wait, or cancelled while queued: the trace ends here
            trace.end(exc, self)
            raise
        lock = self.lock = TurnLock(
            conv.store, conv.conversation_id, ttl=options.lease_ttl, owner=conv._locks.owner, locks=conv._locks,
            key=conv._lock_key,
        )
        previous_log = enter_log_context(conversationId=conv.conversation_id)
        try:
            # (The no-op recorder is skipped rather than called: these run every turn.)
            acquiring = lock.acquire(wait=max(0.0, deadline - loop.time()))
            await (acquiring if trace is NOOP_TURN else trace.lease(acquiring))
            loading = conv.store.load(conv.conversation_id)
            record = await (loading if trace is NOOP_TURN else trace.store("load", loading))
            self.record = record or conv._new_record()
            if record is None:
                try:
                    await self.save()
                except StaleRecord:
                    self.record = await conv._load_existing()
            record = self.record
            update_log_context(externalSessionKey=record.external_session_key, sessionId=record.session_id,
                               agentId=record.agent_id)
        except BaseException as exc:
            trace.end(exc, self)
            restore_log_context(previous_log)
            try:
                await lock.release()
            finally:
                conv._locks.release(conv._lock_key)
            if isinstance(exc, ConversationError) and exc.delivery is None:
                # The store cannot know nothing was sent; the turn does: nothing leaves before this point.
                raise turn_store_failure(exc, Delivery.NOT_SENT) from exc
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
            if self.trace is not NOOP_TURN:
                self.trace.end(exc, self)

    # ------------------------------------------------------------------ writes under the lease

    async def save(
        self, *, log: Sequence[TranscriptEntry] = (), release: bool = False, **changes: Any
    ) -> ConversationRecord:
        """Save the record with ``changes``, appending ``log`` to the transcript in the same atomic step.

        ``release``: this is the turn's last write; give the lease up with it (one store write fewer).
        """
        lock = self.lock
        if release:
            lock.stop_renewing()
        saving = self.conversation.store.save(
            self.record.replace(**changes), lease=lock.held, transcript=log, release=release
        )
        self.record = await (saving if self.trace is NOOP_TURN else self.trace.store("save", saving))
        if release:
            lock.given_up()
        return self.record

    def entry(self, kind: str, **fields: Any) -> TranscriptEntry:
        """A transcript entry stamped now."""
        return TranscriptEntry(kind=kind, at=self.conversation.options.clock(), **fields)

    def pending_entry(self, kind: str, pending: PendingTurn, **fields: Any) -> TranscriptEntry:
        """A transcript entry for ``pending`` (a turn as it was written ahead), stamped now."""
        return TranscriptEntry(
            kind=kind, at=self.conversation.options.clock(), session_id=pending.session_id,
            sequence_id=pending.sequence_id, text=pending.text, message_type=pending.message_type, **fields,
        )

    async def log(self, kind: str, **fields: Any) -> None:
        """Append one transcript entry on its own (when there is no record change to go with it)."""
        await self.trace.store("append", self.conversation.store.append_transcript(
            self.record.conversation_id, self.entry(kind, **fields), lease=self.lock.held
        ))


def reply_messages(reply: Reply) -> list[dict[str, Any]]:
    """A reply's messages as they came on the wire, for the transcript."""
    return [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in reply.messages]
