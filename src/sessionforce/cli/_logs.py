"""What the CLI shows of library and server logs: one plain line per warning, tracebacks only with --debug.

The library installs no log handlers (it is a library); without any, Python's last-resort handler would
print each warning with its whole traceback. The CLI is the application, so it decides: warnings from
sessionforce as one ``warning: ...`` line each, and nothing from the uvicorn server of the built-in
emulator, which is an implementation detail of the command (its own errors reach the client as answers).

``--log-format json`` is for machines reading stderr (a log shipper around ``sessionforce run`` in CI): every
sessionforce record from info up (all with ``--debug``) as one JSON object per line, with the correlation
keys, through the formatter the gateway uses (:mod:`sessionforce._json_logs`).
"""

from __future__ import annotations

import logging
import sys

__all__ = ["chosen_log_format", "configure", "quiet_embedded_server"]

_chosen: str | None = None


class _OneLine(logging.Formatter):
    """``warning: <message>: <the exception's own message>``, on one line, without a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {record.exc_info[1]}"
        return " ".join(text.split())


def chosen_log_format() -> str | None:
    """The root ``--log-format`` given, if any (``serve`` takes it as its default)."""
    return _chosen


def configure(*, debug: bool, log_format: str | None = None) -> None:
    """Debug: every log record with its traceback. Otherwise: sessionforce's warnings, one line each.
    ``log_format="json"``: sessionforce's records (info and up, or all with debug) as JSON lines."""
    global _chosen
    _chosen = log_format
    if log_format == "json":
        from sessionforce._json_logs import JSONFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JSONFormatter())
        library = logging.getLogger("sessionforce")
        library.addHandler(handler)
        library.setLevel(logging.DEBUG if debug else logging.INFO)
        library.propagate = False
        return
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    handler.setLevel(logging.WARNING)
    library = logging.getLogger("sessionforce")
    library.addHandler(handler)
    library.propagate = False


def quiet_embedded_server(*, debug: bool) -> None:
    """The built-in emulator's uvicorn logs nothing the user must act on (e.g. in-flight requests cut at
    shutdown after Ctrl-C); with --debug it logs as usual."""
    if debug:
        return
    server = logging.getLogger("uvicorn")
    server.addHandler(logging.NullHandler())
    server.propagate = False
