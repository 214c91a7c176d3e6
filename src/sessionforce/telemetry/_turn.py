"""A turn's trace: the ``invoke_agent`` span with its children (lease, store operations, session start) and
the turn, session, lease and store metrics.

The lifecycle calls it in one line per step. When nothing records, it gets :data:`NOOP_TURN`, whose calls
hand each awaitable back untouched: no span, no attribute dict, no extra coroutine on the hot path.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from sessionforce.telemetry import _names as n
from sessionforce.telemetry._recorder import TurnRecorder, TurnView

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from sessionforce.telemetry._instruments import Instruments

__all__ = ["TurnTrace", "detach", "set_error"]

T = TypeVar("T")


class _Owner(Protocol):
    """What a turn's trace needs of its :class:`~sessionforce.telemetry.Telemetry` (a protocol: that module
    imports this one)."""

    @property
    def capture_content(self) -> bool: ...

    def session_started(self, reason: str) -> None: ...

    def session_ended(self, end_reason: str | None) -> str: ...


def detach(token: object) -> None:
    """Undo an ``attach``; quietly when the turn ends in another context than it began in (a stream closed
    by the garbage collector), where OpenTelemetry's ``detach`` would log an error for it."""
    if isinstance(token, contextvars.Token):
        with contextlib.suppress(ValueError):
            token.var.reset(token)
    else:  # pragma: no cover - a runtime context other than the default contextvars one
        otel_context.detach(token)  # type: ignore[arg-type]


def set_error(span: Span, exc: BaseException) -> None:
    """Mark ``span`` failed with ``exc`` (our exception class as ``error.type``; its message is redacted)."""
    span.set_attribute(n.ERROR_TYPE, type(exc).__name__)
    delivery = getattr(exc, "delivery", None)
    if delivery is not None:
        span.set_attribute(n.DELIVERY, str(delivery))
    kind = type(exc)
    # Our errors by their public home (sessionforce.errors), not the private module they are defined in.
    public = "sessionforce.errors" if kind.__module__.startswith("sessionforce.errors") else kind.__module__
    span.record_exception(exc, {"exception.type": f"{public}.{kind.__qualname__}"})
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


class TurnTrace(TurnRecorder):
    """A turn being recorded: its span (``None`` for a turn that sends no message, e.g. ``end()``, which
    still counts sessions, lease waits and store operations) and the clock its metrics are timed by."""

    __slots__ = (
        "_first", "_inst", "_started", "_started_ns", "_store", "_stream", "_telemetry", "_token", "_tracer", "span",
    )

    def __init__(
        self,
        telemetry: _Owner,
        tracer: Tracer | None,
        instruments: Instruments | None,
        conversation_id: str,
        text: str | None,
        stream: bool,
        store: str,
    ) -> None:
        self._telemetry = telemetry
        self._tracer = tracer
        self._inst = instruments
        self._stream = stream
        self._store = store
        self._first: float | None = None
        self._token: object = None
        self._started = time.monotonic()
        self._started_ns = time.time_ns()
        self.span: Span | None = None
        if tracer is not None and text is not None:
            attributes: dict[str, Any] = {
                n.OPERATION: n.INVOKE_AGENT, n.PROVIDER: n.PROVIDER_NAME, n.CONVERSATION: conversation_id,
                n.STREAM: stream,
            }
            if telemetry.capture_content:
                attributes[n.INPUT_MESSAGES] = json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": text}]}], ensure_ascii=False
                )
            self.span = span = tracer.start_span(
                n.INVOKE_AGENT, kind=SpanKind.CLIENT, attributes=attributes, start_time=self._started_ns
            )
            self._token = otel_context.attach(otel_trace.set_span_in_context(span))

    def _child(self, name: str, attributes: dict[str, Any], start_time: int | None = None) -> tuple[Span, object]:
        assert self._tracer is not None
        span = self._tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes, start_time=start_time)
        return span, otel_context.attach(otel_trace.set_span_in_context(span))

    async def _lease(self, acquiring: Awaitable[T]) -> T:
        span = token = None
        if self.span is not None:
            # The span starts with the turn: the wait in this process's queue is part of the lease wait.
            span, token = self._child(n.SPAN_LEASE, {n.STORE: self._store}, start_time=self._started_ns)
        store_started = time.monotonic()
        try:
            result = await acquiring
        except BaseException as exc:
            if span is not None:
                set_error(span, exc)
            raise
        finally:
            now = time.monotonic()
            if self._inst is not None:
                labels = {n.M_OPERATION: "acquire", n.M_STORE: self._store}
                self._inst.store_duration.record(now - store_started, labels)
            if span is not None:
                detach(token)
                span.end()
        if self._inst is not None:
            self._inst.lease_wait.record(now - self._started)
        return result

    def lease(self, acquiring: Awaitable[T]) -> Awaitable[T]:
        return self._lease(acquiring)

    async def _store_op(self, operation: str, call: Awaitable[T]) -> T:
        span = token = None
        if self.span is not None:
            span, token = self._child(f"store {operation}", {n.STORE_OPERATION: operation, n.STORE: self._store})
        started = time.monotonic()
        try:
            return await call
        except BaseException as exc:
            if span is not None:
                set_error(span, exc)
            raise
        finally:
            if self._inst is not None:
                self._inst.store_duration.record(
                    time.monotonic() - started, {n.M_OPERATION: operation, n.M_STORE: self._store}
                )
            if span is not None:
                detach(token)
                span.end()

    def store(self, operation: str, call: Awaitable[T]) -> Awaitable[T]:
        return self._store_op(operation, call)

    async def _session_start(self, starting: Awaitable[T], resume_reason: str | None) -> T:
        reason = resume_reason or "new"
        span = token = None
        if self.span is not None:
            span, token = self._child(n.SPAN_START_SESSION, {n.RESUME_REASON: reason})
        try:
            session = await starting
            if span is not None:
                span.set_attribute(n.SESSION_ID, str(getattr(session, "session_id", "")))
        except BaseException as exc:
            if span is not None:
                set_error(span, exc)
            raise
        finally:
            if span is not None:
                detach(token)
                span.end()
        self._telemetry.session_started(reason)
        return session

    def session_start(self, starting: Awaitable[T], resume_reason: str | None) -> Awaitable[T]:
        return self._session_start(starting, resume_reason)

    def session_ended(self, end_reason: str | None) -> None:
        reason = self._telemetry.session_ended(end_reason)
        if self.span is not None:
            self.span.add_event(n.EVENT_SESSION_ENDED, {n.END_REASON: reason})

    def first_event(self) -> None:
        if self._first is not None:
            return
        self._first = now = time.monotonic()
        if self._inst is not None:
            self._inst.time_to_first_event.record(now - self._started, {n.M_STREAM: self._stream})
        if self.span is not None:
            self.span.add_event(n.EVENT_FIRST)

    def end(self, exc: BaseException | None, turn: TurnView) -> None:
        if turn.text is None:  # start() / end(): no user turn to count
            return
        outcome = _outcome(exc, turn)
        duration = time.monotonic() - self._started
        if turn.reply is not None and self._first is None:
            self.first_event()  # a whole reply: the first thing the user sees
        inst = self._inst
        if inst is not None:
            labels: dict[str, Any] = {n.M_OUTCOME: outcome, n.M_STREAM: self._stream}
            inst.turn_duration.record(duration, labels)
            if exc is not None and outcome not in (n.ANSWERED, n.RESUMED):
                labels = {**labels, n.ERROR_TYPE: type(exc).__name__}
            inst.turns.add(1, labels)
        span = self.span
        if span is not None:
            self._finish_span(span, exc, turn, outcome)

    def _finish_span(self, span: Span, exc: BaseException | None, turn: TurnView, outcome: str) -> None:
        record = getattr(turn, "record", None)
        pending = turn.pending
        if record is not None:
            span.update_name(f"{n.INVOKE_AGENT} {record.agent_id}")
            span.set_attribute(n.AGENT_ID, record.agent_id)
            span.set_attribute(n.EXTERNAL_KEY, record.external_session_key)
        session_id = pending.session_id if pending is not None else getattr(record, "session_id", None)
        if session_id:
            span.set_attribute(n.SESSION_ID, session_id)
        if pending is not None:
            span.set_attribute(n.SEQUENCE_ID, pending.sequence_id)
        if turn.resume_reason is not None:
            span.set_attribute(n.RESUME_REASON, turn.resume_reason)
        span.set_attribute(n.OUTCOME, outcome)
        reply = turn.reply
        if reply is not None:
            span.set_attribute(n.DELIVERY, "answered")
            if self._first is not None and self._stream:
                span.add_event(n.EVENT_END)
            if self._telemetry.capture_content:
                span.set_attribute(n.OUTPUT_MESSAGES, json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": reply.text}]}], ensure_ascii=False
                ))
        if exc is not None and (reply is None or not isinstance(exc, GeneratorExit)):
            set_error(span, exc)
            if reply is None and getattr(exc, "delivery", None) is None:
                span.set_attribute(n.DELIVERY, "maybe_delivered" if outcome == n.DELIVERY_UNKNOWN else "not_sent")
        detach(self._token)
        span.end()


def _outcome(exc: BaseException | None, turn: TurnView) -> str:
    """answered / resumed (answered on a session that replaced a gone one) / delivery_unknown / failed."""
    if turn.reply is not None:
        return n.RESUMED if turn.resume_reason is not None else n.ANSWERED
    delivery = getattr(exc, "delivery", None)
    if delivery is not None:  # an answer that is an error counts as failed: nothing is in doubt
        return n.DELIVERY_UNKNOWN if delivery == "maybe_delivered" else n.FAILED
    # Cancelled, or a stream its reader dropped: in doubt only once the turn was written ahead (maybe sent).
    return n.DELIVERY_UNKNOWN if turn.pending is not None else n.FAILED
