"""Every error sessionforce raises, in one tree rooted at :class:`SessionforceError`.

The tree splits on the question a caller asks first, *did the server answer?*, and every error tells
the truth about delivery in ``exc.delivery`` (:class:`Delivery`): **not sent** (the agent did not get
the request: sending it again cannot run it twice), **maybe delivered** (it may have reached the agent:
never resend it blindly) or **answered** (the agent got it and answered; do not resend it). ``None``
means the error is not about a request (configuration, a store used outside a turn).

::

    SessionforceError                          delivery
    ├── ConfigError              a setting is missing or malformed            None
    ├── InvalidArgument          a call's argument is malformed               not sent
    ├── ClientClosed             the client was used after close()           not sent
    ├── APIStatusError           the server answered with an error status
    │   ├── BadRequest           400 (and other 4xx without a class)          not sent
    │   ├── AuthError            401 after one token refresh, or the token    not sent
    │   │   │                    endpoint refused us
    │   │   └── PermissionDenied 403                                          not sent
    │   ├── NotFound             404 (agent unknown, wrong host or token)     not sent
    │   │   └── SessionNotFound  404 on a started session: expired or ended   not sent
    │   ├── SessionLocked        423 past RetryPolicy.locked_wait             not sent
    │   ├── RateLimited          429, with ``retry_after``                    not sent
    │   └── ServerError          500, 502, 504                                maybe delivered
    │                            503 (the request was refused)                not sent
    │   (an ``Error`` message or error event inside a 200 raises the class of
    │    its ``httpStatus``: the agent answered the turn with a failure)      answered
    ├── TransportError           no usable answer came back
    │   ├── ConnectionFailed     the request provably never reached the server  not sent
    │   └── DeliveryUnknown      sent, no answer: never resent                maybe delivered
    │       ├── ProtocolError    something answered that is not an Agent API  maybe delivered
    │       │                    answer (a 200 without messages, HTML, ...)
    │       └── StreamInterrupted  the turn WAS delivered, its streamed reply  maybe delivered
    │                            broke off (``partial_text``)
    └── ConversationError        lifecycle-level failures
        ├── ConversationBusy     waited too long for the conversation's turn   not sent
        ├── ConversationEnded    the agent ended the session; policy forbids   not sent
        │                        a new one
        ├── SessionStartFailed   no session could be made ready for the turn   not sent
        │                        (start or resume preamble failed, maybe
        │                        after reaching the server)
        ├── StaleRecord          a compare-and-save lost: someone saved first  None
        ├── LeaseLost            the turn's lease expired or was taken over    None
        └── StoreUnavailable     the session store cannot be used              set by the lifecycle
    (a lifecycle error raised after the agent answered carries ``exc.reply``   answered)

``delivery`` is set where the error is built (one place, for every error), so an instance may differ
from its class's default: a ``ServerError`` for 503 is *not sent*, an error event in a 200 is *answered*.
Every error carries ``status``, ``request_id`` and the raw ``body`` where the server gave them.
Messages say what happened and what to do. No error ever holds a token, the client secret or a URL's
password: each is scrubbed from the message, the body and the partial text when the error is built.
"""

from __future__ import annotations

from sessionforce.errors._build import error_from_status
from sessionforce.errors._tree import (
    APIStatusError,
    AuthError,
    BadRequest,
    ClientClosed,
    ConfigError,
    ConnectionFailed,
    ConversationBusy,
    ConversationEnded,
    ConversationError,
    Delivery,
    DeliveryUnknown,
    InvalidArgument,
    LeaseLost,
    NotFound,
    PermissionDenied,
    ProtocolError,
    RateLimited,
    ServerError,
    SessionforceError,
    SessionLocked,
    SessionNotFound,
    SessionStartFailed,
    StaleRecord,
    StoreUnavailable,
    StreamInterrupted,
    TransportError,
)

__all__ = [
    "APIStatusError",
    "AuthError",
    "BadRequest",
    "ClientClosed",
    "ConfigError",
    "ConnectionFailed",
    "ConversationBusy",
    "ConversationEnded",
    "ConversationError",
    "Delivery",
    "DeliveryUnknown",
    "InvalidArgument",
    "LeaseLost",
    "NotFound",
    "PermissionDenied",
    "ProtocolError",
    "RateLimited",
    "ServerError",
    "SessionLocked",
    "SessionNotFound",
    "SessionStartFailed",
    "SessionforceError",
    "StaleRecord",
    "StoreUnavailable",
    "StreamInterrupted",
    "TransportError",
    "error_from_status",
]
