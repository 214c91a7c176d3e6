"""The retry verdict, the backoff and the one 423 policy: pure functions, one row per agent-api.md row,
time and randomness injected (nothing here sleeps)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from sessionforce.agent_api import Timeouts
from sessionforce.agent_api._retry import (
    Failure,
    RetryPolicy,
    Verdict,
    backoff_delay,
    locked_delay,
    parse_retry_after,
    should_retry,
    verdict,
)
from sessionforce.errors import InvalidArgument

R, RETRY, WAIT = Verdict.RAISE, Verdict.RETRY, Verdict.WAIT_LOCKED


@pytest.mark.parametrize(
    ("status", "failure", "idempotent", "expected"),
    [
        (None, Failure.NOT_SENT, False, RETRY),  # connect failed: provably not delivered
        (None, Failure.NO_ANSWER, False, R),  # sent, no answer: a turn may have run -> DeliveryUnknown
        (None, Failure.NO_ANSWER, True, RETRY),  # idempotent (token, end session): safe to resend
        (None, Failure.FATAL, True, R),  # TLS failure: retrying cannot help
        (400, None, False, R),  # 400: malformed / bad sequenceId: never retry blindly
        (400, None, True, R),
        (401, None, False, R),  # handled by the refresh-once rule, not by retries
        (403, None, False, R),
        (404, None, False, R),  # on send: the lifecycle starts a new session and resumes
        (423, None, False, WAIT),  # in flight on the session: wait it out within locked_wait
        (423, None, True, WAIT),  # ending a session our cancelled turn still locks
        (429, None, False, RETRY),  # rate limited: back off (Retry-After)
        (500, None, False, R),  # the turn may have reached the agent
        (502, None, False, R),
        (503, None, False, RETRY),  # the request was rejected: not delivered
        (504, None, False, R),
        (500, None, True, RETRY),
        (502, None, True, RETRY),
        (504, None, True, RETRY),
    ],
)
def test_the_verdict(status: int | None, failure: Failure | None, idempotent: bool, expected: Verdict) -> None:
    assert verdict(status=status, failure=failure, idempotent=idempotent) is expected
    assert should_retry(status=status, failure=failure, idempotent=idempotent) is (expected is not R)


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


class FixedRandom(random.Random):
    """An injected random source that always draws ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def test_423_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_initial=0.5, locked_wait=1000)
    top, bottom = FixedRandom(1.0), FixedRandom(0.0)
    assert [locked_delay(n, 0.0, policy, top) for n in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]  # capped at 2 s
    assert [locked_delay(n, 0.0, policy, bottom) for n in range(3)] == [0.25, 0.5, 1.0]  # jitter: half to all
    rng = random.Random(7)
    delays = [locked_delay(1, 0.0, policy, rng) for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 100


def test_423_waits_stop_at_the_budget_and_the_last_try_lands_on_it() -> None:
    policy = RetryPolicy(backoff_initial=0.5, locked_wait=3.0)
    rng = FixedRandom(1.0)
    waited, waits = 0.0, 0
    tries = []
    while (delay := locked_delay(waits, waited, policy, rng)) is not None:
        waited += delay
        waits += 1
        tries.append(waited)
    assert tries == [0.5, 1.5, 3.0]  # 0.5, 1.0, then cut to the 1.5 s left: the last try is at the budget
    assert locked_delay(waits, waited, policy, rng) is None


def test_423_budget_of_zero_never_waits_and_retry_after_is_honoured_within_it() -> None:
    assert locked_delay(0, 0.0, RetryPolicy(locked_wait=0), FixedRandom(1.0)) is None
    assert locked_delay(0, 0.0, RetryPolicy(locked_wait=10), FixedRandom(1.0), retry_after=4.0) == 4.0
    assert locked_delay(0, 8.0, RetryPolicy(locked_wait=10), FixedRandom(1.0), retry_after=4.0) == 2.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy(max_retries=-1),
        lambda: RetryPolicy(max_retries=True),
        lambda: RetryPolicy(locked_wait=-1),
        lambda: RetryPolicy(backoff_max=float("inf")),
        lambda: RetryPolicy(total_timeout="60"),
    ],
)
def test_a_malformed_retry_policy_is_refused_naming_the_field(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidArgument, match=r"RetryPolicy\."):
        make()


@pytest.mark.parametrize("field", ["connect", "read", "stream_read", "keepalive", "turn"])
@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "5"])
def test_malformed_timeouts_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidArgument, match=rf"Timeouts\.{field}"):
        Timeouts(**{field: value})  # type: ignore[arg-type]
