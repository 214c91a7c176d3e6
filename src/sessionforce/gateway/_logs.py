"""Log records for operators: one line each, text or JSON, with the correlation keys when a record has them.

The library's records carry ``conversationId``, ``externalSessionKey``, ``sessionId`` and ``sequenceId``
(``extra=log_context()``); the gateway's add ``messageId``. Tracebacks are kept; request URLs are never
logged (an ``EventSource`` URL carries its token in ``?access_token=``), so uvicorn's access log stays off.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

__all__ = ["CORRELATION_KEYS", "configure_logging"]

CORRELATION_KEYS = ("conversationId", "messageId", "externalSessionKey", "sessionId", "sequenceId")


class JSONFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", <correlation keys>, "exception"?}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object, no line breaks inside."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        for key in CORRELATION_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message [key=value ...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, with the correlation keys the record has appended."""
        line = super().format(record)
        keys = [f"{key}={getattr(record, key)}" for key in CORRELATION_KEYS if getattr(record, key, None) is not None]
        if not keys:
            return line
        head, newline, rest = line.partition("\n")
        return f"{head} [{' '.join(keys)}]{newline}{rest}"


def configure_logging(form: Literal["text", "json"] = "text", level: str = "info") -> None:
    """Send every record (the library's, the gateway's, uvicorn's) to stderr in ``form``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if form == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # A host application (the CLI) may have routed these elsewhere or silenced them (its one-line warnings,
    # its quiet built-in emulator): a gateway's operators get every record, through this one handler.
    for name in ("sessionforce", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
