"""The one lease-wait loop every store shares, and the checks every store's lease steps make the same way.

A store writes only its atomic steps (:meth:`~sessionforce.store.Store.try_acquire`,
:meth:`~sessionforce.store.Store.wait_released`); waiting for a held lease is this loop, written once:
try, and while someone else holds the lease wait for its release (a store with notifications wakes us at
once; polls back off from 2 ms to 50 ms, never past the holder's expiry or the wait bound), then
:class:`~sessionforce.errors.ConversationBusy` after ``wait`` seconds.

Its only waiting is ``store.wait_released``, so a test drives it with a fake store and ``clock`` and never
waits on real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from sessionforce.errors import InvalidArgument
from sessionforce.errors._build import conversation_busy, lease_lost
from sessionforce.store._records import Lease

__all__ = ["FIRST_POLL", "MAX_POLL", "LeaseSteps", "acquire_lease", "check_ttl", "check_write"]

FIRST_POLL = 0.002
"""Seconds before the first re-try of a held lease (without a notification)."""
MAX_POLL = 0.05
"""The longest gap between two tries: bounds the cost of a missed notification."""


class LeaseSteps(Protocol):
    """The two atomic steps of a :class:`~sessionforce.store.Store` this loop is made of."""

    async def try_acquire(self, conversation_id: str, *, owner: str, ttl: float) -> Lease | float:
        """A new lease, or the seconds until the holder's expires."""
        ...

    async def wait_released(self, conversation_id: str, timeout: float) -> None:  # noqa: ASYNC109 (a bound)
        """Return at a release, or after ``timeout`` seconds."""
        ...


def check_ttl(ttl: float) -> None:
    """Refuse a lease time to live that is not a positive number of seconds."""
    if not ttl > 0:
        raise InvalidArgument(f"ttl={ttl!r}: a lease needs a positive time to live in seconds.")


def check_write(conversation_id: str, lease: Lease | None, release: bool = False) -> None:
    """What every store checks before a write: ``release=True`` comes with the lease to give up, and a
    lease is the conversation's own (a lease of another conversation never lets a write through)."""
    if lease is None:
        if release:
            raise InvalidArgument("save(release=True) needs the lease to give up: pass lease=... as well.")
    elif lease.conversation_id != conversation_id:
        raise lease_lost(conversation_id, lease)


async def acquire_lease(
    store: LeaseSteps,
    conversation_id: str,
    *,
    owner: str,
    ttl: float,
    wait: float,
    clock: Callable[[], float] = time.monotonic,
) -> Lease:
    """Take ``conversation_id``'s lease for ``owner``, waiting up to ``wait`` seconds for its holder to
    release it or for its lease to expire; :class:`~sessionforce.errors.ConversationBusy` after that.

    ``clock``: monotonic seconds for the wait bound (injectable for tests).
    """
    started = clock()
    got = await store.try_acquire(conversation_id, owner=owner, ttl=ttl)
    if isinstance(got, Lease):
        return got
    deadline = started + max(wait, 0.0)
    poll = FIRST_POLL
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            holder = getattr(got, "owner", None)
            raise conversation_busy(conversation_id, wait, holder=holder, where=repr(store))
        # Never past the holder's expiry: then the lease is free whether or not anyone says so.
        await store.wait_released(conversation_id, min(poll, remaining, max(float(got), 0.001)))
        poll = min(poll * 1.5, MAX_POLL)
        got = await store.try_acquire(conversation_id, owner=owner, ttl=ttl)
        if isinstance(got, Lease):
            return got
