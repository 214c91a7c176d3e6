"""Helpers for the gateway tests: configs on the emulator, a browser over httpx, SSE reading, and
``sessionforce serve`` in a subprocess (real signals, real worker processes)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sessionforce.config import ClientSettings
from sessionforce.emulator import RunningEmulator
from sessionforce.gateway import GatewayConfig, GatewaySettings
from tests.support import Admin

API_KEY = "test-api-key-0123456789"
SIGNING_KEY = "test-signing-key-0123456789-0123456789-abcdef"
ROOT = Path(__file__).resolve().parents[2]


def org_settings(emu: RunningEmulator) -> ClientSettings:
    """Client settings for the emulator's demo agent."""
    return ClientSettings.load(my_domain=emu.url, client_id=emu.client_id, client_secret=emu.client_secret,
                               agent_id=emu.default_agent_id)


def make_config(emu: RunningEmulator, store_url: str = "memory://", *, emulator: bool = False,
                **settings: Any) -> GatewayConfig:
    """A gateway config on ``emu`` with the test keys; ``settings`` override :class:`GatewaySettings`."""
    values: dict[str, Any] = {"api_key": [API_KEY], "signing_key": [SIGNING_KEY], "idle_timeout": 0, **settings}
    return GatewayConfig(org=org_settings(emu), store_url=store_url, settings=GatewaySettings.load(**values),
                         emulator=emulator)


@dataclass
class SSE:
    """One event read from a stream."""

    event: str
    data: Any
    id: str | None = None


def read_sse(lines: Iterator[str], *, until: set[str] | None = None, limit: int = 10_000,
             into: list[SSE] | None = None) -> list[SSE]:
    """Events from SSE lines (comments skipped), stopping after an event whose type is in ``until``; each is
    also appended to ``into`` as soon as it is complete (kept should the stream then fail)."""
    events: list[SSE] = [] if into is None else into
    kind, data, event_id = "message", [], None
    for line in lines:
        if line == "":
            if data:
                events.append(SSE(kind, json.loads("\n".join(data)), event_id))
                if (until is not None and kind in until) or len(events) >= limit:
                    return events
            kind, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = value
            elif name == "id":
                event_id = value
    return events


@dataclass
class Browser:
    """What a web page does, over httpx: tokens, messages, event streams."""

    url: str
    token: str = ""
    conversation: str = ""
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(30, connect=5))

    @classmethod
    def signed_in(cls, url: str, user: str = "u-1", conversations: list[str] | None = None) -> Browser:
        """A browser holding a token minted with the API key (a new conversation unless given)."""
        browser = cls(url)
        body: dict[str, Any] = {"user": user}
        if conversations is not None:
            body["conversations"] = conversations
        answer = browser.http.post("/v1/tokens", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
        answer.raise_for_status()
        browser.token = answer.json()["token"]
        browser.conversation = answer.json()["conversations"][0]
        return browser

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def send(self, message_id: str, text: str, conversation: str | None = None, **extra: Any) -> httpx.Response:
        """POST one message, JSON answer."""
        return self.http.post(f"/v1/conversations/{conversation or self.conversation}/messages",
                              json={"id": message_id, "text": text, **extra}, headers=self.auth)

    def send_streamed(self, message_id: str, text: str, **extra: Any) -> list[SSE]:
        """POST one message, SSE answer: the turn's events."""
        with self.http.stream("POST", f"/v1/conversations/{self.conversation}/messages",
                              json={"id": message_id, "text": text, **extra},
                              headers={**self.auth, "Accept": "text/event-stream"}) as response:
            assert response.status_code == 200, response.read()
            return read_sse(response.iter_lines())

    @contextlib.contextmanager
    def events(self, after: str | None = None, *, header: bool = True) -> Iterator[Iterator[str]]:
        """The event stream's lines (``Last-Event-ID`` header, or ``?after=`` when not ``header``)."""
        headers = dict(self.auth)
        params = {}
        if after is not None:
            if header:
                headers["Last-Event-ID"] = after
            else:
                params["after"] = after
        with self.http.stream("GET", f"/v1/conversations/{self.conversation}/events", headers=headers,
                              params=params) as response:
            assert response.status_code == 200, response.read()
            yield response.iter_lines()

    def close(self) -> None:
        self.http.close()


def wait_for_turn(admin: Admin, text: str, timeout: float = 10) -> None:
    """Until the emulator's agent has received the turn ``text`` (it is being answered)."""
    deadline = time.monotonic() + timeout
    while not any(t["text"] == text for t in admin.turns()):
        assert time.monotonic() < deadline, f"the agent never got {text!r}"
        time.sleep(0.02)


@dataclass
class ServeProcess:
    """``sessionforce serve`` running in a subprocess."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def gateway_env(emu: RunningEmulator, tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a serve subprocess on ``emu``: org from SF_*, keys, no user profile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "SESSIONFORCE_"))}
    env.update(SF_MY_DOMAIN=emu.url, SF_CLIENT_ID=emu.client_id, SF_CLIENT_SECRET=emu.client_secret,
               SF_AGENT_ID=emu.default_agent_id, SESSIONFORCE_CONFIG=str(tmp / "no-config.toml"),
               SESSIONFORCE_GATEWAY_API_KEY=API_KEY, SESSIONFORCE_GATEWAY_SIGNING_KEY=SIGNING_KEY,
               SESSIONFORCE_GATEWAY_IDLE_TIMEOUT="0", PYTHONPATH=str(ROOT / "src"), **extra)
    return env


def _serve_argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "sessionforce.cli", "serve", "--port", "0", *args]


def _wait_serving(running: ServeProcess, deadline: float, ready: bool) -> None:
    """Until ``running`` listens (and, with ``ready``, /readyz answers 200); its log if it exits first."""
    while time.monotonic() < deadline:
        if not running.url:
            match = re.search(r"gateway on (http://\S+)", running.output())
            if match:
                running.url = match.group(1)
        if running.url:
            if not ready:
                return
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(running.url + "/readyz", timeout=2).status_code == 200:
                    return
        if running.process.poll() is not None:
            raise RuntimeError(f"serve exited with {running.process.returncode}:\n{running.output()}")
        time.sleep(0.05)
    raise RuntimeError(f"serve did not become ready:\n{running.output()}")


@contextlib.contextmanager
def serve_processes(commands: list[tuple[list[str], Path]], env: dict[str, str], timeout: float = 30, *,
                    ready: bool = True) -> Iterator[list[ServeProcess]]:
    """Start every ``(argv, log)`` at once (several hosts booting side by side, not one after the other),
    wait until each serves (see :func:`serve_process`), and stop them all together on exit."""
    handles: list[Any] = []
    started: list[ServeProcess] = []
    try:
        for argv, log in commands:
            handles.append(log.open("w"))
            process = subprocess.Popen(argv, env=env, stdout=handles[-1], stderr=subprocess.STDOUT, text=True,
                                       cwd=ROOT)
            started.append(ServeProcess(process, "", log))
        deadline = time.monotonic() + timeout
        for running in started:
            _wait_serving(running, deadline, ready)
        yield started
    finally:
        for running in started:  # the signals first, then the waits: they drain side by side
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
        for running in started:
            running.stop()
        for handle in handles:
            handle.close()


@contextlib.contextmanager
def serve_process(args: list[str], env: dict[str, str], log: Path, timeout: float = 30, *,
                  ready: bool = True, command: list[str] | None = None) -> Iterator[ServeProcess]:
    """Start ``sessionforce serve --port 0 ARGS`` (or ``command``, which ends by exec-ing a serve), wait until
    it listens (and, with ``ready``, until /readyz answers 200), stop it on exit."""
    with serve_processes([(command or _serve_argv(args), log)], env, timeout, ready=ready) as (running,):
        yield running
