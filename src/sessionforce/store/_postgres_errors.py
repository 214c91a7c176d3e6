"""What a PostgreSQL failure means for the store, in words: the "what happened" and "what to do" of a
:class:`~sessionforce.errors.StoreUnavailable` (by SQLSTATE, so it reads the same in every locale)."""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

__all__ = ["describe_failure"]

_UNREACHABLE = (
    "cannot be reached",
    "check that the server runs and that the store URL (SESSIONFORCE_STORE) points to it, then retry",
)

# SQLSTATE -> (what happened, what to do)
_BY_STATE: dict[str, tuple[str, str]] = {
    "25006": (
        "is read-only (a hot standby, e.g. after a failover, or default_transaction_read_only is on)",
        "point the store URL at the primary (with libpq's target_session_attrs=read-write when several "
        "hosts are listed), then retry",
    ),
    "53300": (
        "refused a new connection: it is out of connections (max_connections reached)",
        "lower pool_max in the store URL on each worker, use a connection pooler, or raise max_connections",
    ),
    "53100": ("is out of disk space", "free disk space on the database server, then retry"),
    "53200": ("is out of memory", "check the database server's memory, then retry"),
    "42501": (
        "refused permission",
        "grant the role CREATE and USAGE on the schema (or CREATE on the database so the store can make "
        "its schema), or choose a schema the role owns with ?schema=",
    ),
    "57014": (
        "cancelled the statement (statement_timeout or an operator)",
        "check the server's load and statement_timeout, then retry",
    ),
    "57P01": ("is shutting down or terminated the connection", "retry once the server is back"),
    "57P02": ("crashed", "retry once the server is back"),
    "57P03": ("is starting up or recovering and does not accept connections yet", "retry in a moment"),
    "42P01": (
        "has no store tables in this schema (dropped while the store was open?)",
        "close and open the store again to recreate them",
    ),
    "3F000": (
        "has no such schema (dropped while the store was open?)",
        "close and open the store again to recreate it",
    ),
    "28P01": ("refused the password", "check the user and password in the store URL"),
    "28000": ("refused the login", "check the user, database and pg_hba.conf rules for this client"),
    "3D000": ("has no such database", "create the database, or fix its name in the store URL"),
}


def describe_failure(exc: BaseException, pool_max: int) -> tuple[str, str]:
    """(what happened, what to do) for a failure of one store call."""
    if isinstance(exc, PoolTimeout):
        return (
            f"had no free connection in the store's pool (all {pool_max} in use: out of connections)",
            "raise pool_max or pool_timeout in the store URL, or run fewer turns at once per process",
        )
    if isinstance(exc, TimeoutError):
        return "did not answer in time", "check the server's load and the network to it, then retry"
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or _state_of_connect_failure(str(exc))
        if state in _BY_STATE:
            return _BY_STATE[state]
        if state.startswith("08") or (isinstance(exc, psycopg.OperationalError) and not state):
            return _UNREACHABLE
        if state.startswith("40"):
            return "refused the transaction (a conflict)", "retry"
        return "answered with an error", "check the server's log and that no other data uses this schema"
    return _UNREACHABLE


def _state_of_connect_failure(message: str) -> str:
    """A failed connect carries no SQLSTATE in psycopg: read the server's (English) FATAL text instead."""
    if "too many clients" in message or "remaining connection slots are reserved" in message:
        return "53300"
    if "the database system is starting up" in message or "the database system is shutting down" in message:
        return "57P03"
    if "password authentication failed" in message:
        return "28P01"
    if "does not exist" in message and "database" in message:
        return "3D000"
    return ""
