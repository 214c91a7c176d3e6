"""A real ``redis-server`` process the test owns: started on a free loopback port, killed with SIGKILL,
frozen with SIGSTOP (and thawed with SIGCONT), restarted EMPTY on the same port, optionally with a
password (``requirepass``). Never persists anything (``--save "" --appendonly no``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

__all__ = ["RedisProcess", "redis_binary_or_skip"]


def redis_binary_or_skip() -> str:
    """The ``redis-server`` binary; skip when it is missing (fail under ``CI``, which has Redis)."""
    binary = shutil.which("redis-server")
    if binary is None:
        why = "the redis-server binary is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"the adversarial Redis tests must run in CI: {why}")
        pytest.skip(why)
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int, password: str | None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            if password:
                sock.sendall(f"*2\r\n$4\r\nAUTH\r\n${len(password)}\r\n{password}\r\n".encode())
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """One ``redis-server`` on ``127.0.0.1:port``. Use as a context manager (it is killed on exit)."""

    def __init__(self, binary: str, *, password: str | None = None) -> None:
        self.binary = binary
        self.password = password
        self.port = _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="sf-adv-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:port/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        """Start it (empty) on its port and wait until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self._dir.name, "--logfile", os.path.join(self._dir.name, "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        deadline = time.monotonic() + timeout
        while True:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            while time.monotonic() < deadline:
                if _ping(self.port, self.password):
                    self.frozen = False
                    return self
                if self.process.poll() is not None:
                    break  # the port may still be held for a moment after a kill: try again
                time.sleep(0.01)
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL (no shutdown, no save) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)
        self.frozen = False

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its sockets and answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT: it carries on, running whatever commands queued up while frozen."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def restart_empty(self) -> None:
        """SIGKILL, then a fresh, empty server on the same port (a restart without persistence)."""
        self.kill()
        self.start()

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.frozen and self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
        self.kill()
        self._dir.cleanup()
