"""The retry rules, pure: which failures may be resent (the verdict), how long to wait, what a
``Retry-After`` header asks for, and the one 423 policy.

Retry safety follows agent-api.md: a request is retried automatically only when it provably did not
reach the agent (connect failures, 429, 503), or when it is idempotent (the token request, ending a
session). A non-idempotent request (start session, send a turn) that was sent but got no answer is never
resent. A 423 ("a request is already in flight on this session", our own cancelled one included) did
not reach the agent either: every call on a session waits it out, with capped exponential backoff and
jitter, for at most ``RetryPolicy.locked_wait`` seconds, then raises ``SessionLocked``.
"""

from __future__ import annotations

import email.utils
import enum
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sessionforce.errors import InvalidArgument

__all__ = [
    "Failure",
    "RetryPolicy",
    "Verdict",
    "backoff_delay",
    "locked_delay",
    "parse_retry_after",
    "should_retry",
    "verdict",
    "verdict_name",
]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How automatic retries behave. Only requests that are safe to resend are ever retried.

    ``max_retries`` bounds the count and ``total_timeout`` the time spent waiting between attempts.
    A ``Retry-After`` longer than ``max_retry_after`` is not waited out: :class:`RateLimited` is raised
    with ``retry_after`` set, so the caller decides. ``locked_wait`` bounds the time a call waits for a
    session another request holds (423) before it raises :class:`SessionLocked`; 423 waits do not count
    against ``max_retries``.
    """

    max_retries: int = 3
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    total_timeout: float = 60.0
    max_retry_after: float = 60.0
    locked_wait: float = 30.0

    def __post_init__(self) -> None:
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidArgument(f"RetryPolicy.max_retries must be a whole number, 0 or more, got {retries!r}.")
        for name in ("backoff_initial", "backoff_max", "total_timeout", "max_retry_after", "locked_wait"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise InvalidArgument(f"RetryPolicy.{name} must be a number of seconds, 0 or more, got {value!r}.")


class Failure(enum.Enum):
    """How an attempt failed when no HTTP status came back."""

    NOT_SENT = "not_sent"
    """The connection was never established: the request provably did not reach the server."""
    NO_ANSWER = "no_answer"
    """The request was (or may have been) sent, but no complete answer came back."""
    FATAL = "fatal"
    """A failure that retrying cannot mend (e.g. a TLS certificate error)."""


class Verdict(enum.Enum):
    """What to do after a failed attempt."""

    RAISE = "raise"
    """Give up: raise the error (resending could duplicate the request, or cannot help)."""
    RETRY = "retry"
    """Resend after a backoff, within ``max_retries`` and ``total_timeout``."""
    WAIT_LOCKED = "wait_locked"
    """423: the session is busy with another request; resend the same request within ``locked_wait``."""


_RETRY_ALWAYS = frozenset({429, 503})
_RETRY_IF_IDEMPOTENT = frozenset({500, 502, 504})


def verdict(*, status: int | None, failure: Failure | None, idempotent: bool) -> Verdict:
    """The retry verdict, a pure function of what happened and whether resending is safe."""
    if failure is Failure.NOT_SENT:
        return Verdict.RETRY
    if failure is Failure.NO_ANSWER:
        return Verdict.RETRY if idempotent else Verdict.RAISE
    if failure is Failure.FATAL:
        return Verdict.RAISE
    if status == 423:
        return Verdict.WAIT_LOCKED
    if status in _RETRY_ALWAYS or (idempotent and status in _RETRY_IF_IDEMPOTENT):
        return Verdict.RETRY
    return Verdict.RAISE


def verdict_name(status: int | None, failure: Failure | None, idempotent: bool, authenticated: bool) -> str:
    """The verdict on one attempt as its span tells it: ``refresh`` for a 401 on an authenticated call (the
    token is refreshed and the request sent once more), else the verdict's value."""
    if status == 401 and authenticated:
        return "refresh"
    return verdict(status=status, failure=failure, idempotent=idempotent).value


def should_retry(*, status: int | None, failure: Failure | None, idempotent: bool) -> bool:
    """Whether the verdict resends at all (after a backoff or a 423 wait)."""
    return verdict(status=status, failure=failure, idempotent=idempotent) is not Verdict.RAISE


def backoff_delay(attempt: int, policy: RetryPolicy, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt + 1``: ``Retry-After`` when given, else full jitter."""
    if retry_after is not None:
        return max(0.0, retry_after)
    return rng.uniform(0.0, min(policy.backoff_max, policy.backoff_initial * (2**attempt)))


_LOCKED_CAP = 2.0
"""The longest pause between two tries on a locked session: a 423 clears the moment the earlier request
ends, so polling stays brisk (at most one request per second on average per waiting call)."""


def locked_delay(
    waits: int, waited: float, policy: RetryPolicy, rng: random.Random, retry_after: float | None = None
) -> float | None:
    """Seconds to wait before resending a request refused with 423 for the ``waits + 1``-th time, having
    waited ``waited`` seconds since the first 423; ``None`` once ``locked_wait`` is spent.

    Capped exponential backoff with jitter (half to all of ``min(2 s, backoff_initial * 2**waits)``), or the
    server's ``Retry-After``; never past the budget, so the last try lands on it.
    """
    remaining = policy.locked_wait - waited
    if remaining <= 0:
        return None
    if retry_after is not None:
        delay = max(0.0, retry_after)
    else:
        delay = min(_LOCKED_CAP, policy.backoff_initial * 2**waits) * (0.5 + rng.random() / 2)
    return min(delay, remaining)


def parse_retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Read ``retry-after-ms``, then ``Retry-After`` as seconds, then as an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now())
