"""One gateway worker: its configuration, its parts wired together, its start and its orderly stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from dataclasses import dataclass, field

from sessionforce.config import ClientSettings
from sessionforce.gateway._agent import Agent
from sessionforce.gateway._config import GatewaySettings, SigningKey
from sessionforce.gateway._hub import EventWriter, Hub
from sessionforce.gateway._requests import Guard
from sessionforce.gateway._state import StateUnavailable
from sessionforce.gateway._state_open import open_state
from sessionforce.gateway._telemetry import GatewayTelemetry
from sessionforce.gateway._tokens import TokenVerifier
from sessionforce.gateway._turns import Turns

__all__ = ["Gateway", "GatewayConfig"]

logger = logging.getLogger("sessionforce.gateway")


@dataclass(frozen=True)
class GatewayConfig:
    """Everything a gateway worker needs. Picklable: worker processes receive it from their supervisor."""

    org: ClientSettings
    """Where the agent is (My Domain, credentials, agent id), as the library reads it."""
    store_url: str
    """The conversation store; the gateway's shared state follows it (see docs/gateway.md)."""
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    signing_keys: tuple[SigningKey, ...] = ()
    """Defaults to the settings' keys; empty there too: one random key (this process only)."""
    emulator: bool = False
    """The org is the built-in emulator: the demo token route is on unless an API key is configured."""

    def keys(self) -> tuple[SigningKey, ...]:
        """The signing keys in force (the first signs)."""
        return self.signing_keys or tuple(self.settings.signing_keys()) or (SigningKey.generate(),)

    @property
    def demo(self) -> bool:
        """Whether ``POST /v1/demo/token`` is offered."""
        return self.settings.demo or (self.emulator and not self.settings.api_key)


class Gateway:
    """One worker's parts, wired together; :meth:`start` and :meth:`stop` bracket its life."""

    def __init__(self, config: GatewayConfig, telemetry: GatewayTelemetry | None = None) -> None:
        settings = self.settings = config.settings
        self.config = config
        self.telemetry = telemetry or GatewayTelemetry()
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.state = open_state(config.store_url, origin=self.origin, event_retention=settings.event_retention,
                                retention=settings.retention)
        self.hub = Hub(self.state)
        self.writer = EventWriter(self.state, self.hub)
        self.agent = Agent(config.org, config.store_url, lease_ttl=settings.lease_ttl, queue_wait=settings.queue_wait,
                           telemetry=self.telemetry.library)
        self.turns = Turns(self.agent, self.state, self.writer, self.hub, settings, self.origin,
                           deduplicated=self.telemetry.deduplicated)
        self.guard = Guard(TokenVerifier(config.keys()), settings.api_key, self.state, user_rate=settings.user_rate,
                           ip_rate=settings.ip_rate, metrics_keys=settings.metrics_key)
        self.demo = config.demo
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._drain_started: float | None = None

    async def start(self) -> None:
        """Open the store and the client, start hearing other workers, start the reaper."""
        self._loop = asyncio.get_running_loop()
        await self.agent.open()
        self.hub.start()
        if self.settings.idle_timeout:
            self._reaper = self._loop.create_task(self._reap(), name="sessionforce-gateway-reaper")

    def begin_drain(self) -> None:
        """Shutdown begins (callable from any thread or a signal handler): refuse new work, tell event
        streams to re-attach elsewhere, let running turns finish."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._drain()
        else:
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        if self._drain_started is None:
            self._drain_started = asyncio.get_running_loop().time()
            logger.info("draining: %d running turn(s), %d event stream(s)", self.turns.running, self.hub.readers)
        self.hub.drain()

    async def stop(self) -> None:
        """Drain, give running turns ``shutdown_timeout`` seconds, cancel the rest (each records that it
        may have been delivered), then close everything."""
        self._drain()
        tasks = self.turns.tasks()
        if tasks:
            # One budget from the start of the drain, however much of it the server already spent.
            assert self._drain_started is not None
            left = self.settings.shutdown_timeout - (asyncio.get_running_loop().time() - self._drain_started)
            logger.info("waiting for %d running turn(s) to finish", len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=max(0.5, left))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self.writer.aclose()
        await self.hub.aclose()
        try:
            await self.agent.aclose()
        finally:
            try:
                await self.state.aclose()
            finally:
                self.telemetry.shutdown()

    async def _reap(self) -> None:
        interval = self.settings.reap_interval
        while True:
            await asyncio.sleep(interval * (0.5 + random.random()))  # jittered: workers do not all wake at once
            try:
                # One worker per interval does the listing; the lifecycle makes even two at once safe.
                if not await self.state.try_job("reap", self.origin, interval * 0.9):
                    continue
                for conversation_id, session_id in await self.agent.reap(self.settings.idle_timeout):
                    self.writer.publish(conversation_id, "session.ended",
                                        {"session_id": session_id, "reason": "Expiration", "by": "gateway"})
                await self.state.purge()
            except Exception as exc:
                logger.warning("the reaper's pass failed: %s", type(exc).__name__)

    async def readiness(self) -> str | None:
        """``None`` when ready, else the first check that failed."""
        if self.hub.draining:
            return "shutting_down"
        try:
            await self.state.ping()
        except StateUnavailable:
            return "state"
        return await self.agent.check()
