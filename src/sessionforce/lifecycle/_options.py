"""What a conversation is configured with."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sessionforce.agent_api import VariableInput
from sessionforce.errors import ConfigError
from sessionforce.lifecycle._resume import NO_RESUME, ResumePolicy

__all__ = ["ConversationOptions"]


@dataclass(frozen=True, slots=True)
class ConversationOptions:
    """How a conversation behaves. Every field has a safe default."""

    lock_wait: float = 30.0
    """Seconds a turn waits for the one before it (in this process and in others) before ConversationBusy."""
    lease_ttl: float = 30.0
    """Seconds a store lease lives without renewal; renewed every third of it while a turn runs."""
    idle_timeout: float | None = None
    """Start a fresh session before sending when the last activity is older than this (seconds), rather
    than waiting for the server's 404. ``None``: rely on the 404."""
    resume: ResumePolicy = NO_RESUME
    on_agent_end: Literal["raise", "restart"] = "raise"
    """After the agent ended the session: ``raise`` ConversationEnded on the next send, or ``restart``."""
    variables: Sequence[VariableInput] = ()
    """Variables every session of this conversation starts with."""
    streaming: bool = True
    """Ask for streaming support when starting sessions."""
    tz: str | None = None
    bypass_user: bool = True
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        for name in ("lock_wait", "lease_ttl"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a number of seconds greater than 0.")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ConfigError("idle_timeout must be a number of seconds greater than 0, or None.")
        if self.on_agent_end not in ("raise", "restart"):
            raise ConfigError(f"on_agent_end={self.on_agent_end!r}: use 'raise' or 'restart'.")
