"""Helpers shared by the tests: the emulator's admin surface over plain httpx, and client arguments."""

from __future__ import annotations

from typing import Any

import httpx

from sessionforce.emulator import RunningEmulator


class Admin:
    """The emulator's admin surface, through plain httpx."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url + "/__emulator", timeout=10)

    def counters(self) -> dict[str, Any]:
        return self.http.get("/counters").raise_for_status().json()  # type: ignore[no-any-return]

    def sessions(self) -> list[dict[str, Any]]:
        return self.http.get("/sessions").raise_for_status().json()["sessions"]  # type: ignore[no-any-return]

    def faults(self, *rules: dict[str, Any], seed: int = 0) -> None:
        self.http.put("/faults", json={"seed": seed, "rules": list(rules)}).raise_for_status()

    def expire(self, session_id: str) -> None:
        self.http.post(f"/sessions/{session_id}/expire").raise_for_status()

    def expire_tokens(self) -> None:
        self.http.post("/tokens/expire").raise_for_status()

    def advance(self, seconds: float) -> None:
        self.http.post("/clock/advance", json={"seconds": seconds}).raise_for_status()

    def requests(self, route: str, status: int | None = None) -> int:
        counts: dict[str, int] = self.counters()["requests"]
        return sum(
            n for key, n in counts.items()
            if key.split()[0] == route and (status is None or key.endswith(f" {status}"))
        )

    def turns(self, session_id: str | None = None) -> list[dict[str, Any]]:
        turns: list[dict[str, Any]] = self.counters()["turns"]
        return [t for t in turns if session_id is None or t["sessionId"] == session_id]


def client_kwargs(emu: RunningEmulator, **overrides: Any) -> dict[str, Any]:
    """Arguments for a client that talks to ``emu``."""
    return {
        "my_domain": emu.url,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "agent_id": emu.default_agent_id,
        **overrides,
    }
