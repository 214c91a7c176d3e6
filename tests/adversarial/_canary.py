"""Catching leaks: every log record kept whole, every exception taken apart, and a scan for planted values."""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Iterable, Iterator

__all__ = ["Canaries", "LogCapture", "exception_texts", "hits"]

# Loggers of the *server* side (the emulator plays the Agent API; what it logs is the remote end's
# business, as a real org's logs would be), left out of the client's log scan.
_SERVER_LOGGERS = ("uvicorn", "sessionforce.emulator")


class Canaries:
    """Unique values planted where secrets live; none of them may ever come out."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex
        self.client_secret = f"canary-secret-{tag}"
        self.access_token = f"canary-token-{tag}"
        self.redis_password = f"canary-redispw-{tag}"

    def __iter__(self) -> Iterator[str]:
        return iter((self.client_secret, self.access_token, self.redis_password))

    def report(self, texts: Iterable[str]) -> str:
        """"" when no planted value is in ``texts``; else, per value, how many texts hold it and two of them."""
        texts = list(texts)
        lines = []
        for name in ("client_secret", "access_token", "redis_password"):
            found = hits([getattr(self, name)], texts)
            if found:
                lines.append(f"{name}: in {len(found)} text(s), e.g. " + " | ".join(found[:2]))
        return "\n".join(lines)


class LogCapture(logging.Handler):
    """Keeps every record at DEBUG and above: its formatted message, its raw args, its exception with the
    traceback, and every attribute (``extra`` fields included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SERVER_LOGGERS):
            return
        self.records.append(record)
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string is still a record to scan
            message = f"{record.msg!r} % {record.args!r} ({exc!r})"
        parts = [message, repr(record.msg), repr(record.args), repr(record.__dict__)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(record.exc_info[1])))
            parts += exception_texts(record.exc_info[1])
        self.texts.append("\n".join(parts))


def exception_texts(exc: BaseException | None) -> list[str]:
    """What an app could print of ``exc``: ``str``, ``repr``, args, the raw body and reply it carries, the
    formatted traceback, for it and every exception in its ``__cause__``/``__context__`` chain."""
    texts: list[str] = []
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        for name in ("body", "message", "partial_text"):
            value = getattr(current, name, None)
            if value is not None:
                texts.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
        reply = getattr(current, "reply", None)
        if reply is not None:
            texts.append(repr(reply))
        texts.append("".join(traceback.format_exception(current)))
        todo += [current.__cause__, current.__context__]
    return texts


def hits(needles: Iterable[str], texts: Iterable[str]) -> list[str]:
    """Each text holding any needle, shortened around the first hit, for the failure message."""
    found: list[str] = []
    needles = list(needles)
    for text in texts:
        for needle in needles:
            at = text.find(needle)
            if at >= 0:
                found.append(f"...{text[max(0, at - 120):at + len(needle) + 40]}...")
                break
    return found
