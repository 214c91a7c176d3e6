"""Pydantic v2 models of the Agent API wire format.

Responses are read tolerantly: unknown fields are kept (``model_extra``), unknown message types become a
plain :class:`AgentMessage` that keeps everything it was sent, and unknown enum-like values (reasons,
codes) stay strings. Requests are written strictly (``extra="forbid"``) so a typo never reaches the wire.
Field names are snake_case in Python and camelCase on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    field_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "AgentMessage",
    "AnyAgentMessage",
    "CitedReference",
    "ConfirmMessage",
    "ErrorMessage",
    "EscalateMessage",
    "EscalationTarget",
    "FailureMessage",
    "InformMessage",
    "InlineMetadata",
    "InquireMessage",
    "MessageType",
    "MessagesResponse",
    "SessionEndedMessage",
    "StartSessionResponse",
    "TokenResponse",
    "Variable",
    "VariableInput",
]

MessageType = Literal["Text", "Reply", "Cancel", "TransferFailed", "TransferSucceeded", "PlanTemplate"]
"""The user-side message types the Agent API reference lists for send-message."""

EndReason = Literal["UserRequest", "Transfer", "Expiration", "Error", "Other"]
"""The end reasons the Agent API knows (``x-session-end-reason``)."""


class WireModel(BaseModel):
    """Base of every response model: camelCase on the wire, unknown fields kept."""

    model_config = ConfigDict(
        extra="allow",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


class RequestModel(BaseModel):
    """Base of every request model: camelCase on the wire, unknown fields refused."""

    # NaN and Infinity are not JSON: kept as floats when dumped, so the body's encoder refuses them
    # (pydantic's default would write null: a value silently lost).
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, ser_json_inf_nan="constants"
    )


# --------------------------------------------------------------------------- message parts


class InlineMetadata(WireModel):
    """Where in the reply text a citation supports a claim."""

    claim: str | None = None
    location: Any = None


class CitedReference(WireModel):
    """A knowledge citation attached to an ``Inform`` message (a record id or a link)."""

    type: str | None = None
    value: str | None = None
    inline_metadata: list[InlineMetadata] = Field(default_factory=list)


class EscalationTarget(WireModel):
    """Where an ``Escalate`` message hands the conversation to (e.g. a queue)."""

    type: str | None = None
    value: str | None = None


# --------------------------------------------------------------------------- agent messages


class AgentMessage(WireModel):
    """One message from the agent. Known types have their own subclass; unknown ones stay this class
    with every field they were sent kept in ``model_extra``."""

    type: str
    id: str | None = None
    message: str | None = None
    feedback_id: str | None = None

    @field_validator("message", mode="before")
    @classmethod
    def _text_or_none(cls, value: Any) -> Any:
        # Text is a string on the wire; anything else (an object, a number) is kept raw in model_extra
        # by the subclasses that expect it, and not forced into the text field.
        return value if value is None or isinstance(value, str) else str(value)


class InformMessage(AgentMessage):
    """A normal reply: text, action results and citations."""

    type: Literal["Inform"] = "Inform"
    plan_id: str | None = None
    is_content_safe: bool | None = None
    result: list[Any] = Field(default_factory=list)
    cited_references: list[CitedReference] = Field(default_factory=list)


class InquireMessage(AgentMessage):
    """The agent asks the user for a value (``collect`` says what it wants)."""

    type: Literal["Inquire"] = "Inquire"
    collect: Any = None


class ConfirmMessage(AgentMessage):
    """The agent asks the user to confirm before it acts; answer with a ``Reply`` turn."""

    type: Literal["Confirm"] = "Confirm"
    confirm: Any = None


class EscalateMessage(AgentMessage):
    """The agent hands the conversation to a human (``targets``). Also read from ``Escalation``."""

    type: Literal["Escalate", "Escalation"] = "Escalate"
    targets: list[EscalationTarget] = Field(default_factory=list)


class FailureMessage(AgentMessage):
    """An action failed (``code`` e.g. ``ACTION_FAILED``, ``errors`` the details)."""

    type: Literal["Failure"] = "Failure"
    code: str | None = None
    errors: list[Any] = Field(default_factory=list)


class ErrorMessage(AgentMessage):
    """The turn failed on the server side (``http_status``, ``error`` class name, ``trace_id``)."""

    type: Literal["Error"] = "Error"
    http_status: int | None = None
    trace_id: str | None = None
    error: str | None = None
    timestamp: int | None = None
    expected: bool | None = None


class SessionEndedMessage(AgentMessage):
    """The session was ended (by the agent or on request); ``reason`` says why."""

    type: Literal["SessionEnded"] = "SessionEnded"
    reason: str | None = None


_KNOWN_TYPES: dict[str, str] = {
    "Inform": "Inform",
    "Inquire": "Inquire",
    "Confirm": "Confirm",
    "Escalate": "Escalate",
    "Escalation": "Escalate",
    "Failure": "Failure",
    "Error": "Error",
    "SessionEnded": "SessionEnded",
}


def _message_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return _KNOWN_TYPES.get(kind, "other") if isinstance(kind, str) else "other"


AnyAgentMessage = Annotated[
    Annotated[InformMessage, Tag("Inform")]
    | Annotated[InquireMessage, Tag("Inquire")]
    | Annotated[ConfirmMessage, Tag("Confirm")]
    | Annotated[EscalateMessage, Tag("Escalate")]
    | Annotated[FailureMessage, Tag("Failure")]
    | Annotated[ErrorMessage, Tag("Error")]
    | Annotated[SessionEndedMessage, Tag("SessionEnded")]
    | Annotated[AgentMessage, Tag("other")],
    Discriminator(_message_tag),
]
"""Any agent message: the class follows ``type``; unknown types parse as :class:`AgentMessage`."""

agent_message_adapter: TypeAdapter[AgentMessage] = TypeAdapter(AnyAgentMessage)


# --------------------------------------------------------------------------- responses


class Link(WireModel):
    """A HAL-style link in ``_links``."""

    href: str | None = None


class MessagesResponse(WireModel):
    """The body of a send-message or end-session response."""

    messages: list[AnyAgentMessage] = Field(default_factory=list)
    links: dict[str, Link | None] = Field(default_factory=dict, alias="_links")


class StartSessionResponse(MessagesResponse):
    """The body of a start-session response: the server's ``sessionId`` and the greeting."""

    session_id: str


class TokenResponse(WireModel):
    """The OAuth token endpoint's answer. Salesforce sends ``issued_at`` (ms) but no ``expires_in``."""

    access_token: str = Field(repr=False)
    instance_url: str | None = None
    api_instance_url: str | None = None
    token_type: str | None = None
    issued_at: int | None = None
    scope: str | None = None
    id: str | None = None

    model_config = ConfigDict(alias_generator=None)

    @field_validator("issued_at", mode="before")
    @classmethod
    def _issued_at_number(cls, value: Any) -> Any:
        # A string in some responses, a number in others.
        if isinstance(value, str):
            return int(value) if value.strip().isdigit() else None
        return value


# --------------------------------------------------------------------------- requests


class Variable(RequestModel):
    """A context or custom variable: ``{name, type, value}``."""

    name: str
    type: str = "Text"
    value: Any


VariableInput = Variable | Mapping[str, Any]
"""A variable as a :class:`Variable` or a mapping with ``name``, ``type`` and ``value``."""


class InstanceConfig(RequestModel):
    """Where the org lives: its My Domain URL."""

    endpoint: str


class StreamingCapabilities(RequestModel):
    """Which chunk types the streaming endpoint should send."""

    chunk_types: list[str] = Field(default_factory=lambda: ["Text"])


class StartSessionRequest(RequestModel):
    """The body of start-session."""

    external_session_key: str
    instance_config: InstanceConfig
    tz: str | None = None
    variables: list[Variable] = Field(default_factory=list)
    feature_support: str | None = None
    streaming_capabilities: StreamingCapabilities | None = None
    bypass_user: bool = True


class FeedbackRequest(RequestModel):
    """The body of submit-feedback."""

    feedback_id: str
    feedback: Literal["GOOD", "BAD"]
    text: str | None = None
