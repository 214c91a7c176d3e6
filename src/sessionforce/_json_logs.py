"""Log lines for operators, shared by the CLI and the gateway: one JSON object (or one text line) per record.

The library configures no handlers; the applications (``sessionforce ... --log-format json``, ``sessionforce
serve``) put these formatters on stderr. Each line holds the record's correlation keys when it has them,
and ``trace_id`` / ``span_id`` of the OpenTelemetry span current when the record was made (if
``opentelemetry-api`` is installed and a valid span is current). Every text is passed through the
library's one redaction point (:func:`sessionforce.errors._redact.scrub`): a message or traceback that
quotes a known secret, a ``Bearer`` credential or a URL password never reaches the log.

The standard library's ``json`` does it in a few lines; python-json-logger would add a dependency for
field renaming and ``extra`` merging that we do not want (``extra`` may hold anything; only the named keys
are written, so an application's stray ``extra`` cannot leak into the log).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sessionforce.errors._redact import scrub

__all__ = ["CORRELATION_KEYS", "JSONFormatter", "TextFormatter", "current_trace_ids"]

CORRELATION_KEYS = ("conversation_id", "message_id", "external_session_key", "session_id", "sequence_id",
                    "agent_id")
"""The keys written, in snake case like ``trace_id`` / ``span_id`` (OpenTelemetry's log attributes' style)."""

_CAMEL = (("conversation_id", "conversationId"), ("message_id", "messageId"),
          ("external_session_key", "externalSessionKey"), ("session_id", "sessionId"), ("sequence_id", "sequenceId"),
          ("agent_id", "agentId"))
"""Each key, and how a record's ``extra`` may spell it the Agent API's way (``sessionId``): written the same."""

try:  # opentelemetry-api is optional: without it no span is ever current
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised by installs without the otel/gateway extras
    _trace = None  # type: ignore[assignment]


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in W3C hex of the span current in this context, or ``None``.

    A valid span context counts even when this process does not record it (no SDK, or not sampled), as
    OpenTelemetry's own logging instrumentation does: the caller's trace id still ties the line to it.
    """
    if _trace is None:
        return None
    context = _trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _correlation(record: logging.LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, camel in _CAMEL:
        value = getattr(record, key, None)
        if value is None:
            value = getattr(record, camel, None)
        if value is not None:
            found[key] = value
    return found


class JSONFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", <correlation keys>, "trace_id"?, "span_id"?, "exception"?}``."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object, no line breaks inside (tracebacks are escaped), secrets scrubbed."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": scrub(record.getMessage()),
        }
        for key, value in _correlation(record).items():
            entry[key] = scrub(value) if isinstance(value, str) else value
        ids = current_trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = scrub(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message [key=value ...]``, secrets scrubbed."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, with the correlation keys (and trace id) the record has appended."""
        line = scrub(super().format(record))
        keys = [f"{key}={value}" for key, value in _correlation(record).items()]
        ids = current_trace_ids()
        if ids is not None:
            keys.append(f"trace_id={ids[0]}")
        if not keys:
            return line
        head, newline, rest = line.partition("\n")
        return f"{head} [{scrub(' '.join(keys))}]{newline}{rest}"
