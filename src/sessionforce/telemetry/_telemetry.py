"""`Telemetry`: which tracer and meter provider sessionforce records to, and whether message content is
captured.

Resolved lazily, and cheaply when nothing records: with no provider given, OpenTelemetry's global ones are
looked up at each turn while they are still the API's placeholders (a type check), and kept for good once
the application has set real ones. Without ``opentelemetry-api`` installed, everything is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from sessionforce._version import __version__
from sessionforce.errors import ConnectionFailed
from sessionforce.telemetry import _names as n
from sessionforce.telemetry._instruments import Instruments, make_instruments
from sessionforce.telemetry._recorder import NOOP_TURN, TurnRecorder

try:  # the optional extra: sessionforce[otel]
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
    from opentelemetry.metrics import NoOpMeterProvider as _NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider as _NoOpTracerProvider
    from opentelemetry.trace import ProxyTracerProvider as _ProxyTracerProvider
except ImportError:  # pragma: no cover - exercised by the no-SDK subprocess test and the bench
    _trace = None  # type: ignore[assignment]
    _metrics = None  # type: ignore[assignment]

if _metrics is not None:
    try:  # the global meter provider's placeholder until the application sets one (not exported by the API)
        from opentelemetry.metrics import _internal as _metrics_internal
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover - a future API that moved it: then the placeholder counts as real
        _ProxyMeterProvider = _NoOpMeterProvider  # type: ignore[misc, assignment]
        _metrics_internal = None  # type: ignore[assignment]


_ENV_AT_IMPORT = frozenset(name for name in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
                           if name in os.environ)


# Whether no global provider is set yet is read from the API's module variables (``None`` until the
# application sets one): its getters look their environment variable up on every call while none is set,
# which costs more than the rest of a turn's telemetry when off. False when this API keeps them elsewhere
# or a provider is named in the environment: then the getters decide each time.
_GLOBALS_READABLE = (
    _trace is not None and hasattr(_trace, "_TRACER_PROVIDER") and _metrics_internal is not None
    and hasattr(_metrics_internal, "_METER_PROVIDER") and not _ENV_AT_IMPORT
)


if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Tracer, TracerProvider

    from sessionforce.telemetry._http import RequestView, Verdict

__all__ = ["CAPTURE_CONTENT_ENV", "SCOPE", "Telemetry"]

SCOPE = "sessionforce"
"""The instrumentation scope name of every sessionforce span and instrument."""

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The GenAI instrumentations' switch for recording message content (off unless ``true``)."""

T = TypeVar("T")

_STORES = {"MemoryStore": "memory", "SQLiteStore": "sqlite", "RedisStore": "redis", "PostgresStore": "postgres"}

_CAPTURE_ON = frozenset({"true", "1", "yes", "span_only", "span_and_event"})


def _capture_from_env() -> bool:
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CAPTURE_ON


class Telemetry:
    """Where sessionforce's spans and metrics go.

    ``tracer_provider`` / ``meter_provider``: OpenTelemetry providers (``None``: the global ones, looked up
    lazily, so a provider the application sets after making its clients is still used).
    ``capture_content``: record the user's and the agent's messages on the turn spans (``gen_ai.input.messages``,
    ``gen_ai.output.messages``); ``None`` reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (off
    unless ``true``). Messages are your users' words: leave it off unless your traces may hold them.

    Without ``opentelemetry-api`` installed (``pip install 'sessionforce[otel]'``) nothing is recorded.
    """

    __slots__ = ("_capture", "_instruments", "_meter_provider", "_off", "_tracer", "_tracer_provider")

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._capture = _capture_from_env() if capture_content is None else bool(capture_content)
        self._tracer: Tracer | None = None
        self._instruments: Instruments | None = None
        self._off = _trace is None

    @classmethod
    def disabled(cls) -> Telemetry:
        """Telemetry that records nothing, whatever providers are set globally."""
        telemetry = cls(capture_content=False)
        telemetry._off = True
        return telemetry

    def __repr__(self) -> str:
        if self._off:
            return "Telemetry.disabled()"
        return (f"Telemetry(tracer_provider={self._tracer_provider!r}, meter_provider={self._meter_provider!r}, "
                f"capture_content={self._capture!r})")

    @property
    def capture_content(self) -> bool:
        """Whether turn spans record message content."""
        return self._capture

    def tracer(self) -> Tracer | None:
        """The tracer to record with, or ``None`` when nothing would record a span (the hot path's check)."""
        tracer = self._tracer
        if tracer is not None or self._off:
            return tracer
        provider = self._tracer_provider
        if provider is None:
            if _GLOBALS_READABLE and _trace._TRACER_PROVIDER is None:
                return None
            provider = _trace.get_tracer_provider()
            if isinstance(provider, _ProxyTracerProvider):
                return None  # no global provider yet: look again on the next turn
        if isinstance(provider, _NoOpTracerProvider):
            return None
        self._tracer = tracer = provider.get_tracer(SCOPE, __version__)
        return tracer

    def instruments(self) -> Instruments | None:
        """The metric instruments, or ``None`` when no meter provider is set (the hot path's check)."""
        instruments = self._instruments
        if instruments is not None or self._off:
            return instruments
        provider = self._meter_provider
        if provider is None:
            if _GLOBALS_READABLE and _metrics_internal._METER_PROVIDER is None:
                return None
            provider = _metrics.get_meter_provider()
            if isinstance(provider, _ProxyMeterProvider):
                return None
        if isinstance(provider, _NoOpMeterProvider):
            return None
        self._instruments = instruments = make_instruments(provider.get_meter(SCOPE, __version__))
        return instruments

    # ------------------------------------------------------------------ for sessionforce's own layers

    def turn(self, conversation_id: str, text: str | None, stream: bool, store: object) -> TurnRecorder:
        """The recorder of one conversation turn (``text`` ``None``: a turn that sends no message, e.g.
        ``end()``): :data:`NOOP_TURN` when nothing records."""
        if self._off or (_GLOBALS_READABLE and self._tracer is None and self._instruments is None
                         and self._tracer_provider is None and self._meter_provider is None
                         and _trace._TRACER_PROVIDER is None and _metrics_internal._METER_PROVIDER is None):
            return NOOP_TURN  # the common case, decided without a call: nothing is set, so nothing records
        tracer = self.tracer()
        instruments = self.instruments()
        if tracer is None and instruments is None:
            return NOOP_TURN
        from sessionforce.telemetry._turn import TurnTrace

        kind = type(store).__name__
        name = _STORES.get(kind) or kind.lower().removesuffix("store")
        return TurnTrace(self, tracer, instruments, conversation_id, text, stream, name)

    def http_attempt(
        self, attempt: Awaitable[T], request: RequestView, base: str | None, verdict: Verdict
    ) -> Awaitable[T]:
        """``attempt`` (one HTTP request) inside its span; untouched when no tracer records."""
        if self._off or (_GLOBALS_READABLE and self._tracer is None and self._tracer_provider is None
                         and _trace._TRACER_PROVIDER is None):
            return attempt  # every request asks: answered without a call while nothing is set
        tracer = self.tracer()
        if tracer is None:
            return attempt
        from sessionforce.telemetry._http import traced_attempt

        return traced_attempt(tracer, attempt, request, base or "", verdict)

    def retried(self, status: int | None, error: BaseException) -> None:
        """A request is sent again after ``status`` (``None``: no answer; ``error`` says why)."""
        instruments = self.instruments()
        if instruments is not None:
            failed_to = "connect" if isinstance(error, ConnectionFailed) else "timeout"
            cause = str(status) if status is not None else failed_to
            instruments.http_retries.add(1, {n.M_CAUSE: cause})

    def locked_wait(self) -> None:
        """A request waits out a 423 (the session busy with another request)."""
        instruments = self.instruments()
        if instruments is not None:
            instruments.locked_waits.add(1)

    def session_started(self, reason: str) -> None:
        """A session was started (``reason``: ``new``, or why the last one was replaced)."""
        instruments = self.instruments()
        if instruments is not None:
            attributes: dict[str, Any] = {n.M_REASON: reason}
            instruments.sessions_started.add(1, attributes)
            instruments.sessions_open.add(1)

    def session_ended(self, end_reason: str | None) -> str:
        """A session this process knew open was closed; returns the reason counted: the end reason sent, or
        ``expired`` when the server had already dropped it."""
        reason = "expired" if end_reason in ("Expired", "AlreadyGone") else end_reason or "unknown"
        instruments = self.instruments()
        if instruments is not None:
            instruments.sessions_ended.add(1, {n.M_REASON: reason})
            instruments.sessions_open.add(-1)
        return reason
