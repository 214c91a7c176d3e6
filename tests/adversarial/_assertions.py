"""Assertions on promises: what the app is told, and how long it took to be told.

Wrong outcomes become ``AssertionError`` with a message saying what came instead, so an ``xfail`` marked
``raises=AssertionError`` only counts a failure for the right reason (a broken fixture still fails).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from sessionforce.errors import SessionforceError

__all__ = ["Timed", "failure_of", "our_error", "outcome_within", "stream_outcome"]

E = TypeVar("E", bound=BaseException)


class Timed:
    """What an awaited call ended with (``value`` or ``error``) and how long it took (``seconds``)."""

    def __init__(self, value: Any, error: BaseException | None, seconds: float) -> None:
        self.value = value
        self.error = error
        self.seconds = seconds


async def outcome_within(call: Awaitable[Any], seconds: float, what: str) -> Timed:
    """Await ``call`` for at most ``seconds``; a hang is an AssertionError naming ``what``."""
    started = time.monotonic()
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            value = await call
    except TimeoutError as exc:
        if deadline.expired():
            raise AssertionError(f"{what} was still running after {seconds:g}s (it hangs)") from None
        return Timed(None, exc, time.monotonic() - started)
    except Exception as exc:
        return Timed(None, exc, time.monotonic() - started)
    return Timed(value, None, time.monotonic() - started)


async def stream_outcome(open_stream: Callable[[], Any], seconds: float, what: str) -> Timed:
    """Read a stream (``async with open_stream() as s: await s.final_reply()``) for at most ``seconds``."""

    async def read() -> Any:
        async with open_stream() as stream:
            return await stream.final_reply()

    return await outcome_within(read(), seconds, what)


def failure_of(outcome: Timed, what: str) -> BaseException:
    """The error ``outcome`` ended with; AssertionError when it succeeded."""
    if outcome.error is None:
        raise AssertionError(f"{what} raised nothing (it returned {outcome.value!r})")
    return outcome.error


def our_error(error: BaseException, expected: type[E] | tuple[type[E], ...], *words: str) -> E:
    """``error`` must be our own ``expected`` class (or one of them), and its message must name each of
    ``words``."""
    if not isinstance(error, expected):
        names = " or ".join(c.__name__ for c in (expected if isinstance(expected, tuple) else (expected,)))
        raise AssertionError(
            f"expected our {names}, got {type(error).__module__}.{type(error).__name__}: {error}"
        ) from error
    assert isinstance(error, SessionforceError), f"{type(error).__name__} is not a SessionforceError"
    text = str(error).lower()
    missing = [w for w in words if w.lower() not in text]
    assert not missing, f"the message does not name {missing}: {error}"
    return cast(E, error)
