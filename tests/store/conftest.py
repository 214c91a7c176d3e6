"""Fixtures for the store tests: a real Redis (found or started once per session) and unique key prefixes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ holds shared helpers (redis_server.py); pytest puts it on sys.path only once tests/conftest.py
# exists, so make the import work before that too.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from redis_server import delete_prefix, redis_url_or_skip, unique_prefix  # noqa: E402


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL on loopback (REDIS_URL, 127.0.0.1:6379, or a throwaway redis-server); skipped if none."""
    yield from redis_url_or_skip()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix for one test; every key under it is deleted afterwards."""
    prefix = unique_prefix()
    yield prefix
    delete_prefix(redis_url, prefix)
