"""Log context: ``externalSessionKey``, ``sessionId`` and ``sequenceId`` on every sessionforce log record.

Each id is there under its snake_case name too (``conversation_id``, ``external_session_key``,
``session_id``, ``sequence_id``, ``agent_id``): the names structured-log formatters emit (docs/observability.md).

The conversation layer sets the context for the duration of a turn (a contextvar, so concurrent turns on
one event loop never see each other's ids); every module logs with ``extra=log_context()``. The library
configures no handlers.
"""

from __future__ import annotations

import contextvars
from typing import Any

__all__ = ["enter_log_context", "log_context", "restore_log_context", "update_log_context"]

_SNAKE = {
    "externalSessionKey": "external_session_key", "sessionId": "session_id", "sequenceId": "sequence_id",
    "conversationId": "conversation_id", "agentId": "agent_id",
}
_EMPTY: dict[str, Any] = dict.fromkeys(_SNAKE)

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("sessionforce_log_context", default=_EMPTY)


def log_context() -> dict[str, Any]:
    """The ids of the turn being run, under both names, for ``logger.x(..., extra=log_context())`` (a new
    dict: made only when a record is logged, so the turns pay nothing for the second names)."""
    ids = _context.get()
    return {**ids, **{snake: ids.get(key) for key, snake in _SNAKE.items()}}


def enter_log_context(**ids: Any) -> contextvars.Token[dict[str, Any]]:
    """Set (some of) the ids in a fresh dict owned by the caller's block (a turn); returns what to give
    :func:`restore_log_context` afterwards."""
    return _context.set({**_context.get(), **ids})


def restore_log_context(token: contextvars.Token[dict[str, Any]]) -> None:
    """Put back the ids :func:`enter_log_context` replaced.

    By ``Token.reset()`` where possible: it leaves the task's context as it was, while setting the old
    value back would keep a context mapping alive for as long as the task lives (two objects more for
    the collector per long-lived task that ever ran a turn). A turn finished from another context (a
    stream closed by the garbage collector) cannot reset, and sets the old value back instead.
    """
    try:
        _context.reset(token)
    except ValueError:
        _context.set(_EMPTY if token.old_value is contextvars.Token.MISSING else token.old_value)


def update_log_context(**ids: Any) -> None:
    """Change ids inside a block bound by :func:`enter_log_context` (e.g. a new session mid-turn).

    In place: the block owns its dict, and setting the variable anew would make a new context mapping
    each time, which every timer and task copied from the context meanwhile keeps alive (garbage for
    the collector, per turn). Log records copy ``extra`` when made, so none sees a later change.
    """
    current = _context.get()
    if current is _EMPTY:  # outside any block: never change the shared default
        _context.set({**_EMPTY, **ids})
    else:
        current.update(ids)
