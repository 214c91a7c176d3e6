"""Request bodies and the checks on a call's arguments: everything a call validates before it sends.

The send-message body has one definition, :func:`message_body`: written directly as a dict (it is built
on every turn; pydantic request models cost four times as much for a body whose every field is checked
here anyway). Any argument that cannot go on the wire (a lone surrogate, a value that is not JSON, a
variables argument that is not a list of variables) raises :class:`InvalidArgument` naming it; nothing is
sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args
from urllib.parse import quote

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from sessionforce.agent_api._models import (
    EndReason,
    FeedbackRequest,
    InstanceConfig,
    MessageType,
    StartSessionRequest,
    StreamingCapabilities,
    Variable,
    VariableInput,
)
from sessionforce.errors import InvalidArgument

__all__ = ["end_reason", "feedback_body", "message_body", "path_segment", "start_body", "variables_of"]

_MESSAGE_TYPES = frozenset(get_args(MessageType))
_END_REASONS = frozenset(get_args(EndReason))
_NOT_UNICODE = (
    "holds a lone surrogate (it is not valid Unicode). What to do: decode the input with errors='replace' "
    "before passing it"
)

# Ids made only of URL-safe characters (Salesforce's always are) go into the path as they are.
_url_safe = re.compile(r"[A-Za-z0-9._~-]+").fullmatch

# Compact, UTF-8 as is, no NaN or Infinity (not JSON): the bytes pydantic's model_dump_json writes.
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def path_segment(value: str, name: str) -> str:
    """``value`` as one URL path segment (an agent or session id)."""
    if isinstance(value, str) and _url_safe(value):
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{name} must be a non-empty string, got {type(value).__name__}.")
    try:
        return quote(value, safe="")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{name} {_NOT_UNICODE}.") from None


def variables_of(variables: Iterable[VariableInput], where: str = "variables") -> list[Variable]:
    """Variables given as :class:`Variable` objects or mappings with ``name``, ``type`` and ``value``."""
    if isinstance(variables, str | bytes | Mapping) or not isinstance(variables, Iterable):
        raise InvalidArgument(
            f"{where} must be a list of variables (Variable objects or mappings with name, type and value), "
            f"got {type(variables).__name__}."
        )
    result: list[Variable] = []
    for item in variables:
        if isinstance(item, Variable):
            result.append(item)
            continue
        if not isinstance(item, Mapping):
            raise InvalidArgument(
                f"each of {where} must be a Variable or a mapping with name, type and value, got "
                f"{type(item).__name__}."
            )
        try:
            result.append(Variable.model_validate(dict(item)))
        except ValidationError as exc:
            problem = exc.errors(include_input=False, include_url=False)[0]
            field = ".".join(map(str, problem["loc"])) or "variable"
            raise InvalidArgument(f"Invalid variable in {where} ({field}: {problem['msg']}).") from None
    return result


def _wire_variables(variables: Iterable[VariableInput]) -> list[dict[str, Any]]:
    try:
        return [v.model_dump(mode="json", by_alias=True, exclude_none=True) for v in variables_of(variables)]
    except PydanticSerializationError:
        raise InvalidArgument("A variable's value cannot be sent as JSON. What to do: use text, numbers, "
                              "booleans, lists or mappings of them.") from None


def message_body(
    text: str,
    sequence_id: int,
    variables: Iterable[VariableInput],
    message_type: str,
    in_reply_to: str | None,
) -> bytes:
    """The send-message body (sync and streaming): ``{"message": {...}, "variables": [...]}``."""
    if not isinstance(text, str):
        raise InvalidArgument(f"text must be a string, got {type(text).__name__}.")
    if isinstance(sequence_id, bool) or not isinstance(sequence_id, int) or sequence_id < 1:
        raise InvalidArgument(f"sequence_id must be a positive integer, got {sequence_id!r}.")
    if not isinstance(message_type, str) or message_type not in _MESSAGE_TYPES:
        raise InvalidArgument(
            f"message_type {message_type!r} is not one the Agent API lists; use one of {sorted(_MESSAGE_TYPES)}."
        )
    message: dict[str, Any] = {"sequenceId": sequence_id, "type": message_type, "text": text}
    if in_reply_to is not None:
        if not isinstance(in_reply_to, str):
            raise InvalidArgument(f"in_reply_to must be a message id string, got {type(in_reply_to).__name__}.")
        message["inReplyToMessageId"] = in_reply_to
    wire_variables = _wire_variables(variables) if variables else []
    return _encode({"message": message, "variables": wire_variables}, "The message text or a variable")


def _encode(body: dict[str, Any], what: str) -> bytes:
    try:
        return _encode_json(body).encode()
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} {_NOT_UNICODE}.") from None
    except (ValueError, TypeError):
        raise InvalidArgument(f"{what} cannot be sent as JSON (NaN, Infinity or an object JSON cannot hold).") from None


def _model_body(model: BaseModel, what: str) -> bytes:
    try:
        return _encode(model.model_dump(mode="json", by_alias=True, exclude_none=True), what)
    except PydanticSerializationError:
        raise InvalidArgument(f"{what} holds a value JSON cannot hold.") from None


def start_body(
    external_session_key: str,
    my_domain: str,
    *,
    variables: Iterable[VariableInput],
    bypass_user: bool,
    tz: str | None,
    streaming: bool,
) -> bytes:
    """The start-session body."""
    wire_variables = variables_of(variables)
    try:
        request = StartSessionRequest(
            external_session_key=external_session_key,
            instance_config=InstanceConfig(endpoint=my_domain),
            tz=tz,
            variables=wire_variables,
            feature_support="Streaming" if streaming else None,
            streaming_capabilities=StreamingCapabilities() if streaming else None,
            bypass_user=bypass_user,
        )
    except ValidationError as exc:
        problem = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(map(str, problem["loc"])) or "arguments"
        raise InvalidArgument(f"Invalid session argument {field}: {problem['msg']}.") from None
    return _model_body(request, "A session argument (external_session_key, tz or a variable)")


def feedback_body(feedback_id: str, feedback: Literal["GOOD", "BAD"], text: str | None) -> bytes:
    """The submit-feedback body."""
    if feedback not in ("GOOD", "BAD"):
        raise InvalidArgument(f"feedback must be 'GOOD' or 'BAD', got {feedback!r}.")
    if not isinstance(feedback_id, str) or not feedback_id:
        raise InvalidArgument("feedback_id must be the non-empty feedbackId of a reply (Reply.feedback_id).")
    if text is not None and not isinstance(text, str):
        raise InvalidArgument(f"text must be a string or None, got {type(text).__name__}.")
    return _model_body(FeedbackRequest(feedback_id=feedback_id, feedback=feedback, text=text), "The feedback text")


def end_reason(reason: str) -> str:
    """``reason`` if the API knows it as an end reason (it goes into the ``x-session-end-reason`` header)."""
    if not isinstance(reason, str) or reason not in _END_REASONS:
        raise InvalidArgument(
            f"reason {reason!r} is not an end reason the API knows; use one of {sorted(_END_REASONS)}."
        )
    return reason
