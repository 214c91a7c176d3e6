"""Fixtures of the adversarial suite (issue 11): a hostile Agent API, real redis-server processes we kill,
freeze and restart empty, hostile disks for SQLite, captured DEBUG logs and the CLI as a subprocess.

Every test here is bounded (30 s); tests that prove a finding not yet fixed are marked
``xfail(strict=True)`` with the finding's number, so the suite turns red the moment a fix lands without
its marker being removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial._canary import Canaries, LogCapture
from tests.adversarial._cli import CliRun
from tests.adversarial._disk import SmallDisk, small_disk_or_skip
from tests.adversarial._hostile import HostileServer
from tests.adversarial._redis_proc import RedisProcess, redis_binary_or_skip

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every adversarial test is bounded by 30 s unless it says otherwise."""
    for item in items:
        if _HERE in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(30))


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    """A hostile Agent API on loopback (well-behaved until a test scripts it)."""
    with HostileServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """The redis-server binary (skipped without it, failed without it under CI)."""
    return redis_binary_or_skip()


@pytest.fixture
def redis_proc(redis_binary: str) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, on a free loopback port, killed afterwards."""
    with RedisProcess(redis_binary) as process:
        yield process


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    """A 2 MB tmpfs (skipped where it cannot be mounted)."""
    with small_disk_or_skip("2m") as disk:
        yield disk


@pytest.fixture
def canaries() -> Canaries:
    """Fresh unique values to plant in the client secret, the access token and the Redis password."""
    return Canaries()


@pytest.fixture
def debug_logs() -> Iterator[LogCapture]:
    """Every log record at DEBUG and above, from every logger, for the length of the test."""
    handler = LogCapture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def cli(tmp_path: Path) -> CliRun:
    """The CLI with no org configured and every user directory under ``tmp_path``."""
    home = tmp_path / "home"
    home.mkdir()
    return CliRun(home)
