"""Conversation events and the hooks that receive them."""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sessionforce._logging import log_context

__all__ = ["ConversationEvent", "EventHook", "EventKind", "Hooks"]

logger = logging.getLogger("sessionforce.conversation")


class EventKind(enum.StrEnum):
    """What happened in a conversation."""

    SESSION_STARTED = "session_started"
    """A server session started; ``detail["greeting"]`` is its greeting :class:`~sessionforce.agent_api.Reply`."""
    TURN_SENT = "turn_sent"
    REPLY = "reply"
    RESUMED = "resumed"
    """A new session replaced one that expired, went idle or was ended; the turn carries on there."""
    ENDED = "ended"
    """A server session ended (on request, by the agent, or by the reaper)."""
    DELIVERY_UNKNOWN = "delivery_unknown"
    """A turn's fate is unknown (sent without an answer, or its sender died mid-turn)."""


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """One event, with the ids that locate it."""

    kind: EventKind
    conversation_id: str
    session_id: str | None = None
    external_session_key: str | None = None
    sequence_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


EventHook = Callable[[ConversationEvent], Awaitable[None] | None]
"""A hook: a plain or async function taking a :class:`ConversationEvent`."""


class Hooks:
    """The hooks of a conversation, by event kind. A failing hook is logged, never breaks a turn."""

    __slots__ = ("_hooks",)

    def __init__(self, hooks: Iterable[tuple[EventKind | str, EventHook]] = ()) -> None:
        self._hooks: dict[EventKind, list[EventHook]] = {}
        for kind, hook in hooks:
            self.add(kind, hook)

    def add(self, kind: EventKind | str, hook: EventHook) -> None:
        """Call ``hook`` on every event of ``kind`` (``"*"`` for all)."""
        kinds = list(EventKind) if kind == "*" else [EventKind(kind)]
        for k in kinds:
            self._hooks.setdefault(k, []).append(hook)

    def __bool__(self) -> bool:
        return bool(self._hooks)

    async def emit(self, event: ConversationEvent) -> None:
        """Run the hooks for ``event`` in order."""
        for hook in self._hooks.get(event.kind, ()):
            try:
                result = hook(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("a %s hook failed; the conversation goes on", event.kind.value, extra=log_context())
