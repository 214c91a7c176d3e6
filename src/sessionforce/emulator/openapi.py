"""The OpenAPI document of the routes the emulator serves (filled in below)."""

from __future__ import annotations

from typing import Any


def openapi_document(server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document, with ``server_url`` as its server."""
    return {"openapi": "3.0.3", "info": {"title": "Agent API (sessionforce emulator)", "version": "1"},
            "servers": [{"url": server_url}], "paths": {}}
