"""The emulator's state: clock, tokens, sessions, rate window, counters and recorded deviations.

Everything runs on the server's one event loop, so no locks are needed. The hot path is O(1):
sessions sit in a dict by id and, while active, in an ``OrderedDict`` kept in order of last activity,
so idle expiry only ever looks at the front (amortized O(1)) instead of scanning every session. Closed
sessions shrink to summaries, kept in close order and evicted from the front (bounded count and age);
tokens are kept in issue order and evicted from the front once expired. Memory stays bounded however
long the emulator runs.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from typing import Any

from sessionforce.emulator._agents import EmulatedAgent
from sessionforce.emulator._config import Clock, EmulatorConfig
from sessionforce.emulator._errors import ApiError
from sessionforce.emulator._faults import FaultSet
from sessionforce.emulator._sessions import ClosedSession, Session

#: How many deviations ``GET /__emulator/deviations`` keeps (oldest dropped first).
MAX_DEVIATIONS = 1000


class Counters:
    """Requests by route and status, 423s, session totals, every accepted turn, faults and tokens."""

    def __init__(self, max_turns: int) -> None:
        self.requests: Counter[str] = Counter()
        self.turn_routes: Counter[str] = Counter()
        """Accepted turns by route, all of them (``turns`` keeps only the last ``max_turns``)."""
        self.faults: Counter[str] = Counter()
        """Requests some fault rule acted on, by route."""
        self.tokens: Counter[str] = Counter()
        """Access tokens issued, by format (``jwt`` / ``opaque``)."""
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
        self.turn_routes[route] += 1

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
        #: The separate Agent API port (``separate_api_host``), set by the server once bound; else None.
        self.api_port: int | None = None
        self.clock = Clock()
        self.reset()
        self.faults = faults

    def reset(self) -> None:
        """Forget sessions, tokens, counters, deviations and faults, rewind the clock, and go back to the
        configured strictness (agents and settings stay)."""
        self.clock.offset = 0.0  # safe: nothing that was timed on the old clock survives
        #: token -> (issued at, is it JWT-shaped), in issue order (so expiry pops from the front).
        self.tokens: dict[str, tuple[float, bool]] = {}
        self.sessions: dict[str, Session | ClosedSession] = {}
        self.active: OrderedDict[str, Session] = OrderedDict()
        #: Closed session ids in close order, for eviction from the front.
        self.closed: OrderedDict[str, float] = OrderedDict()
        self.counters = Counters(self.config.max_recorded_turns)
        self.request_times: deque[float] = deque()
        self.faults = FaultSet.empty(self.config.seed)
        self.strict = self.config.strict
        self.deviations: deque[dict[str, Any]] = deque(maxlen=MAX_DEVIATIONS)
        self.deviations_recorded = 0

    # --- tokens -------------------------------------------------------------------------------
    def add_token(self, token: str, *, jwt: bool) -> None:
        """Remember an issued token (valid for ``token_ttl`` seconds of emulator time); forget expired ones."""
        now = self.clock.now()
        ttl = self.config.token_ttl
        while self.tokens:
            oldest, (issued, _) = next(iter(self.tokens.items()))
            if now - issued <= ttl:
                break
            del self.tokens[oldest]
        self.tokens[token] = (now, jwt)
        self.counters.tokens["jwt" if jwt else "opaque"] += 1

    def check_token(self, authorization: str | None) -> bool:
        """Whether the caller's valid token is JWT-shaped; ApiError 401 if it is missing, unknown or expired."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(401, "Missing bearer token: send 'Authorization: Bearer <access_token>'.")
        token = authorization[7:].strip()
        entry = self.tokens.get(token)
        if entry is None:
            raise ApiError(401, "Session expired or invalid: unknown or revoked access token.")
        if self.clock.now() - entry[0] > self.config.token_ttl:
            del self.tokens[token]
            raise ApiError(401, "Session expired or invalid: the access token has expired.")
        return entry[1]

    # --- deviations ---------------------------------------------------------------------------
    def record_deviations(self, route: str, deviations: list[str]) -> None:
        """Note requests that strayed from the documented shapes (kept for ``GET /__emulator/deviations``)."""
        for deviation in deviations:
            self.deviations.append({"route": route, "deviation": deviation, "timestamp": self.clock.wall_ms()})
            self.deviations_recorded += 1

    # --- sessions -----------------------------------------------------------------------------
    def sweep(self) -> None:
        """Expire sessions idle longer than ``idle_timeout`` (front of the activity order only), and
        forget closed sessions past ``closed_session_ttl``."""
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
        self._evict_closed(now)

    def _evict_closed(self, now: float) -> None:
        limit, ttl = self.config.max_closed_sessions, self.config.closed_session_ttl
        closed = self.closed
        while closed:
            session_id, closed_at = next(iter(closed.items()))
            if len(closed) <= limit and now - closed_at <= ttl:
                break
            del closed[session_id]
            self.sessions.pop(session_id, None)

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
        """Move an active session to ``ended`` or ``expired`` (final: it answers 404 from now on) and
        keep only its summary."""
        if session.state != "active" or self.sessions.get(session.session_id) is not session:
            return  # already final, or from before a reset
        session.state = state
        session.end_reason = reason
        self.active.pop(session.session_id, None)
        now = self.clock.now()
        self.sessions[session.session_id] = session.closed(state, reason, now)
        self.closed[session.session_id] = now
        self._evict_closed(now)
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
