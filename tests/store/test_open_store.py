"""`open_store`: which store a URL (or SESSIONFORCE_STORE, or nothing) opens, and errors for bad URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionforce.errors import ConfigError
from sessionforce.store import MemoryStore, RedisStore, SQLiteStore, Store, default_sqlite_path, open_store


async def test_memory_url() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    assert isinstance(store, Store)


async def test_sqlite_url_with_an_absolute_path(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/sub/s.db")  # tmp_path is absolute: sqlite:///tmp/...
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "sub" / "s.db"
    assert isinstance(store, Store)


async def test_sqlite_url_with_four_slashes_is_the_same_absolute_path() -> None:
    store = open_store("sqlite:////var/tmp/s.db")
    assert isinstance(store, SQLiteStore)
    assert store.path == Path("/var/tmp/s.db")


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://:pw@127.0.0.1:6379/2", "rediss://h:6380/0"])
async def test_redis_urls(url: str) -> None:
    store = open_store(url)  # nothing connects until the first call
    assert isinstance(store, RedisStore)
    assert isinstance(store, Store)
    assert "pw" not in repr(store)
    assert repr(store).startswith(f"RedisStore('{url.split(':')[0]}://")
    await store.aclose()


async def test_the_env_var_is_read_when_no_url_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONFORCE_STORE", "memory://")
    assert isinstance(open_store(), MemoryStore)


async def test_without_url_or_env_var_the_default_sqlite_file_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONFORCE_STORE", raising=False)
    store = open_store()
    assert isinstance(store, SQLiteStore)
    assert store.path == default_sqlite_path()
    assert store.path.name == "sessions.db"


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("mongodb://db/x", "unknown scheme 'mongodb'"),
        ("postgresql://db/x?pool_max=many", "pool_max='many' is not valid"),
        ("just-a-path.db", "no scheme"),
        ("sqlite://", "needs a file path"),
        ("sqlite:///", "needs a file path"),
        ("sqlite://relative.db", "needs a file path"),
        ("redis://:secret@host:notaport/0", "not a valid Redis URL"),
        ("redis://:secret@host:6379/notadb", "names the database 'notadb', which is not a number"),
    ],
)
def test_bad_urls_raise_config_error_naming_the_setting(url: str, names: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    message = str(caught.value)
    assert names in message
    assert "secret" not in message
    # The variable is named only when the URL came from it: a caller that passed it names its own source.
    assert "SESSIONFORCE_STORE" not in message
    monkeypatch.setenv("SESSIONFORCE_STORE", url)
    with pytest.raises(ConfigError) as caught:
        open_store()
    assert "SESSIONFORCE_STORE" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("reddis://:PASSWORD-c4n4ry@redis.internal:6379/0", "unknown scheme 'reddis'"),  # a typo in the scheme
        ("redis://:PASSWORD-c4n4ry@[::1/0", "not a valid Redis URL (Invalid IPv6 URL)"),
        ("redis://user:PASSWORD-c4n4ry@host:port/0", "not a valid Redis URL"),
        ("user:PASSWORD-c4n4ry@host:6379/0", "no scheme"),  # the scheme forgotten
        ("redis://:PASSWORD-c4n4ry@host:6379/0?password=PASSWORD-c4n4ry&prefix=x&db=nope", "not a valid Redis URL"),
    ],
)
def test_a_url_that_cannot_be_used_never_echoes_its_password(
    url: str, names: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 finding 4c: our ConfigError, saying what is wrong, and never the password."""
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    message = str(caught.value)
    assert names in message
    assert "c4n4ry" not in message
    assert "c4n4ry" not in repr(caught.value)
    assert caught.value.__cause__ is None  # a lower library's message (which may hold the URL) is not chained
    monkeypatch.setenv("SESSIONFORCE_STORE", url)  # the same URL from the environment: named, still redacted
    with pytest.raises(ConfigError) as caught:
        open_store()
    assert "SESSIONFORCE_STORE" in str(caught.value)
    assert "c4n4ry" not in str(caught.value)
