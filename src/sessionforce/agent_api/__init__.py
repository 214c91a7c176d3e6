"""The Agent API wire, usable alone: a typed client with one method per call and no lifecycle or store.

Token providers, the retry policy, the pooled transport, SSE decoding and the typed stream events live in
private modules here; this module is their public face. Nothing in this package imports the stores or the
conversation lifecycle (a test checks it).
"""

from __future__ import annotations

from sessionforce.agent_api._auth import AccessToken, ClientCredentials, StaticToken, TokenProvider
from sessionforce.agent_api._client import AsyncAgentClient, Session
from sessionforce.agent_api._events import (
    EndOfTurnEvent,
    EventStream,
    MessageEvent,
    ProgressEvent,
    StreamEvent,
    TextChunkEvent,
    UnknownEvent,
    ValidationFailureEvent,
)
from sessionforce.agent_api._models import (
    AgentMessage,
    CitedReference,
    ConfirmMessage,
    EndReason,
    ErrorMessage,
    EscalateMessage,
    EscalationTarget,
    FailureMessage,
    InformMessage,
    InlineMetadata,
    InquireMessage,
    MessageType,
    SessionEndedMessage,
    Variable,
    VariableInput,
)
from sessionforce.agent_api._reply import Awaiting, Reply
from sessionforce.agent_api._retry import RetryPolicy
from sessionforce.agent_api._stream import MessageStream
from sessionforce.agent_api._transport import Timeouts

__all__ = [
    "AccessToken",
    "AgentMessage",
    "AsyncAgentClient",
    "Awaiting",
    "CitedReference",
    "ClientCredentials",
    "ConfirmMessage",
    "EndOfTurnEvent",
    "EndReason",
    "ErrorMessage",
    "EscalateMessage",
    "EscalationTarget",
    "EventStream",
    "FailureMessage",
    "InformMessage",
    "InlineMetadata",
    "InquireMessage",
    "MessageEvent",
    "MessageStream",
    "MessageType",
    "ProgressEvent",
    "Reply",
    "RetryPolicy",
    "Session",
    "SessionEndedMessage",
    "StaticToken",
    "StreamEvent",
    "TextChunkEvent",
    "Timeouts",
    "TokenProvider",
    "UnknownEvent",
    "ValidationFailureEvent",
    "Variable",
    "VariableInput",
]
