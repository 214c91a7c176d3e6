"""The emulator's state: clock, tokens, sessions, rate window and counters.

Everything runs on the server's one event loop, so no locks are needed. The hot path is O(1):
sessions sit in a dict by id and, while active, in an ``OrderedDict`` kept in order of last activity,
so idle expiry only ever looks at the front (amortized O(1)) instead of scanning every session.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from sessionforce.emulator.agents import EmulatedAgent
from sessionforce.emulator.errors import ApiError
from sessionforce.emulator.faults import FaultSet


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
        """Move the clock forward (never back: expiry must stay monotonic)."""
        self.offset += max(0.0, seconds)


@dataclass
class EmulatorConfig:
    """Settings fixed at start-up (the admin surface can reset state, not these)."""

    client_id: str = "sessionforce-emulator"
    client_secret: str = "emulator-secret"
    idle_timeout: float = 900.0
    token_ttl: float = 7200.0
    max_sessions: int | None = None
    requests_per_minute: int | None = None
    seed: int = 0
    #: How many accepted turns the counters keep (oldest dropped first; ``turnsDropped`` counts them).
    max_recorded_turns: int = 1_000_000
    #: Keep every message of every session for ``GET /__emulator/sessions/{id}`` (off for big benchmarks).
    record_transcripts: bool = True


@dataclass(eq=False)
class Session:
    """One server-side session."""

    session_id: str
    external_key: str
    agent: EmulatedAgent
    created: float
    last_activity: float
    chunk_text: bool
    variables: dict[str, Any]
    state: str = "active"  # active | ended | expired
    end_reason: str | None = None
    last_sequence_id: int = 0
    turns: int = 0
    in_flight: bool = False
    memory: dict[str, Any] = field(default_factory=dict)
    feedback_ids: set[str] = field(default_factory=set)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The session as ``GET /__emulator/sessions`` lists it."""
        return {
            "sessionId": self.session_id,
            "externalSessionKey": self.external_key,
            "agentId": self.agent.id,
            "state": self.state,
            "lastSequenceId": self.last_sequence_id,
            "turns": self.turns,
            "endReason": self.end_reason,
            "inFlight": self.in_flight,
            "feedback": self.feedback,
        }


class Counters:
    """Requests by route and status, 423s, session totals and every accepted turn."""

    def __init__(self, max_turns: int) -> None:
        self.requests: Counter[str] = Counter()
        self.locked = 0
        self.opened = 0
        self.ended = 0
        self.expired = 0
        self.turns: deque[tuple[str, int, str, str, str]] = deque(maxlen=max_turns)
        self.turns_recorded = 0

    def record_turn(self, session_id: str, sequence_id: int, kind: str, text: str, route: str) -> None:
        """Note an accepted turn (kept as a tuple: the benchmarks record millions)."""
        self.turns.append((session_id, sequence_id, kind, text, route))
        self.turns_recorded += 1

    def snapshot(self, open_sessions: int) -> dict[str, Any]:
        """The counters as ``GET /__emulator/counters`` answers."""
        return {
            "requests": dict(self.requests),
            "locked": self.locked,
            "sessions": {"open": open_sessions, "started": self.opened, "ended": self.ended,
                         "expired": self.expired},
            "turns": [{"sessionId": s, "sequenceId": q, "type": k, "text": t, "route": r}
                      for s, q, k, t, r in self.turns],
            "turnsDropped": self.turns_recorded - len(self.turns),
        }


class EmulatorState:
    """All mutable state of one emulator, plus the rules that read it (tokens, expiry, limits)."""

    def __init__(self, config: EmulatorConfig, agents: list[EmulatedAgent], faults: FaultSet) -> None:
        self.config = config
        self.agents = {agent.id: agent for agent in agents}
        self.clock = Clock()
        self.reset()
        self.faults = faults

    def reset(self) -> None:
        """Forget sessions, tokens, counters and faults, and rewind the clock (agents and settings stay)."""
        self.clock.offset = 0.0  # safe: nothing that was timed on the old clock survives
        self.tokens: dict[str, float] = {}
        self.sessions: dict[str, Session] = {}
        self.active: OrderedDict[str, Session] = OrderedDict()
        self.counters = Counters(self.config.max_recorded_turns)
        self.request_times: deque[float] = deque()
        self.faults = FaultSet.empty(self.config.seed)

    # --- tokens -------------------------------------------------------------------------------
    def issue_token(self) -> str:
        """A new bearer token, valid for ``token_ttl`` seconds of emulator time."""
        token = "00DSF0000000EMU!" + secrets.token_urlsafe(24)
        self.tokens[token] = self.clock.now()
        return token

    def check_token(self, authorization: str | None) -> str:
        """The caller's token if valid; else ApiError 401 (missing, unknown or expired)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(401, "Missing bearer token: send 'Authorization: Bearer <access_token>'.")
        token = authorization[7:].strip()
        issued = self.tokens.get(token)
        if issued is None:
            raise ApiError(401, "Session expired or invalid: unknown or revoked access token.")
        if self.clock.now() - issued > self.config.token_ttl:
            del self.tokens[token]
            raise ApiError(401, "Session expired or invalid: the access token has expired.")
        return token

    # --- sessions -----------------------------------------------------------------------------
    def sweep(self) -> None:
        """Expire sessions idle longer than ``idle_timeout`` (front of the activity order only)."""
        now = self.clock.now()
        timeout = self.config.idle_timeout
        while self.active:
            session = next(iter(self.active.values()))
            if now - session.last_activity <= timeout:
                break
            if session.in_flight:  # a turn is running: that is activity (now fresh, so the loop ends)
                self.touch(session)
                continue
            self.close(session, "expired", "Expiration")

    def touch(self, session: Session) -> None:
        """Record activity on ``session`` (keeps the activity order sorted)."""
        session.last_activity = self.clock.now()
        # A turn may finish after its session was expired or the state reset: then it is not active.
        if self.active.get(session.session_id) is session:
            self.active.move_to_end(session.session_id)

    def live_session(self, session_id: str) -> Session:
        """The active session ``session_id``, or ApiError 404 (unknown, ended or expired)."""
        self.sweep()
        session = self.active.get(session_id)
        if session is None:
            raise ApiError(404, f"V6Session not found for sessionId: {session_id}")
        return session

    def add_session(self, session: Session) -> None:
        """Register a newly started session."""
        self.sessions[session.session_id] = session
        self.active[session.session_id] = session
        self.counters.opened += 1

    def close(self, session: Session, state: str, reason: str | None) -> None:
        """Move an active session to ``ended`` or ``expired`` (final: it answers 404 from now on)."""
        if session.state != "active" or self.sessions.get(session.session_id) is not session:
            return  # already final, or from before a reset
        session.state = state
        session.end_reason = reason
        self.active.pop(session.session_id, None)
        if state == "expired":
            self.counters.expired += 1
        else:
            self.counters.ended += 1

    def check_session_capacity(self) -> None:
        """ApiError 429 if ``max_sessions`` sessions are already active."""
        limit = self.config.max_sessions
        if limit is None:
            return
        self.sweep()
        if len(self.active) >= limit:
            oldest = next(iter(self.active.values()))
            wait = oldest.last_activity + self.config.idle_timeout - self.clock.now()
            raise ApiError(429, f"Too many active sessions: the limit is {limit}. End a session or retry "
                           "later.", retry_after=max(1.0, wait))

    def check_rate(self) -> None:
        """ApiError 429 if more than ``requests_per_minute`` API requests came in the last 60 s."""
        limit = self.config.requests_per_minute
        if limit is None:
            return
        now = self.clock.now()
        window = self.request_times
        while window and now - window[0] >= 60.0:
            window.popleft()
        if len(window) >= limit:
            raise ApiError(429, f"Rate limit exceeded: {limit} requests per minute.",
                           retry_after=window[0] + 60.0 - now)
        window.append(now)
