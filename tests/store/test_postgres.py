"""The PostgreSQL store against store protocol v2, on the shared server (a schema of its own per test).

Leases live on the server's clock, so time really passes here (short TTLs), as with Redis.
(When tests/store/test_contract.py moves to v2, it runs over this store too; what stays here is what
only PostgreSQL has: the schema, notifications, hybrid fences, its failures.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionforce.errors import ConversationBusy, InvalidArgument, LeaseLost, StaleRecord
from sessionforce.store import ConversationRecord, ConversationStatus, Lease, TranscriptEntry, open_store
from sessionforce.store._postgres import PostgresStore

TTL = 0.3

Factory = Callable[..., PostgresStore]


@pytest.fixture
async def make(postgres_url: str, postgres_schema: str) -> AsyncIterator[Factory]:
    """Stores on this test's schema (each closed after the test)."""
    made: list[PostgresStore] = []

    def factory(**kwargs: Any) -> PostgresStore:
        store = PostgresStore.from_url(f"{postgres_url}?schema={postgres_schema}&pool_max=3", **kwargs)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.aclose()


@pytest.fixture
async def store(make: Factory) -> PostgresStore:
    return make()


def new_record(conversation_id: str = "c1", **fields: Any) -> ConversationRecord:
    values: dict[str, Any] = {"conversation_id": conversation_id, "agent_id": "0XxAGENT",
                              "external_session_key": str(uuid.uuid4()), "created_at": 1000.0,
                              "last_activity_at": 1000.0}
    values.update(fields)
    return ConversationRecord(**values)


async def take(store: PostgresStore, cid: str = "c1", owner: str = "A", ttl: float = 5.0) -> Lease:
    got = await store.try_acquire(cid, owner=owner, ttl=ttl)
    assert isinstance(got, Lease), f"{cid} is held for {got}s more"
    return got


# -- compare-and-save ---------------------------------------------------------------------------------


async def test_save_load_and_compare_and_save(store: PostgresStore) -> None:
    assert await store.load("c1") is None
    assert await store.transcript("c1") == []
    v1 = await store.save(new_record(metadata={"a": [1, "x"]}))
    assert (v1.version, await store.load("c1")) == (1, v1)
    v2 = await store.save(v1.replace(turns=3))
    assert (v2.version, v2.turns) == (2, 3)
    with pytest.raises(StaleRecord, match=r"version 2, this write expected 1"):
        await store.save(v1.replace(turns=99))
    with pytest.raises(StaleRecord):
        await store.save(new_record(turns=5))  # version 0 again
    with pytest.raises(StaleRecord):
        await store.save(new_record("c2", version=4))
    assert await store.load("c1") == v2
    assert await store.load("c2") is None


# -- whole-lease checks -------------------------------------------------------------------------------


async def test_the_lease_is_exclusive_and_fences_grow_past_the_server_clock(store: PostgresStore) -> None:
    a = await take(store, owner="A")
    held = await store.try_acquire("c1", owner="B", ttl=5.0)
    assert isinstance(held, float)
    assert 4.0 < held <= 5.0  # the seconds until A's lease runs out
    await store.release(a)
    b = await take(store, owner="B")
    assert b.fence > a.fence
    assert b.fence >= int(time.time() * 1e6) - 60_000_000  # a clock fence (µs), give or take a skewed clock
    other = await take(store, "c2", owner="A")  # per conversation
    assert other.fence > 0


async def test_a_write_needs_the_exact_current_lease(store: PostgresStore) -> None:
    lease = await take(store)
    saved = await store.save(new_record(), lease=lease, transcript=[TranscriptEntry(kind="turn", at=1.0, text="one")])
    await store.append_transcript("c1", TranscriptEntry(kind="turn", at=2.0, text="two"), lease=lease)
    impostors = [Lease("c1", "B", lease.fence, lease.expires_at), Lease("c1", "A", lease.fence + 1, lease.expires_at)]
    for impostor in impostors:  # the same fence with another owner, or the right owner with another fence
        with pytest.raises(LeaseLost, match="c1"):
            await store.save(saved.replace(turns=1), lease=impostor, transcript=[TranscriptEntry(kind="x", at=3.0)])
        with pytest.raises(LeaseLost):
            await store.append_transcript("c1", TranscriptEntry(kind="x", at=3.0), lease=impostor)
        with pytest.raises(LeaseLost):
            await store.renew(impostor, ttl=5.0)
        await store.release(impostor)  # a no-op
    assert isinstance(await store.try_acquire("c1", owner="C", ttl=5.0), float)  # still A's
    assert await store.load("c1") == saved
    assert [e.text for e in await store.transcript("c1")] == ["one", "two"]
    # A refused save appends nothing; a stale one neither.
    with pytest.raises(StaleRecord):
        await store.save(new_record(), lease=lease, transcript=[TranscriptEntry(kind="x", at=4.0)])
    assert len(await store.transcript("c1")) == 2


async def test_writes_are_refused_after_expiry_takeover_and_release(store: PostgresStore) -> None:
    old = await take(store, ttl=TTL)
    saved = await store.save(new_record(), lease=old)
    await asyncio.sleep(TTL * 1.5)
    with pytest.raises(LeaseLost):  # expired, nobody else yet
        await store.save(saved, lease=old)
    with pytest.raises(LeaseLost):
        await store.renew(old, ttl=5.0)
    new = await take(store, owner="B")
    with pytest.raises(LeaseLost):
        await store.append_transcript("c1", TranscriptEntry(kind="turn", at=1.0), lease=old)
    await store.release(old)  # must not free B's lease
    assert isinstance(await store.try_acquire("c1", owner="C", ttl=5.0), float)
    v2 = await store.save(saved, lease=new)
    await store.release(new)
    with pytest.raises(LeaseLost):
        await store.save(v2, lease=new)
    assert await store.transcript("c1") == []


async def test_the_last_save_releases_and_wakes_a_waiter_in_another_store(make: Factory) -> None:
    holder, waiter_store = make(), make()
    lease = await take(holder)
    saved = await holder.save(new_record(), lease=lease)
    waiter = asyncio.create_task(waiter_store.acquire("c1", owner="B", ttl=5.0, wait=4.0))
    await asyncio.sleep(0.3)
    assert not waiter.done()
    started = time.monotonic()
    final = await holder.save(saved.replace(turns=1), lease=lease, release=True,
                              transcript=[TranscriptEntry(kind="turn", at=2.0, text="last")])
    b = await asyncio.wait_for(waiter, 3.0)
    assert time.monotonic() - started < 1.0  # woken by the notification, not the holder's 5 s expiry
    assert b.fence > lease.fence
    assert await waiter_store.load("c1") == final
    with pytest.raises(LeaseLost):
        await holder.save(final, lease=lease)


async def test_a_refused_save_keeps_the_lease_it_was_to_release(store: PostgresStore) -> None:
    lease = await take(store)
    v1 = await store.save(new_record(), lease=lease)
    v2 = await store.save(v1.replace(turns=1), lease=lease)
    with pytest.raises(StaleRecord):
        await store.save(v1.replace(turns=9), lease=lease, release=True)
    assert isinstance(await store.try_acquire("c1", owner="B", ttl=5.0), float)
    assert (await store.save(v2, lease=lease, release=True)).version == 3
    await take(store, owner="B")
    with pytest.raises(InvalidArgument, match="lease"):
        await store.save(new_record("c9"), release=True)


async def test_wait_released_wakes_on_release_and_else_times_out(make: Factory) -> None:
    holder, other = make(), make()
    lease = await take(holder)
    assert isinstance(await other.try_acquire("c1", owner="B", ttl=5.0), float)  # arms, starts listening
    started = time.monotonic()
    await other.wait_released("c1", 0.2)
    assert 0.15 <= time.monotonic() - started < 1.0
    assert isinstance(await other.try_acquire("c1", owner="B", ttl=5.0), float)
    waiting = asyncio.create_task(other.wait_released("c1", 5.0))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await holder.release(lease)
    await asyncio.wait_for(waiting, 2.0)
    assert time.monotonic() - started < 1.0


async def test_acquire_waits_for_expiry_and_gives_up_naming_the_holder(make: Factory) -> None:
    holder, other = make(), make(notify=False)  # a polling waiter works as well
    a = await take(holder, owner="worker-A", ttl=TTL)
    b = await asyncio.wait_for(other.acquire("c1", owner="B", ttl=5.0, wait=3.0), 4.0)
    assert b.fence > a.fence
    started = time.monotonic()
    with pytest.raises(ConversationBusy, match="c1") as caught:
        await holder.acquire("c1", owner="C", ttl=5.0, wait=0.2)
    assert 0.19 <= time.monotonic() - started < 1.5
    assert "B" in str(caught.value)


async def test_renew_extends_a_held_lease(store: PostgresStore) -> None:
    lease = await take(store, ttl=TTL)
    await asyncio.sleep(TTL * 0.6)
    renewed = await store.renew(lease, ttl=TTL * 2)
    assert renewed.fence == lease.fence
    assert renewed.expires_at > lease.expires_at
    await asyncio.sleep(TTL * 0.6)  # past the first expiry
    assert isinstance(await store.try_acquire("c1", owner="B", ttl=5.0), float)
    assert (await store.save(new_record(), lease=renewed)).version == 1


# -- transcript, listing, delete, retention -----------------------------------------------------------


async def test_transcript_order_listing_and_delete(store: PostgresStore) -> None:
    for i in range(12):
        await store.append_transcript("c1", TranscriptEntry(kind="turn", at=float(i), sequence_id=i))
    assert [e.sequence_id for e in await store.transcript("c1")] == list(range(12))
    active, idle = ConversationStatus.ACTIVE, ConversationStatus.IDLE
    for cid, status, last in [("a1", active, 500.0), ("i1", idle, 100.0), ("a2", active, 300.0),
                              ("i2", idle, 900.0), ("a3", active, 950.0)]:
        await store.save(new_record(cid, status=status, last_activity_at=last))

    async def ids(**kwargs: Any) -> list[str]:
        return [r.conversation_id for r in await store.list_conversations(**kwargs)]

    assert await ids() == ["i1", "a2", "a1", "i2", "a3"]
    assert await ids(status=active) == ["a2", "a1", "a3"]
    assert await ids(idle_for=100.0, now=1000.0) == ["i1", "a2", "a1", "i2"]
    assert await ids(status=active, idle_for=500.0, now=1000.0) == ["a2", "a1"]
    assert await ids(limit=2) == ["i1", "a2"]
    assert await ids(limit=0) == []
    lease = await take(store, "a1")
    await store.delete("a1")
    assert await store.load("a1") is None
    after = await take(store, "a1", owner="B")  # the lease went with it, the fence did not go back
    assert after.fence > lease.fence
    with pytest.raises(LeaseLost):
        await store.save(new_record("a1"), lease=lease)
    await store.delete("never-existed")


async def test_retention_purges_idle_conversations_but_not_leased_ones(make: Factory) -> None:
    store = make(retention=3600.0)
    now = time.time()
    await store.save(new_record("old", last_activity_at=now - 7200))
    await store.append_transcript("old", TranscriptEntry(kind="turn", at=1.0))
    await store.save(new_record("busy", last_activity_at=now - 7200))
    await take(store, "busy")
    await store.save(new_record("fresh", last_activity_at=now - 60))
    assert await store.purge() == 1
    assert await store.load("old") is None
    assert await store.transcript("old") == []
    assert await store.load("busy") is not None
    assert await store.load("fresh") is not None


async def test_conversation_ids_are_any_string(store: PostgresStore) -> None:
    for cid in ["with\x00nul", "ünïcode/🙂", "x" * 5000, ""]:
        lease = await take(store, cid)
        saved = await store.save(new_record(cid), lease=lease, release=True)
        assert await store.load(cid) == saved
        assert [r.conversation_id for r in await store.list_conversations()].count(cid) == 1


def test_any_record_round_trips(postgres_url: str, postgres_schema: str) -> None:
    loop = asyncio.new_event_loop()
    store = PostgresStore.from_url(f"{postgres_url}?schema={postgres_schema}")
    text = st.text(max_size=30)
    values = st.text() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cid=text, meta=st.dictionaries(st.text(max_size=8), values, max_size=4),
           entry_text=st.text())
    def check(cid: str, meta: dict[str, Any], entry_text: str) -> None:
        record = new_record(f"{cid}/{uuid.uuid4().hex}", metadata=meta)
        saved = loop.run_until_complete(store.save(record))
        assert loop.run_until_complete(store.load(record.conversation_id)) == saved
        entry = TranscriptEntry(kind="turn", at=1.5, text=entry_text)
        loop.run_until_complete(store.append_transcript(record.conversation_id, entry))
        assert loop.run_until_complete(store.transcript(record.conversation_id)) == [entry]

    try:
        check()
    finally:
        loop.run_until_complete(store.aclose())
        loop.close()


# -- the URL ------------------------------------------------------------------------------------------


def test_open_store_takes_both_schemes_and_our_parameters(postgres_url: str) -> None:
    for scheme in ("postgresql", "postgres"):
        store = open_store(postgres_url.replace("postgresql", scheme, 1) + "?schema=app&pool_max=4&sslmode=disable")
        assert isinstance(store, PostgresStore)
        assert "schema='app'" in repr(store)


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:CANARYPASSWORD1@h:5432/db?nonsense=1", "postgresql://u:CANARYPASSWORD1@[::1/db",
     "postgresql://u:CANARYPASSWORD1@h/db?pool_max=lots"],
)
def test_a_bad_url_is_a_config_error_without_the_password(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionforce.errors import ConfigError

    with pytest.raises(ConfigError, match="Store URL") as caught:
        open_store(url)
    assert "CANARYPASSWORD1" not in str(caught.value)
    assert "CANARYPASSWORD1" not in repr(caught.value)
    monkeypatch.setenv("SESSIONFORCE_STORE", url)  # from the environment: the message says so
    with pytest.raises(ConfigError, match="SESSIONFORCE_STORE") as caught:
        open_store()
    assert "CANARYPASSWORD1" not in str(caught.value)


async def test_several_stores_of_one_schema_share_it(make: Factory, postgres_url: str, postgres_schema: str) -> None:
    a, b = make(), make()
    await asyncio.gather(a.load("x"), b.load("x"))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(f'SELECT version FROM "{postgres_schema}".schema_version'.encode()).fetchall()
    assert rows == [(1,)]


# -- issue 11 finding 8: our own errors, never raw ones -------------------------------------------------


async def test_a_damaged_row_is_corrupt_record_and_never_hides_the_others(
    store: PostgresStore, postgres_url: str, postgres_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from sessionforce.errors import CorruptRecord

    for cid in ("good-1", "damaged", "good-2"):
        await store.save(new_record(cid, last_activity_at=float(len(cid))))
        await store.append_transcript(cid, TranscriptEntry(kind="turn", at=1.0))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'UPDATE "{postgres_schema}".conversations SET data = %s WHERE conversation_id = %s'.encode(),
                     ('{"conversation_id": "dam', b"damaged"))
        conn.execute(f'UPDATE "{postgres_schema}".transcript SET entry = %s WHERE conversation_id = %s'.encode(),
                     ("[1, 2", b"damaged"))
    for read in (store.load("damaged"), store.transcript("damaged")):
        with pytest.raises(CorruptRecord, match="'damaged'") as caught:
            await read
        assert "What to do" in str(caught.value)
    with caplog.at_level(logging.WARNING, logger="sessionforce.store"):
        listed = await store.list_conversations()
    assert [r.conversation_id for r in listed] == ["good-1", "good-2"]
    assert "damaged" in caplog.text
    await store.delete("damaged")
    assert (await store.save(new_record("damaged"))).version == 1


async def test_a_conversation_id_that_is_not_unicode_text_is_invalid_argument(store: PostgresStore) -> None:
    bad = "ticket-\udc80-42"
    calls = [store.load(bad), store.try_acquire(bad, owner="me", ttl=5.0), store.transcript(bad),
             store.append_transcript(bad, TranscriptEntry(kind="turn", at=1.0)), store.delete(bad)]
    for call in calls:
        with pytest.raises(InvalidArgument, match="conversation id"):
            await call
    with pytest.raises(InvalidArgument, match="conversation"):
        await store.save(new_record(bad))
    with pytest.raises(InvalidArgument, match="text"):
        await store.save(new_record("fine"), transcript=[TranscriptEntry(kind="turn", at=1.0, text="bad \ud800")])
    assert await store.load("fine") is None
    assert (await store.save(new_record("fine"))).version == 1


async def test_tables_dropped_under_an_open_store_are_made_again(
    store: PostgresStore, postgres_url: str, postgres_schema: str
) -> None:
    await store.save(new_record())
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{postgres_schema}" CASCADE'.encode())
    assert await store.load("c1") is None  # a restored empty database: nothing, but no failure
    assert (await store.save(new_record())).version == 1
