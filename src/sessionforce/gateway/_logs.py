"""Log records for operators: one line each, text or JSON, with the correlation keys when a record has them.

The library's records carry ``conversationId``, ``externalSessionKey``, ``sessionId`` and ``sequenceId``
(``extra=log_context()``); the gateway's add ``messageId``; the formatters (shared with the CLI) are in
:mod:`sessionforce._json_logs`, with the trace and span ids and the redaction. Tracebacks are kept; request
URLs are never logged (an ``EventSource`` URL carries its token in ``?access_token=``), so uvicorn's access
log stays off.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from sessionforce._json_logs import CORRELATION_KEYS, JSONFormatter, TextFormatter

__all__ = ["CORRELATION_KEYS", "configure_logging"]


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
