"""A real gateway for the browser tests (the library's own ``run_gateway``: uvicorn in a thread on a free
loopback port), talking to an emulator of its own (so tests read the emulator's counters and force expiries)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from sessionforce.config import ClientSettings
from sessionforce.emulator import RunningEmulator, run_emulator
from sessionforce.gateway import GatewayConfig, GatewaySettings
from sessionforce.gateway import run_gateway as serve_gateway
from tests.support import Admin


@dataclass
class ChatGateway:
    """Where the gateway listens, its emulator (and admin surface), and the site's API key."""

    url: str
    port: int
    emu: RunningEmulator
    admin: Admin
    api_key: str

    def mint(self, conversations: list[str] | None = None, ttl: float | None = None,
             user: str = "site-user") -> dict[str, Any]:
        """What a site's backend does for its page: ``POST /v1/tokens`` with the API key."""
        body: dict[str, Any] = {"user": user}
        if conversations is not None:
            body["conversations"] = conversations
        if ttl is not None:
            body["ttl"] = ttl
        response = httpx.post(f"{self.url}/v1/tokens", json=body, timeout=10,
                              headers={"Authorization": f"Bearer {self.api_key}"})
        return response.raise_for_status().json()  # type: ignore[no-any-return]


@contextmanager
def run_gateway(agents: list[Any] | None = None, **settings: Any) -> Iterator[ChatGateway]:
    """A gateway (demo token route on, an API key for minting) on an emulator running ``agents`` (None:
    the demo agent). ``settings`` are :class:`GatewaySettings` fields."""
    with run_emulator(agents=agents) as emu:
        api_key = secrets.token_urlsafe(24)
        org = ClientSettings(my_domain=emu.url, client_id=emu.client_id,
                             client_secret=SecretStr(emu.client_secret), agent_id=emu.default_agent_id)
        config = GatewayConfig(org=org, store_url="memory://",
                               settings=GatewaySettings(api_key=[SecretStr(api_key)], demo=True, **settings))
        admin = Admin(emu.url)
        try:
            with serve_gateway(config) as running:
                port = urlsplit(running.url).port
                assert port is not None
                yield ChatGateway(running.url, port, emu, admin, api_key)
        finally:
            admin.http.close()
