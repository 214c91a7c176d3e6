"""sessionforce: run conversations with Salesforce Agentforce agents from Python.

The pieces, bottom up: typed wire models (:mod:`sessionforce.models`) and errors
(:mod:`sessionforce.errors`); token providers (:mod:`sessionforce.auth`); the Agent API client,
async (:class:`AsyncAgentClient`) and blocking (:class:`AgentClient`).
"""

from sessionforce._version import __version__
from sessionforce.auth import AccessToken, ClientCredentials, StaticToken, TokenProvider
from sessionforce.client import AsyncAgentClient, MessageStream, Session
from sessionforce.errors import (
    APIStatusError,
    AuthError,
    BadRequest,
    ClientClosed,
    ConfigError,
    ConnectionFailed,
    ConversationError,
    DeliveryUnknown,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProtocolError,
    RateLimited,
    ServerError,
    SessionforceError,
    SessionLocked,
    SessionNotFound,
    StreamInterrupted,
    TransportError,
)
from sessionforce.http import RetryPolicy, Timeouts
from sessionforce.models import Variable
from sessionforce.reply import Awaiting, Reply
from sessionforce.settings import ClientSettings
from sessionforce.streaming import (
    EndOfTurnEvent,
    MessageEvent,
    ProgressEvent,
    StreamEvent,
    TextChunkEvent,
    UnknownEvent,
    ValidationFailureEvent,
)
from sessionforce.sync import AgentClient, SyncMessageStream

__all__ = [
    "APIStatusError",
    "AccessToken",
    "AgentClient",
    "AsyncAgentClient",
    "AuthError",
    "Awaiting",
    "BadRequest",
    "ClientClosed",
    "ClientCredentials",
    "ClientSettings",
    "ConfigError",
    "ConnectionFailed",
    "ConversationError",
    "DeliveryUnknown",
    "EndOfTurnEvent",
    "InvalidArgument",
    "MessageEvent",
    "MessageStream",
    "NotFound",
    "PermissionDenied",
    "ProgressEvent",
    "ProtocolError",
    "RateLimited",
    "Reply",
    "RetryPolicy",
    "ServerError",
    "Session",
    "SessionLocked",
    "SessionNotFound",
    "SessionforceError",
    "StaticToken",
    "StreamEvent",
    "StreamInterrupted",
    "SyncMessageStream",
    "TextChunkEvent",
    "Timeouts",
    "TokenProvider",
    "TransportError",
    "UnknownEvent",
    "ValidationFailureEvent",
    "Variable",
    "__version__",
]
