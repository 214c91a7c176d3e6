"""redis-py's errors, as the Redis store's: one table from what failed to what it means and what to do.

Whatever the topology (one primary, Sentinel, a cluster), a failure is a
:class:`~sessionforce.errors.StoreUnavailable` naming the store (never its password) and the operation,
built by the shared builder; it never claims anything about a turn's delivery (the lifecycle knows that).
redis-py has already followed MOVED/ASK redirections and resent what its retry policy allows by then.
"""

from __future__ import annotations

from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import (
    ClusterError,
    ReadOnlyError,
    RedisClusterException,
    RedisClusterUnreachableError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessionforce.errors import StoreUnavailable
from sessionforce.errors._build import store_unavailable

__all__ = ["LOWER_ERRORS", "out_of_connections", "redis_failure"]

LOWER_ERRORS = (RedisError, RedisClusterException)
"""What redis-py raises (its cluster errors are not all ``RedisError``s)."""

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, RedisClusterUnreachableError)
_FAILING_OVER = (ClusterError, TryAgainError, RedisClusterException)  # CLUSTERDOWN, TRYAGAIN, slots not covered


def redis_failure(exc: BaseException, where: str, doing: str) -> StoreUnavailable:
    """The error for ``exc`` raised by redis-py while the store at ``where`` was ``doing`` something."""
    cause = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MasterNotFoundError):  # its text is the repr of every sentinel's client
        cause = "MasterNotFoundError: no sentinel answered with a live primary for the service"
    text = str(exc)
    if isinstance(exc, _UNREACHABLE):
        cause = f"it cannot be reached or did not answer in time; {cause}"
        advice = "check that Redis runs and that the store URL (SESSIONFORCE_STORE) points to it, then retry"
    elif isinstance(exc, (*_FAILING_OVER, ReadOnlyError)) or "MASTERDOWN" in text:  # a demoted or cut-off primary
        cause = f"the primary is failing over or slots are moving; {cause}"
        advice = "retry in a moment (a failover takes seconds); if it lasts, check the primaries and replicas"
    else:
        advice = "check the Redis server's version and that no other data uses this key prefix"
    return store_unavailable(f"Redis at {where}", doing, cause, advice=advice)


def out_of_connections(where: str, doing: str, pool_max: int, waited: float) -> StoreUnavailable:
    """Every one of the store's ``pool_max`` calls in flight stayed busy for ``waited`` seconds."""
    return store_unavailable(f"Redis at {where}", doing,
                             f"out of connections: all {pool_max} in use for {waited:g} s",
                             advice="raise pool_max (in the store URL) or lower the load")
