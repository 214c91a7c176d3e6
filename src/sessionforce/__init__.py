"""sessionforce: run conversations with Salesforce Agentforce agents from Python.

The layers, bottom up (each imports only the ones below it; see docs/architecture.md): errors
(:mod:`sessionforce.errors`); configuration (:mod:`sessionforce.config`); the Agent API wire
(:mod:`sessionforce.agent_api`: :class:`AsyncAgentClient`); session stores (:mod:`sessionforce.store`);
the conversation lifecycle (:mod:`sessionforce.lifecycle`: :class:`Conversations`); the blocking facade
(:mod:`sessionforce.blocking`: :class:`AgentClient`, :class:`BlockingConversations`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sessionforce._version import __version__

if TYPE_CHECKING:  # for type checkers only (``X as X``: re-exported); at run time _EXPORTS imports each on use
    from sessionforce.agent_api import (
        AccessToken as AccessToken,
    )
    from sessionforce.agent_api import (
        AsyncAgentClient as AsyncAgentClient,
    )
    from sessionforce.agent_api import (
        Awaiting as Awaiting,
    )
    from sessionforce.agent_api import (
        ClientCredentials as ClientCredentials,
    )
    from sessionforce.agent_api import (
        EndOfTurnEvent as EndOfTurnEvent,
    )
    from sessionforce.agent_api import (
        MessageEvent as MessageEvent,
    )
    from sessionforce.agent_api import (
        MessageStream as MessageStream,
    )
    from sessionforce.agent_api import (
        ProgressEvent as ProgressEvent,
    )
    from sessionforce.agent_api import (
        Reply as Reply,
    )
    from sessionforce.agent_api import (
        RetryPolicy as RetryPolicy,
    )
    from sessionforce.agent_api import (
        Session as Session,
    )
    from sessionforce.agent_api import (
        StaticToken as StaticToken,
    )
    from sessionforce.agent_api import (
        StreamEvent as StreamEvent,
    )
    from sessionforce.agent_api import (
        TextChunkEvent as TextChunkEvent,
    )
    from sessionforce.agent_api import (
        Timeouts as Timeouts,
    )
    from sessionforce.agent_api import (
        TokenProvider as TokenProvider,
    )
    from sessionforce.agent_api import (
        UnknownEvent as UnknownEvent,
    )
    from sessionforce.agent_api import (
        ValidationFailureEvent as ValidationFailureEvent,
    )
    from sessionforce.agent_api import (
        Variable as Variable,
    )
    from sessionforce.blocking import (
        AgentClient as AgentClient,
    )
    from sessionforce.blocking import (
        BlockingConversation as BlockingConversation,
    )
    from sessionforce.blocking import (
        BlockingConversations as BlockingConversations,
    )
    from sessionforce.blocking import (
        BlockingReply as BlockingReply,
    )
    from sessionforce.blocking import (
        SyncMessageStream as SyncMessageStream,
    )
    from sessionforce.config import (
        ClientSettings as ClientSettings,
    )
    from sessionforce.errors import (
        APIStatusError as APIStatusError,
    )
    from sessionforce.errors import (
        AuthError as AuthError,
    )
    from sessionforce.errors import (
        BadRequest as BadRequest,
    )
    from sessionforce.errors import (
        ClientClosed as ClientClosed,
    )
    from sessionforce.errors import (
        ConfigError as ConfigError,
    )
    from sessionforce.errors import (
        ConnectionFailed as ConnectionFailed,
    )
    from sessionforce.errors import (
        ConversationBusy as ConversationBusy,
    )
    from sessionforce.errors import (
        ConversationEnded as ConversationEnded,
    )
    from sessionforce.errors import (
        ConversationError as ConversationError,
    )
    from sessionforce.errors import (
        DeliveryUnknown as DeliveryUnknown,
    )
    from sessionforce.errors import (
        InvalidArgument as InvalidArgument,
    )
    from sessionforce.errors import (
        LeaseLost as LeaseLost,
    )
    from sessionforce.errors import (
        NotFound as NotFound,
    )
    from sessionforce.errors import (
        PermissionDenied as PermissionDenied,
    )
    from sessionforce.errors import (
        ProtocolError as ProtocolError,
    )
    from sessionforce.errors import (
        RateLimited as RateLimited,
    )
    from sessionforce.errors import (
        ServerError as ServerError,
    )
    from sessionforce.errors import (
        SessionforceError as SessionforceError,
    )
    from sessionforce.errors import (
        SessionLocked as SessionLocked,
    )
    from sessionforce.errors import (
        SessionNotFound as SessionNotFound,
    )
    from sessionforce.errors import (
        StaleRecord as StaleRecord,
    )
    from sessionforce.errors import (
        StoreUnavailable as StoreUnavailable,
    )
    from sessionforce.errors import (
        StreamInterrupted as StreamInterrupted,
    )
    from sessionforce.errors import (
        TransportError as TransportError,
    )
    from sessionforce.lifecycle import (
        Conversation as Conversation,
    )
    from sessionforce.lifecycle import (
        ConversationOptions as ConversationOptions,
    )
    from sessionforce.lifecycle import (
        ConversationReply as ConversationReply,
    )
    from sessionforce.lifecycle import (
        Conversations as Conversations,
    )
    from sessionforce.lifecycle import (
        ConversationStream as ConversationStream,
    )
    from sessionforce.lifecycle import (
        ResumePolicy as ResumePolicy,
    )
    from sessionforce.store import (
        open_store as open_store,
    )
    from sessionforce.telemetry import (
        Telemetry as Telemetry,
    )

_EXPORTS: dict[str, str] = {
    "APIStatusError": "sessionforce.errors",
    "AccessToken": "sessionforce.agent_api",
    "AgentClient": "sessionforce.blocking",
    "AsyncAgentClient": "sessionforce.agent_api",
    "AuthError": "sessionforce.errors",
    "Awaiting": "sessionforce.agent_api",
    "BadRequest": "sessionforce.errors",
    "BlockingConversation": "sessionforce.blocking",
    "BlockingConversations": "sessionforce.blocking",
    "BlockingReply": "sessionforce.blocking",
    "ClientClosed": "sessionforce.errors",
    "ClientCredentials": "sessionforce.agent_api",
    "ClientSettings": "sessionforce.config",
    "ConfigError": "sessionforce.errors",
    "ConnectionFailed": "sessionforce.errors",
    "Conversation": "sessionforce.lifecycle",
    "ConversationBusy": "sessionforce.errors",
    "ConversationEnded": "sessionforce.errors",
    "ConversationError": "sessionforce.errors",
    "ConversationOptions": "sessionforce.lifecycle",
    "ConversationReply": "sessionforce.lifecycle",
    "ConversationStream": "sessionforce.lifecycle",
    "Conversations": "sessionforce.lifecycle",
    "DeliveryUnknown": "sessionforce.errors",
    "EndOfTurnEvent": "sessionforce.agent_api",
    "InvalidArgument": "sessionforce.errors",
    "LeaseLost": "sessionforce.errors",
    "MessageEvent": "sessionforce.agent_api",
    "MessageStream": "sessionforce.agent_api",
    "NotFound": "sessionforce.errors",
    "PermissionDenied": "sessionforce.errors",
    "ProgressEvent": "sessionforce.agent_api",
    "ProtocolError": "sessionforce.errors",
    "RateLimited": "sessionforce.errors",
    "Reply": "sessionforce.agent_api",
    "ResumePolicy": "sessionforce.lifecycle",
    "RetryPolicy": "sessionforce.agent_api",
    "ServerError": "sessionforce.errors",
    "Session": "sessionforce.agent_api",
    "SessionLocked": "sessionforce.errors",
    "SessionNotFound": "sessionforce.errors",
    "SessionforceError": "sessionforce.errors",
    "StaleRecord": "sessionforce.errors",
    "StaticToken": "sessionforce.agent_api",
    "StoreUnavailable": "sessionforce.errors",
    "StreamEvent": "sessionforce.agent_api",
    "StreamInterrupted": "sessionforce.errors",
    "SyncMessageStream": "sessionforce.blocking",
    "Telemetry": "sessionforce.telemetry",
    "TextChunkEvent": "sessionforce.agent_api",
    "Timeouts": "sessionforce.agent_api",
    "TokenProvider": "sessionforce.agent_api",
    "TransportError": "sessionforce.errors",
    "UnknownEvent": "sessionforce.agent_api",
    "ValidationFailureEvent": "sessionforce.agent_api",
    "Variable": "sessionforce.agent_api",
    "open_store": "sessionforce.store",
}
"""The public API, each name once: name → the module it is imported from on first use, so
``import sessionforce`` (and the CLI's ``--version``) does not pay for aiohttp, pydantic models and the
rest until they are needed. A test checks that the ``TYPE_CHECKING`` imports above name the same."""

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sessionforce' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
