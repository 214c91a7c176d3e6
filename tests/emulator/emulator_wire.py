"""Helpers for the emulator tests: a thin httpx wrapper speaking the wire, nothing of ours.

These tests deliberately use plain httpx and raw JSON (not sessionforce's client) so they check the
emulator against the wire reference directly. (A uniquely named module, not conftest, so tests can
import it without clashing with other conftest modules.)
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from sessionforce.emulator import RunningEmulator

API = "/einstein/ai-agent/v1"



class Wire:
    """Raw Agent API calls against one emulator, holding one bearer token."""

    def __init__(self, emulator: RunningEmulator) -> None:
        self.emulator = emulator
        self.http = httpx.Client(base_url=emulator.url, timeout=10)
        self.token = ""

    def close(self) -> None:
        self.http.close()

    def fetch_token(self, **overrides: str) -> httpx.Response:
        form = {"grant_type": "client_credentials", "client_id": self.emulator.client_id,
                "client_secret": self.emulator.client_secret, **overrides}
        response = self.http.post("/services/oauth2/token", data=form)
        if response.status_code == 200:
            self.token = response.json()["access_token"]
        return response

    @property
    def auth(self) -> dict[str, str]:
        if not self.token:
            self.fetch_token()
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, agent_id: str | None = None, body: dict[str, Any] | None = None,
              chunks: bool = True) -> httpx.Response:
        payload = body if body is not None else {
            "externalSessionKey": str(uuid.uuid4()),
            "instanceConfig": {"endpoint": self.emulator.url},
            "streamingCapabilities": {"chunkTypes": ["Text"] if chunks else []},
            "bypassUser": True,
        }
        agent = agent_id or self.emulator.default_agent_id
        return self.http.post(f"{API}/agents/{agent}/sessions", json=payload, headers=self.auth)

    def session(self, agent_id: str | None = None, chunks: bool = True) -> str:
        response = self.start(agent_id, chunks=chunks)
        assert response.status_code == 200, response.text
        return str(response.json()["sessionId"])

    def send(self, session_id: str, sequence_id: int, text: str = "hello", kind: str = "Text",
             **extra: Any) -> httpx.Response:
        message = {"sequenceId": sequence_id, "type": kind, "text": text, **extra}
        return self.http.post(f"{API}/sessions/{session_id}/messages", json={"message": message},
                              headers=self.auth)

    def stream(self, session_id: str, sequence_id: int,
               text: str = "hello") -> tuple[httpx.Response, list[dict[str, Any]]]:
        body = {"message": {"sequenceId": sequence_id, "type": "Text", "text": text}}
        response = self.http.post(f"{API}/sessions/{session_id}/messages/stream", json=body,
                                  headers={**self.auth, "Accept": "text/event-stream"})
        return response, parse_sse(response.text) if response.status_code == 200 else []

    def end(self, session_id: str, reason: str | None = "UserRequest") -> httpx.Response:
        headers = dict(self.auth)
        if reason is not None:
            headers["x-session-end-reason"] = reason
        return self.http.delete(f"{API}/sessions/{session_id}", headers=headers)

    def feedback(self, session_id: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"{API}/sessions/{session_id}/feedback", json=body, headers=self.auth)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"/__emulator{path}", json=body)
        assert response.status_code == 200, response.text
        return response.json()


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Events as ``{"event": name, "data": json}``; asserts each has both lines, as we promise."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        assert set(fields) == {"event", "data"}, block
        data = json.loads(fields["data"])
        assert data["message"]["type"] == fields["event"]
        events.append({"event": fields["event"], "data": data})
    return events


def assert_api_error(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """The response is a Salesforce-shaped error with ``status`` whose message has ``fragments``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"status", "path", "mode", "requestId", "error", "message", "timestamp", "expected"}
    assert body["status"] == status
    assert body["mode"] == "unknown"
    assert response.headers["x-request-id"] == body["requestId"]
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    return dict(body)
