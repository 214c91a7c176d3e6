"""Run the emulator: in a background thread for tests (:func:`run_emulator`), or in the foreground (CLI).

Tests get a real uvicorn server on a free loopback port rather than an ASGI test transport, because
those buffer whole bodies and SSE tests against them hang. The thread's server waits on an event
instead of uvicorn's 0.1 s polling loop, so stopping it takes about 0.1 s, not a tick plus a drain.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from sessionforce.emulator._app import create_app
from sessionforce.emulator._config import EmulatorConfig
from sessionforce.emulator._faults import load_faults, parse_faults
from sessionforce.emulator._loading import AgentSource, load_agents
from sessionforce.emulator._responses import install_quiet_resets
from sessionforce.emulator._state import EmulatorState

T = TypeVar("T")
FaultSource = str | Path | Mapping[str, Any]


def build_state(*, agents: AgentSource | None = None, faults: FaultSource | None = None,
                config: EmulatorConfig | None = None) -> EmulatorState:
    """Load agents and faults (raising AgentConfigError / FaultConfigError) into a fresh state."""
    config = config or EmulatorConfig()
    return EmulatorState(config, load_agents(agents), load_faults(faults, config.seed))


KEEP_ALIVE_SECONDS = 75
"""How long the emulator keeps an idle client connection open."""


def uvicorn_config(state: EmulatorState, host: str, port: int, *, log_config: bool) -> uvicorn.Config:
    """The uvicorn settings we always use: no access log, no lifespan, no ``server:`` header."""
    install_quiet_resets()
    kwargs: dict[str, Any] = {} if log_config else {"log_config": None}
    # Keep idle connections 75 s, like the load balancers in front of real APIs (uvicorn's 5 s default
    # is shorter than clients' pools keep them, which makes a busy client reuse connections already closed).
    return uvicorn.Config(create_app(state), host=host, port=port, lifespan="off", access_log=False,
                          timeout_keep_alive=KEEP_ALIVE_SECONDS,
                          log_level="warning", server_header=False, timeout_graceful_shutdown=2, **kwargs)


class _ThreadServer(uvicorn.Server):
    """A uvicorn server whose main loop waits for :meth:`request_stop` (no 0.1 s polling)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def main_loop(self) -> None:
        """Refresh the Date header every second until asked to stop."""
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ticks = 0
        await self.on_tick(ticks)
        self.ready.set()
        while not self.should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=1.0)
            ticks += 10  # on_tick refreshes the Date header when ticks % 10 == 0
            await self.on_tick(ticks)

    def request_stop(self) -> None:
        """Ask the server to shut down (thread-safe)."""
        self.should_exit = True
        if self.loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self.loop.call_soon_threadsafe(self._stop.set)


@dataclass
class RunningEmulator:
    """A running emulator: where it is, what it accepts, and helpers that poke its state directly."""

    url: str
    client_id: str
    client_secret: str
    agent_ids: list[str]
    default_agent_id: str
    #: Where the Agent API is served: ``url`` itself, or a second port with ``separate_api_host``.
    api_url: str
    state: EmulatorState = field(repr=False)
    _server: _ThreadServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint (``{url}/services/oauth2/token``)."""
        return f"{self.url}/services/oauth2/token"

    def call(self, fn: Callable[[EmulatorState], T]) -> T:
        """Run ``fn(state)`` on the server's event loop (state is not thread-safe) and return its result."""
        loop = self._server.loop
        if loop is None:
            raise RuntimeError("the emulator is not running")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(self.state))
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=10)

    def reset(self) -> None:
        """Forget sessions, tokens, counters and faults (like ``POST /__emulator/reset``)."""
        self.call(lambda s: s.reset())

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward (idle expiry, token lifetimes, rate windows); ValueError, with
        the clock untouched, for a negative, non-finite or absurdly large step."""
        self.call(lambda s: s.clock.advance(seconds))

    def set_strict(self, strict: bool) -> None:
        """Turn strict mode on or off (every deviation from the documented shapes answers 400)."""
        self.call(lambda s: setattr(s, "strict", bool(strict)))

    def deviations(self) -> list[dict[str, Any]]:
        """The deviations recorded since the last reset (``GET /__emulator/deviations``), oldest first."""
        return self.call(lambda s: list(s.deviations))

    def set_faults(self, document: Mapping[str, Any] | None) -> None:
        """Replace the fault rules (None clears them); raises FaultConfigError if invalid."""
        faults = parse_faults(document, "faults", self.state.config.seed)
        self.call(lambda s: setattr(s, "faults", faults))

    def counters(self) -> dict[str, Any]:
        """The counters, as ``GET /__emulator/counters`` answers."""
        def snapshot(state: EmulatorState) -> dict[str, Any]:
            state.sweep()
            return state.counters.snapshot(len(state.active))

        return self.call(snapshot)

    def stop(self, timeout: float = 5.0) -> None:
        """Shut the server down and wait (at most ``timeout`` seconds) for its thread."""
        self._server.request_stop()
        self._thread.join(timeout)


def bind_socket(host: str, port: int) -> tuple[socket.socket, str]:
    """A socket bound to ``host:port`` (0 = a free port) and the URL it will serve (raises OSError).

    Bound here rather than by uvicorn so the real port is known before the server starts. A port outside
    0..65535 is a ValueError (the OS would otherwise take it modulo 65536).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be a whole number from 0 to 65535 (0 = any free port), got {port!r}")
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    return sock, f"http://{shown}:{bound_port}"


def bind_sockets(state: EmulatorState, host: str, port: int) -> tuple[list[socket.socket], str, str]:
    """The sockets to serve (My Domain, plus the Agent API's own with ``separate_api_host``), the My
    Domain URL and the Agent API URL; records the API port in ``state``."""
    sock, url = bind_socket(host, port)
    if not state.config.separate_api_host:
        return [sock], url, url
    try:
        api_sock, api_url = bind_socket(host, 0)
    except OSError:
        sock.close()
        raise
    state.api_port = api_sock.getsockname()[1]
    return [sock, api_sock], url, api_url


def start_emulator(state: EmulatorState, host: str = "127.0.0.1", port: int = 0) -> RunningEmulator:
    """Start ``state``'s emulator in a daemon thread and return once it accepts connections."""
    sockets, url, api_url = bind_sockets(state, host, port)
    bound_port = sockets[0].getsockname()[1]
    server = _ThreadServer(uvicorn_config(state, host, bound_port, log_config=False))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=sockets)),
                              name=f"sessionforce-emulator-{bound_port}", daemon=True)
    thread.start()
    while not server.ready.wait(0.005):
        if not thread.is_alive():
            for sock in sockets:
                sock.close()
            raise RuntimeError(f"the emulator failed to start on {host}:{bound_port}")
    agent_ids = list(state.agents)
    return RunningEmulator(url=url, client_id=state.config.client_id,
                           client_secret=state.config.client_secret, agent_ids=agent_ids,
                           default_agent_id=agent_ids[0], api_url=api_url, state=state, _server=server,
                           _thread=thread)


@contextlib.contextmanager
def run_emulator(*, host: str = "127.0.0.1", port: int = 0, agents: AgentSource | None = None,
                 faults: FaultSource | None = None, idle_timeout: float = 900.0, token_ttl: float = 7200.0,
                 client_id: str = "sessionforce-emulator", client_secret: str = "emulator-secret",
                 max_sessions: int | None = None, requests_per_minute: int | None = None, seed: int = 0,
                 record_transcripts: bool = True, strict: bool = False, token_format: str = "jwt",
                 separate_api_host: bool = False, request_timeout: float = 120.0,
                 max_body_bytes: int = 1_048_576, max_json_depth: int = 64, max_closed_sessions: int = 10_000,
                 closed_session_ttl: float = 86_400.0, max_recorded_turns: int = 100_000,
                 ) -> Iterator[RunningEmulator]:
    """Run an emulator on a free loopback port for the ``with`` block; yields a :class:`RunningEmulator`.

    ``agents``: a YAML path, or a list of agent definitions / agents / callables (None = the demo agent).
    ``faults``: a YAML/JSON path or a mapping in the faults format. The other keywords are
    :class:`EmulatorConfig`'s settings (an invalid one raises :class:`EmulatorConfigError` naming it);
    all times are emulator-clock seconds.
    """
    config = EmulatorConfig(client_id=client_id, client_secret=client_secret, idle_timeout=idle_timeout,
                            token_ttl=token_ttl, max_sessions=max_sessions, requests_per_minute=requests_per_minute,
                            seed=seed, record_transcripts=record_transcripts, strict=strict,
                            token_format=token_format, separate_api_host=separate_api_host,
                            request_timeout=request_timeout, max_body_bytes=max_body_bytes,
                            max_json_depth=max_json_depth, max_closed_sessions=max_closed_sessions,
                            closed_session_ttl=closed_session_ttl, max_recorded_turns=max_recorded_turns)
    emulator = start_emulator(build_state(agents=agents, faults=faults, config=config), host, port)
    try:
        yield emulator
    finally:
        emulator.stop()
