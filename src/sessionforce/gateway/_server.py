"""Running the gateway: in the foreground (``sessionforce serve``, one or several worker processes), or in a
background thread (:func:`run_gateway`, for tests and embedding).

uvicorn only tells an app about shutdown once its connections are done, and event streams are never
done: so our server tells the gateway to drain the moment shutdown is asked for (signal or stop), and the
streams end themselves with a ``reconnect`` event. Several workers share one listening socket, bound by
the parent and handed to each spawned child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from sessionforce.gateway._app import create_app
from sessionforce.gateway._gateway import Gateway, GatewayConfig
from sessionforce.gateway._logs import configure_logging

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["RunningGateway", "bind", "run_gateway", "serve"]

logger = logging.getLogger("sessionforce.gateway")

KEEP_ALIVE_SECONDS = 75
STARTUP_FAILURE = 3  # uvicorn's exit code for a worker that could not start


def bind(host: str, port: int) -> tuple[socket.socket, str]:
    """A listening socket on ``host:port`` (0 = a free port) and the URL it serves (raises OSError)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    return sock, f"http://{shown}:{bound_port}"


class _Server(uvicorn.Server):
    """uvicorn, draining the gateway as soon as shutdown is asked for; :meth:`request_stop` from any thread."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start, then say so (for :func:`run_gateway`)."""
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """As uvicorn's, but the signal is not raised again after the graceful shutdown: a drained gateway
        exits 0, like other servers do on SIGTERM."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A signal: drain first, then let uvicorn shut down."""
        self.gateway.begin_drain()
        super().handle_exit(sig, frame)

    def request_stop(self) -> None:
        """Shut down as a signal would (thread-safe)."""
        self.gateway.begin_drain()
        self.should_exit = True


def _uvicorn_config(app: Any, config: GatewayConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app, lifespan="on", access_log=False, log_config=None, server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS, timeout_graceful_shutdown=int(config.settings.shutdown_timeout) + 1,
        ws="none",
    )


@dataclass
class RunningGateway:
    """A gateway serving in a background thread: its URL, its parts, and :meth:`stop`."""

    url: str
    gateway: Gateway
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 30.0) -> None:
        """Drain and shut down (in-flight turns finish, streams are told to re-attach); wait for the thread."""
        self._server.request_stop()
        self._thread.join(timeout)


@contextlib.contextmanager
def run_gateway(config: GatewayConfig, *, host: str = "127.0.0.1", port: int = 0,
                tracer_provider: TracerProvider | None = None) -> Iterator[RunningGateway]:
    """Serve ``config``'s gateway on a free loopback port for the ``with`` block (a real socket: event
    streams cannot be tested through ASGI test transports, which buffer whole bodies). ``tracer_provider``:
    where its spans go (``None``: OpenTelemetry's global provider)."""
    app = create_app(config, tracer_provider=tracer_provider)
    sock, url = bind(host, port)
    server = _Server(_uvicorn_config(app, config), app.state.gateway)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              name=f"sessionforce-gateway-{url.rsplit(':', 1)[1]}", daemon=True)
    thread.start()
    while not server.ready.wait(0.01):
        if not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the gateway failed to start on {url} (see the log)")
    running = RunningGateway(url, app.state.gateway, server, thread)
    try:
        yield running
    finally:
        running.stop()
        sock.close()


def _worker(config: GatewayConfig, sock: socket.socket, log_format: str, log_level: str) -> None:
    """One worker process: serve on the inherited socket until SIGTERM/SIGINT."""
    configure_logging(log_format, log_level)  # type: ignore[arg-type]
    app = create_app(config)
    server = _Server(_uvicorn_config(app, config), app.state.gateway)
    server.run(sockets=[sock])


def serve(config: GatewayConfig, sock: socket.socket, *, workers: int = 1, log_format: str = "text",
          log_level: str = "info") -> int:
    """Serve until SIGTERM or SIGINT on ``sock`` with ``workers`` processes; returns the exit status.

    One worker runs in this process. Several are spawned (each opens its own store and client) and kept
    running: one that dies is replaced, unless workers keep failing at start, which stops them all.
    """
    if workers <= 1:
        _worker(config, sock, log_format, log_level)
        return 0
    return _Supervisor(config, sock, workers, log_format, log_level).run()


class _Supervisor:
    """Spawns the workers, replaces those that die, forwards shutdown, and waits for them (bounded)."""

    def __init__(self, config: GatewayConfig, sock: socket.socket, workers: int, log_format: str,
                 log_level: str) -> None:
        self._args = (config, sock, log_format, log_level)
        self._count = workers
        self._grace = config.settings.shutdown_timeout + 10
        self._context = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self._processes: list[Any] = []

    def _spawn(self) -> Any:
        process = self._context.Process(target=_worker, args=self._args, name="sessionforce-gateway-worker")
        process.start()
        return process

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        status = 0
        try:
            started = [time.monotonic()] * self._count
            self._processes = [self._spawn() for _ in range(self._count)]
            failures = 0
            while not self._stop.wait(0.5):
                for index, process in enumerate(self._processes):
                    if process.is_alive():
                        continue
                    quick = time.monotonic() - started[index] < 10
                    failures = failures + 1 if quick or process.exitcode == STARTUP_FAILURE else 0
                    if failures >= 3:
                        logger.error("workers keep failing at start; stopping")
                        self._stop.set()
                        status = 1
                        break
                    logger.warning("worker %s exited (%s); starting another", process.pid, process.exitcode)
                    started[index] = time.monotonic()
                    self._processes[index] = self._spawn()
        finally:
            for process in self._processes:
                if process.is_alive():
                    process.terminate()  # SIGTERM: each drains and finishes its turns
            deadline = time.monotonic() + self._grace
            for process in self._processes:
                process.join(max(0.1, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
                    process.join(5)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status
