"""Agent reply messages: every message the emulator returns carries the fields the reference lists.

Agents (scripted or Python callables) return partial messages such as ``{"type": "Inform", "message":
"hi"}``; :func:`complete_message` fills in what the wire reference's table lists for that type, with a
fresh ``id`` and, where the type has one, a fresh ``feedbackId``, so feedback can be submitted for it.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping
from typing import Any

Message = dict[str, Any]
_WORD_PIECES = re.compile(r"\S+\s*|\s+")

#: The message types a caller may send (agent-api.md, "Send a message").
CLIENT_MESSAGE_TYPES = ("Text", "Reply", "Cancel", "TransferFailed", "TransferSucceeded", "PlanTemplate")

#: End reasons Salesforce's own client sends in ``x-session-end-reason``.
END_REASONS = ("UserRequest", "Transfer", "Expiration", "Error", "Other")

#: ``SessionEnded`` reasons the reference lists.
SESSION_END_REASONS = ("ClientRequest", "TransferFailedNotConfigured", "Action", "ERROR", "InfiniteLoopDetected")

_NEW_ID = object()  # marker: a fresh uuid per message
_PLAN_ID = object()  # marker: the turn's plan id (one per turn, shared by its messages)

# Per type: the fields beyond id/type, with their defaults (agent-api.md's table).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "Inform": {
        "feedbackId": _NEW_ID,
        "planId": _PLAN_ID,
        "isContentSafe": True,
        "message": "",
        "result": [],
        "citedReferences": [],
    },
    "Inquire": {"message": "", "collect": {}},
    "Confirm": {"message": "", "confirm": {}},
    "Escalate": {"feedbackId": _NEW_ID, "targets": []},
    "Failure": {"code": "ACTION_FAILED", "errors": []},
    "SessionEnded": {"reason": "Action"},
    "Error": {"httpStatus": 500, "traceId": _NEW_ID, "error": "", "message": "", "expected": False},
}


def new_id() -> str:
    """A fresh message/session id (uuid4, like the real service)."""
    return str(uuid.uuid4())


def complete_message(partial: Mapping[str, Any], plan_id: str) -> Message:
    """Return ``partial`` with every field its type needs; unknown types pass through with an id.

    Fields the agent set are kept as they are (including ones the reference does not list), so a
    callable agent can produce exactly the message it wants.
    """
    message: Message = {"type": str(partial.get("type", "Inform")), "id": new_id()}
    for key, default in _DEFAULTS.get(message["type"], {}).items():
        if default is _NEW_ID:
            message[key] = new_id()
        elif default is _PLAN_ID:
            message[key] = plan_id
        else:
            message[key] = copy.copy(default)
    message.update(partial)
    return message


def feedback_ids(messages: list[Message]) -> list[str]:
    """The non-empty ``feedbackId`` values in ``messages`` (what feedback may later refer to)."""
    return [m["feedbackId"] for m in messages if isinstance(m.get("feedbackId"), str) and m["feedbackId"]]


def greeting_message(text: str) -> Message:
    """The start-session greeting: an ``Inform`` whose ``feedbackId`` and ``planId`` are empty strings,
    as in the reference's sample start response."""
    return complete_message({"type": "Inform", "message": text, "feedbackId": "", "planId": ""}, "")


def stream_events(messages: list[Message], timestamp: int, *, chunk_text: bool) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events of one turn, in the order the real service sends them."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("ProgressIndicator", {"timestamp": timestamp, "message": {
            "type": "ProgressIndicator", "id": new_id(), "indicatorType": "ACTION", "message": "Working on it"}})
    ]
    if chunk_text:  # only when the session asked for streamingCapabilities.chunkTypes ["Text"]
        for message in messages:
            text = message.get("message")
            if message["type"] != "Inform" or not isinstance(text, str):
                continue
            offset = 0
            for piece in _WORD_PIECES.findall(text):
                events.append(("TextChunk", {"timestamp": timestamp, "offset": offset, "message": {
                    "type": "TextChunk", "id": message["id"], "offset": offset, "message": piece,
                    "formatType": "Text"}}))
                offset += len(piece)
    events.extend((m["type"], {"timestamp": timestamp, "message": m}) for m in messages)
    events.append(("EndOfTurn", {"timestamp": timestamp, "message": {"type": "EndOfTurn", "id": new_id()}}))
    return events
