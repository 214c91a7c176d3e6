"""Request-body checks for the Agent API routes: every 400 names the field at fault.

Two kinds of finding. An *error* is something the real service refuses too (a missing ``sequenceId``, a
``Number`` variable holding text): 400, always. A *deviation* is something the real service accepts but
the documented shapes do not show (``bypassUser: "true"`` as a string, a ``sequenceId`` sent as text, an
unknown field, a DELETE without ``x-session-end-reason``): accepted like Salesforce does (it is a Java
service that coerces scalars), appended to ``deviations`` so the route can record it, and rejected
only in strict mode. Written by hand rather than with pydantic so each message reads like a person
wrote it and the hot path stays cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sessionforce.emulator._bodies import parse_json
from sessionforce.emulator._errors import ApiError
from sessionforce.emulator._messages import CLIENT_MESSAGE_TYPES

#: Variable types the reference lists.
VARIABLE_TYPES = ("Text", "Number", "Boolean", "Date", "DateTime", "Money", "Object", "Json", "Ref", "List")
FEEDBACK_VALUES = ("GOOD", "BAD")
#: Chunk types the reference documents for ``streamingCapabilities.chunkTypes``.
CHUNK_TYPES = ("Text",)
# The variable types whose values we can check cheaply; the others accept any JSON value.
_VALUE_TYPES: dict[str, type | tuple[type, ...]] = {"Text": str, "Number": (int, float), "Boolean": bool}
#: ``$Context.*`` variables are fixed after start, except this one (agent-api.md).
_MUTABLE_CONTEXT = "$Context.EndUserLanguage"
# The fields each documented object has (agent-api.md); anything else is a deviation.
_START_FIELDS = frozenset({"externalSessionKey", "instanceConfig", "tz", "variables", "featureSupport",
                           "streamingCapabilities", "bypassUser"})
_SEND_FIELDS = frozenset({"message", "variables"})
_MESSAGE_FIELDS = frozenset({"sequenceId", "type", "text", "inReplyToMessageId"})
_VARIABLE_FIELDS = frozenset({"name", "type", "value"})
_FEEDBACK_FIELDS = frozenset({"feedbackId", "feedback", "text"})
# Jackson's scalar coercion: the strings it reads as booleans.
_STRING_BOOLEANS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DIGITS = re.compile(r"^-?[0-9]{1,19}$")


def _bad(field: str, problem: str) -> ApiError:
    return ApiError(400, f"Invalid request body: '{field}' {problem}")


def _type_name(value: Any) -> str:
    return "null" if value is None else {bool: "boolean", int: "number", float: "number", str: "string",
                                         list: "array", dict: "object"}.get(type(value), type(value).__name__)


def parse_json_object(body: bytes, max_depth: int) -> dict[str, Any]:
    """The body as a JSON object, or ApiError 400 naming what is wrong with it."""
    try:
        data = parse_json(body, max_depth)
    except ValueError as exc:
        raise ApiError(400, f"Invalid request body: expected a JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"Invalid request body: expected a JSON object, got {_type_name(data)}")
    return data


def _unknown(data: dict[str, Any], known: frozenset[str], where: str, deviations: list[str]) -> None:
    for key in data:
        if key not in known:
            deviations.append(f"unknown field '{where}{key}' (not in the documented shape: "
                              f"{', '.join(sorted(known))})")


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


def _boolean(data: dict[str, Any], key: str, deviations: list[str]) -> bool | None:
    """A boolean field; the strings Jackson coerces ("true", "false") are accepted as a deviation."""
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _STRING_BOOLEANS:
        deviations.append(f"'{key}' is the string {value!r}; the documented shape is a JSON boolean "
                          f"({value.lower()})")
        return _STRING_BOOLEANS[value]
    raise _bad(key, f"must be a boolean; got {_type_name(value)}")


def parse_variables(raw: Any, deviations: list[str], field: str = "variables") -> list[dict[str, Any]]:
    """Check a ``variables`` list (``[{name, type, value}]``) and return it."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad(field, f"must be an array of {{name, type, value}}; got {_type_name(raw)}")
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise _bad(where, f"must be an object {{name, type, value}}; got {_type_name(item)}")
        _unknown(item, _VARIABLE_FIELDS, f"{where}.", deviations)
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
    #: ``bypassUser`` as sent (None when absent: the real default is false, i.e. run as the token's user).
    bypass_user: bool | None


def parse_start(data: dict[str, Any], deviations: list[str]) -> StartRequest:
    """Check a start-session body; deviations from the documented shape go to ``deviations``."""
    _unknown(data, _START_FIELDS, "", deviations)
    external_key = _required_string(data, "externalSessionKey", "externalSessionKey")
    if not _UUID.match(external_key):
        deviations.append(f"'externalSessionKey' {external_key[:60]!r} is not a UUID (the reference: a UUID the "
                          "caller generates)")
    config = data.get("instanceConfig")
    if config is None:
        raise _bad("instanceConfig", "is required: {\"endpoint\": \"https://<My Domain>\"}")
    if not isinstance(config, dict):
        raise _bad("instanceConfig", f"must be an object {{\"endpoint\": ...}}; got {_type_name(config)}")
    _unknown(config, frozenset({"endpoint"}), "instanceConfig.", deviations)
    endpoint = _required_string(config, "endpoint", "instanceConfig.endpoint")
    if not endpoint.startswith(("https://", "http://")):
        raise _bad("instanceConfig.endpoint", f"must be the My Domain URL (https://...); got {endpoint!r}")
    _optional(data, "tz", str, "tz", "a string (an IANA time zone)")
    _optional(data, "featureSupport", str, "featureSupport", "a string")
    bypass_user = _boolean(data, "bypassUser", deviations)
    capabilities = _optional(data, "streamingCapabilities", dict, "streamingCapabilities", "an object")
    if capabilities:
        _unknown(capabilities, frozenset({"chunkTypes"}), "streamingCapabilities.", deviations)
    chunk_types: Any = (capabilities or {}).get("chunkTypes")
    if chunk_types is not None and not (isinstance(chunk_types, list) and all(isinstance(c, str) for c in chunk_types)):
        raise _bad("streamingCapabilities.chunkTypes", "must be an array of strings, e.g. [\"Text\"]")
    for chunk_type in chunk_types or ():
        if chunk_type not in CHUNK_TYPES:
            deviations.append(f"'streamingCapabilities.chunkTypes' has {chunk_type!r}; the reference documents "
                              f"{list(CHUNK_TYPES)}")
    variables = parse_variables(data.get("variables"), deviations)
    return StartRequest(external_key, endpoint, variables, chunk_text="Text" in (chunk_types or []),
                        bypass_user=bypass_user)


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A checked send-message body."""

    sequence_id: int
    message_type: str
    text: str
    in_reply_to: str | None
    message: dict[str, Any]
    variables: list[dict[str, Any]]


def _sequence_id(message: dict[str, Any], deviations: list[str]) -> int:
    sequence_id = message.get("sequenceId")
    if sequence_id is None:
        raise _bad("message.sequenceId", "is required (an integer, increasing within the session)")
    if isinstance(sequence_id, str) and _DIGITS.match(sequence_id.strip()):
        # Jackson reads a numeric string into a long; so does the emulator, noting the deviation.
        deviations.append(f"'message.sequenceId' is the string {sequence_id!r}; the documented shape is a "
                          "JSON integer")
        return int(sequence_id)
    if isinstance(sequence_id, bool) or not isinstance(sequence_id, int):
        raise _bad("message.sequenceId", f"must be an integer; got {_type_name(sequence_id)}")
    return sequence_id


def parse_send(data: dict[str, Any], deviations: list[str]) -> SendRequest:
    """Check a send-message body (sync or streaming); deviations go to ``deviations``."""
    _unknown(data, _SEND_FIELDS, "", deviations)
    message = data.get("message")
    if message is None:
        raise _bad("message", "is required: {\"sequenceId\": 1, \"type\": \"Text\", \"text\": \"...\"}")
    if not isinstance(message, dict):
        raise _bad("message", f"must be an object; got {_type_name(message)}")
    _unknown(message, _MESSAGE_FIELDS, "message.", deviations)
    sequence_id = _sequence_id(message, deviations)
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
    variables = parse_variables(data.get("variables"), deviations)
    for item in variables:
        name = item["name"]
        if name.startswith("$Context.") and name != _MUTABLE_CONTEXT:
            deviations.append(f"variable {name!r} is fixed after start (only {_MUTABLE_CONTEXT} may change); "
                              "the service ignores it")
    return SendRequest(sequence_id, kind, text, in_reply_to, message, variables)


def apply_variables(target: dict[str, Any], variables: list[dict[str, Any]], *, at_start: bool) -> None:
    """Store variables by name; after start, ``$Context.*`` ones (but the language) are ignored."""
    for item in variables:
        name = item["name"]
        if at_start or not name.startswith("$Context.") or name == _MUTABLE_CONTEXT:
            target[name] = item["value"]


def parse_feedback(data: dict[str, Any], deviations: list[str]) -> tuple[str, str, str | None]:
    """Check a feedback body: ``(feedbackId, feedback, text)``."""
    _unknown(data, _FEEDBACK_FIELDS, "", deviations)
    feedback_id = _required_string(data, "feedbackId", "feedbackId")
    value = _required_string(data, "feedback", "feedback")
    if value not in FEEDBACK_VALUES:
        raise _bad("feedback", f"must be GOOD or BAD; got {value!r}")
    text = _optional(data, "text", str, "text", "a string")
    return feedback_id, value, text
