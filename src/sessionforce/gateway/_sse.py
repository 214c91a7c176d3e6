"""Server-Sent Events as the gateway writes them: ``id``, ``event``, one ``data`` line of JSON.

Event data is stored as compact JSON, which escapes every line break, so one ``data:`` line always holds
it. Frames that are not log events (``reconnect``, ``history.truncated``) carry no ``id``: a browser's
``EventSource`` keeps its last id, and re-attaches from the last real event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

__all__ = ["KEEPALIVE", "OPEN", "RECONNECT", "frame", "sse_response"]

OPEN = b"retry: 1000\n\n"
"""First bytes of every stream: re-attach after one second when the connection drops."""
KEEPALIVE = b": ka\n\n"
RECONNECT = b'event: reconnect\ndata: {"reason":"shutdown"}\n\n'

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def frame(event_id: int | None, kind: str, data: str | dict[str, Any]) -> bytes:
    """One event; ``data`` as stored JSON text or a dict to encode."""
    text = data if isinstance(data, str) else _encode(data)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {text}\n\n".encode()


def sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    """A streamed ``text/event-stream`` response, not cached and not buffered by proxies."""
    return StreamingResponse(body, media_type="text/event-stream", headers={
        "Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no",
    })
