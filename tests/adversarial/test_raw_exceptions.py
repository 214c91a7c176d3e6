"""Finding 8: raw exceptions escape where our own error, with a clear message, belongs.

Library: text or a conversation id holding a lone surrogate (``PydanticSerializationError``,
``UnicodeEncodeError``), ``variables="abc"`` (``ValueError``), a damaged JSON row (``ValidationError`` from
load, transcript, list). CLI: non-UTF-8 bytes piped into ``chat``, ``chat`` with stdin closed, ``run`` on
deeply nested YAML (``RecursionError``) or on ``/dev/zero`` (``MemoryError``: no size cap). Configuration
and input errors exit 2 with one clear line.
"""

from __future__ import annotations

import os
import resource
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sessionforce.emulator import RunningEmulator, run_emulator
from sessionforce.errors import ConfigError, CorruptRecord, InvalidArgument
from tests.adversarial import _harness
from tests.adversarial._assertions import failure_of, our_error, outcome_within
from tests.adversarial._cli import CliRun, error_lines
from tests.adversarial._redis_proc import RedisProcess


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with run_emulator() as running:
        yield running


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[_harness.Store]:
    """Each store kind (Redis: a redis-server of the test's own)."""
    if request.param == "memory":
        made = _harness.memory_store()
    elif request.param == "sqlite":
        made = _harness.sqlite_store(tmp_path / "sessions.db")
    else:
        process: RedisProcess = request.getfixturevalue("redis_proc")
        made = _harness.redis_store(process.url)
    yield made
    await made.aclose()


async def _error_of(call: Callable[[], Any], what: str) -> BaseException:
    async def run() -> Any:
        return await call()

    return failure_of(await outcome_within(run(), 15, what), what)


# ------------------------------------------------------------------ library


async def test_text_with_a_lone_surrogate_is_an_invalid_argument(emu: RunningEmulator, store: _harness.Store) -> None:
    async with _harness.emulator_client(emu, store=store) as owner:
        conv = _harness.conversation(owner, "surrogate-text")
        error = await _error_of(lambda: conv.send("bad \ud800 text"), "a turn whose text holds a lone surrogate")
    our_error(error, InvalidArgument, "text")
    assert emu.counters()["turns"] == [], "a turn that could not be encoded was sent"


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_a_conversation_id_with_a_lone_surrogate_is_an_invalid_argument(
    emu: RunningEmulator, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "sqlite":
        store = _harness.sqlite_store(tmp_path / "sessions.db")
    else:
        store = _harness.redis_store(request.getfixturevalue("redis_proc").url)
    try:
        async with _harness.emulator_client(emu, store=store) as owner:
            error = await _error_of(lambda: _harness.conversation(owner, "ticket-\udc80-42").send("hello"),
                                    "a conversation id holding a lone surrogate")
    finally:
        await store.aclose()
    our_error(error, InvalidArgument, "conversation")


@pytest.mark.parametrize("where", ["send", "start_session", "conversation-option"])
async def test_variables_that_are_not_variables_are_an_invalid_argument(emu: RunningEmulator, where: str) -> None:
    async with _harness.emulator_client(emu) as owner:
        calls: dict[str, Callable[[], Any]] = {
            "send": lambda: _harness.conversation(owner, "vars-1").send("hi", variables="abc"),  # type: ignore[arg-type]
            "start_session": lambda: owner.start_session(variables="abc"),
            "conversation-option": lambda: _harness.conversation(owner, "vars-2", variables="abc").send("hi"),
        }
        error = await _error_of(calls[where], f'variables="abc" on {where}')
    our_error(error, (InvalidArgument, ConfigError), "variables")


def _damage_sqlite(path: Path) -> int:
    """Cut every JSON value in every table short (whatever the schema); how many were damaged."""
    damaged = 0
    with sqlite3.connect(path) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            for column in columns:
                damaged += conn.execute(
                    f"UPDATE {table} SET {column} = substr({column}, 1, 12) "
                    f"WHERE typeof({column}) = 'text' AND substr({column}, 1, 1) IN ('{{', '[')"
                ).rowcount
    return damaged


def _damage_redis(url: str) -> int:
    """Cut every JSON value (strings and list items) short; how many were damaged."""
    client: Any = redis.Redis.from_url(url)
    damaged = 0
    try:
        for key in client.scan_iter(count=500):
            kind = client.type(key)
            if kind == b"string":
                value = client.get(key) or b""
                if value[:1] in (b"{", b"["):
                    client.set(key, value[:12], keepttl=True)
                    damaged += 1
            elif kind == b"list":
                for index, value in enumerate(client.lrange(key, 0, -1)):
                    if value[:1] in (b"{", b"["):
                        client.lset(key, index, value[:12])
                        damaged += 1
    finally:
        client.close()
    return damaged


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
@pytest.mark.parametrize("read", ["record", "transcript", "list_conversations", "send"])
async def test_a_damaged_row_is_our_store_error_naming_the_conversation(
    emu: RunningEmulator, kind: str, read: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db = tmp_path / "sessions.db"
    url = request.getfixturevalue("redis_proc").url if kind == "redis" else ""

    def make() -> _harness.Store:
        return _harness.sqlite_store(db) if kind == "sqlite" else _harness.redis_store(url)

    store = make()
    try:
        async with _harness.emulator_client(emu, store=store) as owner:
            await _harness.conversation(owner, "damaged-row").send("hello")
    finally:
        await store.aclose()
    assert (_damage_sqlite(db) if kind == "sqlite" else _damage_redis(url)) >= 2, "nothing to damage"
    store = make()
    try:
        async with _harness.emulator_client(emu, store=store) as owner:
            conv = _harness.conversation(owner, "damaged-row")
            if read == "list_conversations":
                # A listing must never break on one damaged record (the reaper depends on it): it leaves the
                # damaged one out (with a warning naming it) and lists the others.
                await _harness.conversation(owner, "healthy-row").send("hello")
                listed = await outcome_within(store.list_conversations(), 15, "listing past a damaged row")
                assert listed.error is None, f"listing past a damaged row raised {listed.error!r}"
                ids = [r.conversation_id for r in listed.value]
                assert ids == ["healthy-row"], ids
                return
            calls: dict[str, Callable[[], Any]] = {
                "record": conv.record, "transcript": conv.transcript, "send": lambda: conv.send("again"),
            }
            error = await _error_of(calls[read], f"{read} on a damaged row")
    finally:
        await store.aclose()
    our_error(error, CorruptRecord, "damaged-row")


# ------------------------------------------------------------------ CLI


def _one_clear_line(done: Any, *names: str) -> None:
    """Exit 2, and stderr holds exactly one error line (naming each of ``names``), no traceback."""
    where = f"exit {done.returncode}; stderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr, where
    assert "unexpected" not in done.stderr, where
    assert done.returncode == 2, where
    lines = error_lines(done.stderr)
    assert len(lines) == 1, where
    missing = [name for name in names if name.lower() not in lines[0].lower()]
    assert not missing, f"the error line does not name {missing}: {lines[0]}"


def test_chat_with_non_utf8_bytes_piped_in_is_no_crash(cli: CliRun) -> None:
    done = cli.run("chat", "--no-stream", input=b"hello \xff\xfe there\nand a clean line\n")
    where = f"exit {done.returncode}; stderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr, where
    assert "unexpected" not in done.stderr, where
    assert done.returncode in (0, 2), where
    if done.returncode == 2:
        assert len(error_lines(done.stderr)) == 1, where


def test_chat_with_stdin_closed_exits_2_with_one_line(cli: CliRun) -> None:
    done = cli.run("chat", "--no-stream", preexec=lambda: os.close(0))
    _one_clear_line(done)
    assert any(word in done.stderr.lower() for word in ("stdin", "standard input", "input")), done.stderr


def test_run_on_deeply_nested_yaml_exits_2_naming_the_file(cli: CliRun, tmp_path: Path) -> None:
    suite = tmp_path / "deep.yaml"
    suite.write_text("[" * 100_000)
    _one_clear_line(cli.run("run", str(suite)), str(suite))


def _cap_memory() -> None:
    # A net for the machine while the finding stands: reading /dev/zero without a cap ends in MemoryError.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_run_on_an_endless_file_exits_2_naming_the_file(cli: CliRun) -> None:
    _one_clear_line(cli.run("run", "/dev/zero", preexec=_cap_memory), "/dev/zero")
