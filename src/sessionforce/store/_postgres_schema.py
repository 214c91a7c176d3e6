"""The PostgreSQL store's schema, its upgrades, and every statement it runs (see :mod:`._postgres`).

Tables (in the app's schema, ``sessionforce`` unless ``?schema=`` names another)::

    conversations(conversation_id bytea PK, version, status, last_activity_at, data text)
        index (status, last_activity_at): listings and the retention purge walk it in order
    transcript(conversation_id bytea, id identity, entry text)   PK (conversation_id, id)
    leases(conversation_id bytea PK, fence bigint, owner, expires_at timestamptz, wanted bool)
        one row per conversation ever leased; ``fence`` never goes backwards; ``wanted`` says a waiter
        exists, so only a contended release pays for a NOTIFY
    schema_version(version, upgraded_at)   one row per upgrade applied

Ids are ``bytea`` (the UTF-8 of the id): PostgreSQL text cannot hold NUL, and the other stores accept
any string. Records and entries are JSON kept as ``text``: ``jsonb`` would reparse every write and
refuses ``\\u0000``. Every statement is one round trip and one implicit transaction: what must be atomic
(version check + lease check + write + transcript + release + notify) is one statement of CTEs.

Lease times are the *server's* clock (``statement_timestamp()``), so workers on machines whose clocks
disagree still agree on who holds a lease. A fence is ``max(last fence + 1, server time in µs)``: even
a database restored from a backup, or a replica promoted before it had the last commits, hands out
fences above every fence issued before, as long as its clock has not stepped back by more than a lease
time to live.
"""

from __future__ import annotations

import hashlib

from psycopg import sql

from sessionforce.store._records import ConversationStatus

__all__ = ["SCHEMA_VERSION", "Statements", "advisory_key", "upgrade_steps"]

SCHEMA_VERSION = 1

# Each version's statements, applied in order to bring an older schema up (all idempotent).
_UPGRADES: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE IF NOT EXISTS {s}.conversations (
            conversation_id bytea PRIMARY KEY,
            version bigint NOT NULL,
            status text NOT NULL,
            last_activity_at double precision NOT NULL,
            data text NOT NULL
        ) WITH (fillfactor = 80)""",
        "CREATE INDEX IF NOT EXISTS conversations_status_activity ON {s}.conversations (status, last_activity_at)",
        """CREATE TABLE IF NOT EXISTS {s}.transcript (
            conversation_id bytea NOT NULL,
            id bigint GENERATED ALWAYS AS IDENTITY,
            entry text NOT NULL,
            PRIMARY KEY (conversation_id, id)
        )""",
        """CREATE TABLE IF NOT EXISTS {s}.leases (
            conversation_id bytea PRIMARY KEY,
            fence bigint NOT NULL,
            owner text,
            expires_at timestamptz NOT NULL,
            wanted boolean NOT NULL DEFAULT false
        ) WITH (fillfactor = 70)""",
        """CREATE TABLE IF NOT EXISTS {s}.schema_version (
            version integer NOT NULL,
            upgraded_at timestamptz NOT NULL DEFAULT now()
        )""",
    ),
}

# The fence a new lease gets: above the last one, and above the server's clock in microseconds.
_NEXT_FENCE = "GREATEST(l.fence + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)"
_FIRST_FENCE = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
# Taken: the lease expired, or its own owner asks again (it lost track of it: an acquire whose answer
# was lost, a release that failed); either way with a new fence, so the lost lease is dead from then on.
_TAKE = "(l.expires_at <= statement_timestamp() OR l.owner = excluded.owner)"

# One atomic step: take the lease if it is free or expired (a new fence), else mark it wanted (once)
# and say who holds it and for how long. When the lease is wanted already, the holder is read from the
# statement's snapshot, which can be older than the row ON CONFLICT saw (released then: -infinity, or
# not there yet: no row at all); the caller then simply tries again soon.
_TRY_ACQUIRE = f"""
WITH taken AS (
    INSERT INTO {{s}}.leases AS l (conversation_id, fence, owner, expires_at, wanted)
    VALUES (%(id)s, {_FIRST_FENCE}, %(owner)s, statement_timestamp() + make_interval(secs => %(ttl)s), false)
    ON CONFLICT (conversation_id) DO UPDATE SET
        fence = CASE WHEN {_TAKE} THEN {_NEXT_FENCE} ELSE l.fence END,
        owner = CASE WHEN {_TAKE} THEN excluded.owner ELSE l.owner END,
        expires_at = CASE WHEN {_TAKE} THEN excluded.expires_at ELSE l.expires_at END,
        wanted = NOT {_TAKE}
    WHERE {_TAKE} OR NOT l.wanted
    RETURNING NOT l.wanted, l.fence, l.owner, extract(epoch FROM l.expires_at - statement_timestamp())::float8
)
SELECT * FROM taken
UNION ALL
SELECT false, fence, owner,
       extract(epoch FROM GREATEST(expires_at, statement_timestamp()) - statement_timestamp())::float8
FROM {{s}}.leases WHERE conversation_id = %(id)s AND NOT EXISTS (SELECT 1 FROM taken)
"""

# The exact lease, live, locked against a takeover until the statement commits.
_LEASE = """lease AS (
    SELECT 1 FROM {s}.leases
    WHERE conversation_id = %(id)s AND owner = %(owner)s AND fence = %(fence)s
      AND expires_at > statement_timestamp()
    FOR SHARE
)"""

_INSERT_RECORD = """rec AS (
    INSERT INTO {s}.conversations (conversation_id, version, status, last_activity_at, data)
    SELECT %(id)s, 1, %(status)s, %(last)s, %(data)s WHERE {lease_ok}
    ON CONFLICT (conversation_id) DO NOTHING
    RETURNING version
)"""
_UPDATE_RECORD = """rec AS (
    UPDATE {s}.conversations
    SET version = version + 1, status = %(status)s, last_activity_at = %(last)s, data = %(data)s
    WHERE conversation_id = %(id)s AND version = %(expected)s AND {lease_ok}
    RETURNING version
)"""
# After the record: its transcript entries, the lease given up, and waiters woken (only if one said so).
# The entries travel as a binary array (%b): psycopg's text-array dumper escapes every quote of the JSON
# with a regular expression, which cost ~100 us a turn.
_AFTER_RECORD = """tx AS (
    INSERT INTO {s}.transcript (conversation_id, entry)
    SELECT %(id)s, e FROM unnest(%(entries)b::text[]) WITH ORDINALITY AS t(e, n)
    WHERE EXISTS (SELECT 1 FROM rec) ORDER BY n
),
rel AS (
    UPDATE {s}.leases SET owner = NULL, expires_at = '-infinity'
    WHERE %(release)s AND conversation_id = %(id)s AND EXISTS (SELECT 1 FROM rec)
    RETURNING wanted
),
woke AS (SELECT pg_notify(%(channel)s, %(key)s) FROM rel WHERE wanted)
SELECT (SELECT count(*) FROM rec), {lease_count}, (SELECT count(*) FROM woke),
       (SELECT version FROM {s}.conversations WHERE conversation_id = %(id)s)"""

_APPEND_FENCED = """WITH {lease}
INSERT INTO {s}.transcript (conversation_id, entry) SELECT %(id)s, %(entry)s WHERE EXISTS (SELECT 1 FROM lease)
RETURNING 1"""
_APPEND = "INSERT INTO {s}.transcript (conversation_id, entry) VALUES (%(id)s, %(entry)s) RETURNING 1"

# A waiter that did not come through a try of the lease says it waits (a row only when it was not said yet).
_WANT = """WITH live AS (
    SELECT wanted FROM {s}.leases WHERE conversation_id = %(id)s AND expires_at > statement_timestamp()
),
marked AS (
    UPDATE {s}.leases SET wanted = true
    WHERE conversation_id = %(id)s AND expires_at > statement_timestamp() AND NOT wanted
)
SELECT count(*) FROM live"""

_RENEW = """UPDATE {s}.leases SET expires_at = statement_timestamp() + make_interval(secs => %(ttl)s)
WHERE conversation_id = %(id)s AND owner = %(owner)s AND fence = %(fence)s AND expires_at > statement_timestamp()
RETURNING 1"""

_RELEASE = """WITH rel AS (
    UPDATE {s}.leases SET owner = NULL, expires_at = '-infinity'
    WHERE conversation_id = %(id)s AND owner = %(owner)s AND fence = %(fence)s
    RETURNING wanted
),
woke AS (SELECT pg_notify(%(channel)s, %(key)s) FROM rel WHERE wanted)
SELECT (SELECT count(*) FROM rel), (SELECT count(*) FROM woke)"""

# The lease row stays (its fence must never go back); only the holder goes.
_DELETE = """WITH d1 AS (DELETE FROM {s}.conversations WHERE conversation_id = %(id)s),
d2 AS (DELETE FROM {s}.transcript WHERE conversation_id = %(id)s),
rel AS (
    UPDATE {s}.leases SET owner = NULL, expires_at = '-infinity'
    WHERE conversation_id = %(id)s AND expires_at > '-infinity'
    RETURNING wanted
),
woke AS (SELECT pg_notify(%(channel)s, %(key)s) FROM rel WHERE wanted)
SELECT count(*) FROM woke"""

# Retention: one batch of conversations idle since before the cutoff and not leased right now, with
# their transcripts and lease rows. Rows being saved at this moment are skipped (SKIP LOCKED), and the
# lock re-checks the row, so a conversation that just became active again is never taken.
_PURGE = """WITH old AS (
    SELECT c.conversation_id FROM {s}.conversations c
    WHERE c.status = %(status)s AND c.last_activity_at < %(cutoff)s
      AND NOT EXISTS (SELECT 1 FROM {s}.leases l
                      WHERE l.conversation_id = c.conversation_id AND l.expires_at > statement_timestamp())
    ORDER BY c.last_activity_at LIMIT %(batch)s
    FOR UPDATE OF c SKIP LOCKED
),
d1 AS (DELETE FROM {s}.conversations c USING old WHERE c.conversation_id = old.conversation_id
       RETURNING c.conversation_id),
d2 AS (DELETE FROM {s}.transcript t USING d1 WHERE t.conversation_id = d1.conversation_id),
d3 AS (DELETE FROM {s}.leases l USING d1 WHERE l.conversation_id = d1.conversation_id
       AND l.expires_at <= statement_timestamp())
SELECT count(*) FROM d1"""

# Listings: one static statement per filter combination. Without a status filter, one arm per status
# (our enum's values, never input), so the planner merges the index's ordered ranges instead of sorting.
_LIST_ONE = "SELECT data, last_activity_at, conversation_id FROM {s}.conversations WHERE status = {status}{where}"


def _list_sql(status_given: bool, cutoff_given: bool) -> str:
    where = " AND last_activity_at <= %(cutoff)s" if cutoff_given else ""
    if status_given:
        arms = [_LIST_ONE.format(s="{s}", status="%(status)s", where=where)]
    else:
        arms = [_LIST_ONE.format(s="{s}", status=f"'{status.value}'", where=where) for status in ConversationStatus]
    return " UNION ALL ".join(f"({arm})" for arm in arms) + " ORDER BY last_activity_at LIMIT %(limit)s"


def _save_sql(insert: bool, fenced: bool) -> str:
    lease_ok = "EXISTS (SELECT 1 FROM lease)" if fenced else "true"
    record = (_INSERT_RECORD if insert else _UPDATE_RECORD).replace("{lease_ok}", lease_ok)
    after = _AFTER_RECORD.replace("{lease_count}", "(SELECT count(*) FROM lease)" if fenced else "1")
    return "WITH " + (_LEASE + ",\n" if fenced else "") + record + ",\n" + after


class Statements:
    """Every statement, rendered once for one schema (bytes: psycopg takes them as they are)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.quoted = sql.Identifier(schema).as_string()
        self.try_acquire = self._render(_TRY_ACQUIRE)
        self.save = {(insert, fenced): self._render(_save_sql(insert, fenced)) for insert in (True, False)
                     for fenced in (True, False)}
        self.append = self._render(_APPEND)
        self.append_fenced = self._render(_APPEND_FENCED.replace("{lease}", _LEASE))
        self.renew = self._render(_RENEW)
        self.want = self._render(_WANT)
        self.release = self._render(_RELEASE)
        self.delete = self._render(_DELETE)
        self.purge = self._render(_PURGE)
        self.load = self._render("SELECT data FROM {s}.conversations WHERE conversation_id = %(id)s")
        self.transcript = self._render("SELECT entry FROM {s}.transcript WHERE conversation_id = %(id)s ORDER BY id")
        self.list = {(st, cut): self._render(_list_sql(st, cut)) for st in (True, False) for cut in (True, False)}
        self.version_table = f"{self.quoted}.schema_version"

    def _render(self, template: str) -> bytes:
        # Only our schema's quoted name is put into the text; every value travels as a parameter.
        return template.replace("{s}", self.quoted).encode()

    def upgrade(self, version: int) -> list[bytes]:
        """The statements that bring a schema of ``version`` (0: none) up to :data:`SCHEMA_VERSION`."""
        return [self._render(statement) for step in upgrade_steps(version) for statement in _UPGRADES[step]]


def upgrade_steps(version: int) -> list[int]:
    """The upgrade steps from ``version`` to :data:`SCHEMA_VERSION`, in order."""
    return [step for step in sorted(_UPGRADES) if step > version]


def advisory_key(schema: str) -> int:
    """The advisory lock key that serializes upgrades of ``schema`` across every process (a signed int8)."""
    digest = hashlib.blake2b(f"sessionforce schema {schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
