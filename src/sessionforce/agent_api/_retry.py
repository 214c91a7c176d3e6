"""The retry rules, pure: which failures may be resent (the verdict), how long to wait, and what a
``Retry-After`` header asks for.

Retry safety follows agent-api.md: a request is retried automatically only when it provably did not
reach the agent (connect failures, 423, 429, 503), or when it is idempotent (the token request, ending a
session). A non-idempotent request (start session, send a turn) that was sent but got no answer is never
resent.
"""

from __future__ import annotations

import email.utils
import enum
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Failure", "RetryPolicy", "backoff_delay", "parse_retry_after", "should_retry"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How automatic retries behave. Only requests that are safe to resend are ever retried.

    ``max_retries`` bounds the count and ``total_timeout`` the time spent waiting between attempts.
    A ``Retry-After`` longer than ``max_retry_after`` is not waited out: :class:`RateLimited` is raised
    with ``retry_after`` set, so the caller decides.
    """

    max_retries: int = 3
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    total_timeout: float = 60.0
    max_retry_after: float = 60.0


class Failure(enum.Enum):
    """How an attempt failed when no HTTP status came back."""

    NOT_SENT = "not_sent"
    """The connection was never established: the request provably did not reach the server."""
    NO_ANSWER = "no_answer"
    """The request was (or may have been) sent, but no complete answer came back."""
    FATAL = "fatal"
    """A failure that retrying cannot mend (e.g. a TLS certificate error)."""


_ALWAYS_RETRY = frozenset({423, 429, 503})
_IDEMPOTENT_RETRY = frozenset({500, 502, 504})


def should_retry(*, status: int | None, failure: Failure | None, idempotent: bool) -> bool:
    """The retry verdict, a pure function of what happened and whether resending is safe."""
    if failure is Failure.NOT_SENT:
        return True
    if failure is Failure.NO_ANSWER:
        return idempotent
    if failure is Failure.FATAL:
        return False
    if status in _ALWAYS_RETRY:
        return True
    return idempotent and status in _IDEMPOTENT_RETRY


def backoff_delay(attempt: int, policy: RetryPolicy, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt + 1``: ``Retry-After`` when given, else full jitter."""
    if retry_after is not None:
        return max(0.0, retry_after)
    return rng.uniform(0.0, min(policy.backoff_max, policy.backoff_initial * (2**attempt)))


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
