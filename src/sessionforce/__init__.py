"""sessionforce: run conversations with Salesforce Agentforce agents from Python.

The pieces, bottom up: typed wire models (:mod:`sessionforce.models`) and errors
(:mod:`sessionforce.errors`); token providers (:mod:`sessionforce.auth`); the Agent API client,
async (:class:`AsyncAgentClient`) and blocking (:class:`AgentClient`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sessionforce._version import __version__

if TYPE_CHECKING:
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

_LAZY: dict[str, str] = {
    "APIStatusError": "sessionforce.errors",
    "AccessToken": "sessionforce.auth",
    "AgentClient": "sessionforce.sync",
    "AsyncAgentClient": "sessionforce.client",
    "AuthError": "sessionforce.errors",
    "Awaiting": "sessionforce.reply",
    "BadRequest": "sessionforce.errors",
    "ClientClosed": "sessionforce.errors",
    "ClientCredentials": "sessionforce.auth",
    "ClientSettings": "sessionforce.settings",
    "ConfigError": "sessionforce.errors",
    "ConnectionFailed": "sessionforce.errors",
    "ConversationError": "sessionforce.errors",
    "DeliveryUnknown": "sessionforce.errors",
    "EndOfTurnEvent": "sessionforce.streaming",
    "InvalidArgument": "sessionforce.errors",
    "MessageEvent": "sessionforce.streaming",
    "MessageStream": "sessionforce.client",
    "NotFound": "sessionforce.errors",
    "PermissionDenied": "sessionforce.errors",
    "ProgressEvent": "sessionforce.streaming",
    "ProtocolError": "sessionforce.errors",
    "RateLimited": "sessionforce.errors",
    "Reply": "sessionforce.reply",
    "RetryPolicy": "sessionforce.http",
    "ServerError": "sessionforce.errors",
    "Session": "sessionforce.client",
    "SessionLocked": "sessionforce.errors",
    "SessionNotFound": "sessionforce.errors",
    "SessionforceError": "sessionforce.errors",
    "StaticToken": "sessionforce.auth",
    "StreamEvent": "sessionforce.streaming",
    "StreamInterrupted": "sessionforce.errors",
    "SyncMessageStream": "sessionforce.sync",
    "TextChunkEvent": "sessionforce.streaming",
    "Timeouts": "sessionforce.http",
    "TokenProvider": "sessionforce.auth",
    "TransportError": "sessionforce.errors",
    "UnknownEvent": "sessionforce.streaming",
    "ValidationFailureEvent": "sessionforce.streaming",
    "Variable": "sessionforce.models",
}
"""Where each public name lives: imported on first use, so ``import sessionforce`` (and the CLI's
``--version``) does not pay for aiohttp, pydantic models and the rest until they are needed."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sessionforce' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
