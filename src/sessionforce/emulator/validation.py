"""Request-body checks for the Agent API routes: every 400 names the field at fault.

Written by hand rather than with pydantic so each message reads like a person wrote it
(``message.type must be one of ...; got 'Foo'``) and the hot path stays cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sessionforce.emulator.errors import ApiError
from sessionforce.emulator.messages import CLIENT_MESSAGE_TYPES

#: Variable types the reference lists.
VARIABLE_TYPES = ("Text", "Number", "Boolean", "Date", "DateTime", "Money", "Object", "Json", "Ref", "List")
FEEDBACK_VALUES = ("GOOD", "BAD")
# The variable types whose values we can check cheaply; the others accept any JSON value.
_VALUE_TYPES: dict[str, type | tuple[type, ...]] = {"Text": str, "Number": (int, float), "Boolean": bool}
#: ``$Context.*`` variables are fixed after start, except this one (agent-api.md).
_MUTABLE_CONTEXT = "$Context.EndUserLanguage"


def _bad(field: str, problem: str) -> ApiError:
    return ApiError(400, f"Invalid request body: '{field}' {problem}")


def _type_name(value: Any) -> str:
    return "null" if value is None else {bool: "boolean", int: "number", float: "number", str: "string",
                                         list: "array", dict: "object"}.get(type(value), type(value).__name__)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ApiError 400."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "Invalid request body: expected a JSON object (Content-Type: application/json)") from exc
    if not isinstance(data, dict):
        raise ApiError(400, f"Invalid request body: expected a JSON object, got {_type_name(data)}")
    return data


def _optional(data: dict[str, Any], key: str, kind: type | tuple[type, ...], field: str, what: str) -> Any:
    value = data.get(key)
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        raise _bad(field, f"must be {what}; got {_type_name(value)}")
    return value


def _required_string(data: dict[str, Any], key: str, field: str) -> str:
    value = data.get(key)
    if value is None:
        raise _bad(field, "is required")
    if not isinstance(value, str) or not value.strip():
        raise _bad(field, f"must be a non-empty string; got {_type_name(value)}")
    return value


def parse_variables(raw: Any, field: str = "variables") -> list[dict[str, Any]]:
    """Check a ``variables`` list (``[{name, type, value}]``) and return it."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad(field, f"must be an array of {{name, type, value}}; got {_type_name(raw)}")
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise _bad(where, f"must be an object {{name, type, value}}; got {_type_name(item)}")
        _required_string(item, "name", f"{where}.name")
        kind = _required_string(item, "type", f"{where}.type")
        if kind not in VARIABLE_TYPES:
            raise _bad(f"{where}.type", f"must be one of {', '.join(VARIABLE_TYPES)}; got {kind!r}")
        if "value" not in item:
            raise _bad(f"{where}.value", "is required")
        value = item["value"]
        expected = _VALUE_TYPES.get(kind)
        if value is not None and expected is not None and (
            not isinstance(value, expected) or (kind == "Number" and isinstance(value, bool))
        ):
            raise _bad(f"{where}.value", f"must match type {kind}; got {_type_name(value)}")
    return raw


@dataclass(frozen=True, slots=True)
class StartRequest:
    """A checked start-session body."""

    external_key: str
    endpoint: str
    variables: list[dict[str, Any]]
    chunk_text: bool


def parse_start(data: dict[str, Any]) -> StartRequest:
    """Check a start-session body."""
    external_key = _required_string(data, "externalSessionKey", "externalSessionKey")
    config = data.get("instanceConfig")
    if config is None:
        raise _bad("instanceConfig", "is required: {\"endpoint\": \"https://<My Domain>\"}")
    if not isinstance(config, dict):
        raise _bad("instanceConfig", f"must be an object {{\"endpoint\": ...}}; got {_type_name(config)}")
    endpoint = _required_string(config, "endpoint", "instanceConfig.endpoint")
    if not endpoint.startswith(("https://", "http://")):
        raise _bad("instanceConfig.endpoint", f"must be the My Domain URL (https://...); got {endpoint!r}")
    _optional(data, "tz", str, "tz", "a string (an IANA time zone)")
    _optional(data, "featureSupport", str, "featureSupport", "a string")
    _optional(data, "bypassUser", bool, "bypassUser", "a boolean")
    capabilities = _optional(data, "streamingCapabilities", dict, "streamingCapabilities", "an object")
    chunk_types: Any = (capabilities or {}).get("chunkTypes")
    if chunk_types is not None and not (isinstance(chunk_types, list) and all(isinstance(c, str) for c in chunk_types)):
        raise _bad("streamingCapabilities.chunkTypes", "must be an array of strings, e.g. [\"Text\"]")
    variables = parse_variables(data.get("variables"))
    return StartRequest(external_key, endpoint, variables, chunk_text="Text" in (chunk_types or []))


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A checked send-message body."""

    sequence_id: int
    message_type: str
    text: str
    in_reply_to: str | None
    message: dict[str, Any]
    variables: list[dict[str, Any]]


def parse_send(data: dict[str, Any]) -> SendRequest:
    """Check a send-message body (sync or streaming)."""
    message = data.get("message")
    if message is None:
        raise _bad("message", "is required: {\"sequenceId\": 1, \"type\": \"Text\", \"text\": \"...\"}")
    if not isinstance(message, dict):
        raise _bad("message", f"must be an object; got {_type_name(message)}")
    sequence_id = message.get("sequenceId")
    if sequence_id is None:
        raise _bad("message.sequenceId", "is required (an integer, increasing within the session)")
    if isinstance(sequence_id, bool) or not isinstance(sequence_id, int):
        raise _bad("message.sequenceId", f"must be an integer; got {_type_name(sequence_id)}")
    kind = _required_string(message, "type", "message.type")
    if kind not in CLIENT_MESSAGE_TYPES:
        raise _bad("message.type", f"must be one of {', '.join(CLIENT_MESSAGE_TYPES)}; got {kind!r}")
    if kind == "Text":
        text = message.get("text")
        if not isinstance(text, str):
            raise _bad("message.text", f"is required for a Text message and must be a string; got {_type_name(text)}")
    else:
        text = _optional(message, "text", str, "message.text", "a string") or ""
    in_reply_to = _optional(message, "inReplyToMessageId", str, "message.inReplyToMessageId", "a string")
    variables = parse_variables(data.get("variables"))
    return SendRequest(sequence_id, kind, text, in_reply_to, message, variables)


def apply_variables(target: dict[str, Any], variables: list[dict[str, Any]], *, at_start: bool) -> None:
    """Store variables by name; after start, ``$Context.*`` ones (but the language) are ignored."""
    for item in variables:
        name = item["name"]
        if at_start or not name.startswith("$Context.") or name == _MUTABLE_CONTEXT:
            target[name] = item["value"]


def parse_feedback(data: dict[str, Any]) -> tuple[str, str, str | None]:
    """Check a feedback body: ``(feedbackId, feedback, text)``."""
    feedback_id = _required_string(data, "feedbackId", "feedbackId")
    value = _required_string(data, "feedback", "feedback")
    if value not in FEEDBACK_VALUES:
        raise _bad("feedback", f"must be GOOD or BAD; got {value!r}")
    text = _optional(data, "text", str, "text", "a string")
    return feedback_id, value, text
