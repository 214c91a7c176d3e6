"""Find a real Redis for the tests, or start a throwaway one (a plain helper, no fixtures).

Order: ``REDIS_URL`` if set (it must answer), else ``127.0.0.1:6379`` if it answers PING, else a
``redis-server`` started on a free loopback port in a temporary directory (no persistence), stopped when
the context exits. When none can be had: skip, except under ``CI`` where Redis tests must run, so fail.

Use it from a conftest::

    from redis_server import redis_url_or_skip, unique_prefix, delete_prefix

    @pytest.fixture(scope="session")
    def redis_url() -> Iterator[str]:
        yield from redis_url_or_skip()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

__all__ = [
    "RedisProcess",
    "RedisUnavailable",
    "delete_prefix",
    "redis_url_or_skip",
    "running_redis",
    "throwaway_redis_server",
    "unique_prefix",
]

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisUnavailable(Exception):
    """No Redis could be found or started; the message says why."""


def _answers(url: str) -> str | None:
    """``None`` when the Redis at ``url`` answers PING, else why not."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def throwaway_redis_server(binary: str = "redis-server") -> Iterator[str]:
    """A ``redis-server`` on a free loopback port, without persistence, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="sessionforce-redis-") as workdir:
        port = _free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", workdir, "--logfile", os.path.join(workdir, "redis.log")]
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while (why := _answers(url)) is not None:
                if process.poll() is not None:
                    raise RedisUnavailable(f"redis-server exited at start ({process.returncode}); see its stderr")
                if time.monotonic() > deadline:
                    raise RedisUnavailable(f"redis-server on port {port} did not answer within 10 s ({why})")
                time.sleep(0.02)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()


@contextlib.contextmanager
def running_redis() -> Iterator[str]:
    """The URL of a Redis that answers; raises :class:`RedisUnavailable` saying why there is none."""
    explicit = os.environ.get("REDIS_URL")
    if explicit:
        why = _answers(explicit)
        if why is not None:
            raise RedisUnavailable(f"REDIS_URL is set but that Redis does not answer ({why})")
        yield explicit
        return
    if _answers(DEFAULT_URL) is None:
        yield DEFAULT_URL
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "no Redis answers on 127.0.0.1:6379, REDIS_URL is not set and redis-server is not installed "
            "(apt-get install redis-server)"
        )
    with throwaway_redis_server(binary) as url:
        yield url


def redis_url_or_skip() -> Iterator[str]:
    """Generator body for a session fixture: yields a Redis URL, or skips (fails under ``CI``)."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(running_redis())
        except RedisUnavailable as exc:
            if os.environ.get("CI"):
                pytest.fail(f"Redis tests must run in CI, but no Redis is available: {exc}")
            pytest.skip(f"no Redis available: {exc}")
        yield url


def unique_prefix() -> str:
    """A key prefix no other test (or other data in that Redis) uses."""
    return f"sftest:{uuid.uuid4().hex}:"


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (SCAN is fine here: test cleanup, not the store)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=5.0)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


class RedisProcess:
    """A ``redis-server`` of a test's own on a free loopback port, to break on purpose: :meth:`kill` (SIGKILL),
    :meth:`restart_empty` (SIGKILL, then a fresh empty server on the same port), :meth:`freeze` (SIGSTOP: it
    keeps its sockets and answers nothing) and :meth:`thaw` (SIGCONT: it runs whatever queued up). Never
    persists anything. Use as a context manager; skips (fails under ``CI``) without the binary."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            why = "the redis-server binary is not installed (apt-get install redis-server)"
            if os.environ.get("CI"):
                pytest.fail(why)
            pytest.skip(why)
        self._binary = binary
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="sessionforce-redis-")
        self._process: subprocess.Popen[bytes] | None = None
        self._frozen = False

    def start(self) -> RedisProcess:
        """Start it, empty, and wait until it answers PING (retrying while a killed one's port is released)."""
        args = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", self._dir.name, "--logfile", os.path.join(self._dir.name, "redis.log")]
        deadline = time.monotonic() + 10
        while True:
            self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
            while self._process.poll() is None and time.monotonic() < deadline:
                if _answers(self.url) is None:
                    return self
                time.sleep(0.02)
            if time.monotonic() >= deadline:
                self.kill()
                raise RedisUnavailable(f"redis-server did not answer on port {self.port} within 10 s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing saved."""
        if self._process is not None and self._process.poll() is None:
            if self._frozen:
                self._process.send_signal(signal.SIGCONT)
            self._process.kill()
            self._process.wait(5)
        self._frozen = False

    def restart_empty(self) -> None:
        """SIGKILL, then a fresh, empty server on the same port."""
        self.kill()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)
        self._frozen = False

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
        self._dir.cleanup()
