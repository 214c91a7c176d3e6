"""The retry verdict and backoff: pure functions, one assertion per row of agent-api.md's table."""

from __future__ import annotations

import random

import pytest

from sessionforce.agent_api._retry import Failure, RetryPolicy, backoff_delay, parse_retry_after, should_retry


@pytest.mark.parametrize(
    ("status", "failure", "idempotent", "expected"),
    [
        (None, Failure.NOT_SENT, False, True),  # connect failed: provably not delivered
        (None, Failure.NO_ANSWER, False, False),  # sent, no answer: a turn may have run -> DeliveryUnknown
        (None, Failure.NO_ANSWER, True, True),  # idempotent (token, end session): safe to resend
        (None, Failure.FATAL, True, False),  # TLS failure: retrying cannot help
        (423, None, False, True),
        (429, None, False, True),
        (503, None, False, True),
        (500, None, False, False),  # the turn may have reached the agent
        (502, None, False, False),
        (504, None, False, False),
        (500, None, True, True),
        (400, None, True, False),
        (401, None, False, False),  # handled by the refresh-once rule, not by retries
        (403, None, False, False),
        (404, None, False, False),
    ],
)
def test_should_retry(status: int | None, failure: Failure | None, idempotent: bool, expected: bool) -> None:
    assert should_retry(status=status, failure=failure, idempotent=idempotent) is expected


def test_full_jitter_stays_within_the_exponential_cap() -> None:
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=4.0)
    rng = random.Random(1)
    for attempt, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        delays = [backoff_delay(attempt, policy, None, rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # full jitter spreads over the whole range


def test_retry_after_wins_over_backoff() -> None:
    assert backoff_delay(0, RetryPolicy(), 7.0, random.Random()) == 7.0


def test_parse_retry_after_three_ways() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "Wed, 25 Nov 2026 03:00:10 GMT"}, now=lambda: 1795575600.0) == 10.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
