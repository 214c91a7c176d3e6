"""The emulator's settings (checked when built, so a bad value fails at start-up) and its clock."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

#: The furthest the clock may be moved forward in total: a century is past every lifetime we model,
#: and keeping the offset well inside float and datetime ranges keeps every timestamp we print valid.
MAX_CLOCK_OFFSET = 100 * 365 * 86_400.0

TOKEN_FORMATS = ("jwt", "opaque")


class EmulatorConfigError(ValueError):
    """An emulator setting is invalid; ``field`` names it and the message says what is allowed."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Clock:
    """Real monotonic time plus an offset that ``POST /__emulator/clock/advance`` moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        """Seconds on the emulator's monotonic clock."""
        return time.monotonic() + self.offset

    def wall_ms(self) -> int:
        """Milliseconds since the epoch, shifted by the same offset (for ``issued_at``, timestamps)."""
        return int((time.time() + self.offset) * 1000)

    def advance(self, seconds: float) -> None:
        """Move the clock forward; ValueError (clock untouched) for a negative, non-finite or too large step.

        Never back: expiry must stay monotonic. Bounded, so one bad request cannot push the offset to
        infinity and break every later timestamp (the token route formats one on every call).
        """
        try:
            seconds = check_seconds(seconds, allow_zero=True)
        except ValueError as exc:
            raise ValueError(f"seconds: {exc}") from None
        if self.offset + seconds > MAX_CLOCK_OFFSET:
            raise ValueError(f"seconds: the clock may move at most {MAX_CLOCK_OFFSET:.0f} s in total "
                             f"({self.offset:.0f} s so far); got {seconds!r}")
        self.offset += seconds


def check_seconds(value: object, *, allow_zero: bool = False) -> float:
    """``value`` as a finite number of seconds (> 0, or >= 0 with ``allow_zero``); else ValueError saying why."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number of seconds, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise ValueError(f"{_short(value)} is too large; at most {MAX_CLOCK_OFFSET:.0f}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number of seconds, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        raise ValueError(f"expected a number of seconds {'>=' if allow_zero else '>'} 0, got {value!r}")
    if number > MAX_CLOCK_OFFSET:
        raise ValueError(f"{_short(value)} is too large; at most {MAX_CLOCK_OFFSET:.0f}")
    return number


def _short(value: object) -> str:
    """``repr(value)``, cut to 40 characters (a 400-digit number must not fill the error message)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


@dataclass
class EmulatorConfig:
    """Settings fixed at start-up (the admin surface can reset state, not these); checked when built."""

    client_id: str = "sessionforce-emulator"
    client_secret: str = "emulator-secret"
    #: Seconds of inactivity before a session expires.
    idle_timeout: float = 900.0
    #: Seconds an access token stays valid.
    token_ttl: float = 7200.0
    max_sessions: int | None = None
    requests_per_minute: int | None = None
    seed: int = 0
    #: How many accepted turns the counters keep (oldest dropped first; ``turnsDropped`` counts them).
    max_recorded_turns: int = 100_000
    #: Keep every message of every active session for ``GET /__emulator/sessions/{id}`` (off for big benchmarks).
    record_transcripts: bool = True
    #: Reject (400) every deviation from the documented request shapes instead of only recording it.
    strict: bool = False
    #: ``jwt`` (what the Agent API needs) or ``opaque`` (the token kind it answers 404 to).
    token_format: str = "jwt"
    #: Serve the Agent API on a second port, named by the token response's ``api_instance_url`` (a
    #: sandbox or scratch org): the My Domain port then answers Agent API paths with 404.
    separate_api_host: bool = False
    #: A turn that runs longer than this answers 500, like the real service after 120 s.
    request_timeout: float = 120.0
    #: Largest request body accepted (413 beyond).
    max_body_bytes: int = 1_048_576
    #: Deepest JSON nesting accepted in a request body (400 beyond).
    max_json_depth: int = 64
    #: Ended and expired sessions are kept (as small summaries) for at most this many sessions ...
    max_closed_sessions: int = 10_000
    #: ... and at most this many seconds of emulator time, then forgotten (they answer 404 either way).
    closed_session_ttl: float = 86_400.0

    def __post_init__(self) -> None:
        for name in ("client_id", "client_secret"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise EmulatorConfigError(name, f"expected a non-empty string, got {value!r}")
        for name in ("idle_timeout", "token_ttl", "request_timeout", "closed_session_ttl"):
            try:
                setattr(self, name, check_seconds(getattr(self, name)))
            except ValueError as exc:
                raise EmulatorConfigError(name, str(exc)) from None
        for name, optional in (("max_sessions", True), ("requests_per_minute", True), ("max_recorded_turns", False),
                               ("max_body_bytes", False), ("max_json_depth", False), ("max_closed_sessions", False)):
            value = getattr(self, name)
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EmulatorConfigError(name, f"expected a whole number >= 1{' or None' if optional else ''}, "
                                                f"got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise EmulatorConfigError("seed", f"expected an integer, got {self.seed!r}")
        if self.token_format not in TOKEN_FORMATS:
            raise EmulatorConfigError("token_format",
                                      f"expected one of {list(TOKEN_FORMATS)}, got {self.token_format!r}")
        for flag in ("record_transcripts", "strict", "separate_api_host"):
            if not isinstance(getattr(self, flag), bool):
                raise EmulatorConfigError(flag, f"expected true or false, got {getattr(self, flag)!r}")
