"""Every error sessionforce raises, in one tree rooted at :class:`SessionforceError`.

The tree splits on the question a caller asks first: *did the server answer?*

::

    SessionforceError
    ├── ConfigError              a setting is missing or malformed (raised at construction)
    ├── InvalidArgument          a call's argument is malformed (raised before anything is sent)
    ├── ClientClosed             the client was used after close()
    ├── ProtocolError            the server answered something we cannot read
    ├── APIStatusError           the server answered with an error status
    │   ├── BadRequest           400 (and other 4xx without a class of their own)
    │   ├── AuthError            401 after one token refresh, or the token endpoint refused us
    │   │   └── PermissionDenied 403
    │   ├── NotFound             404 (agent unknown, wrong host or token)
    │   │   └── SessionNotFound  404 on a started session: it expired or was ended
    │   ├── SessionLocked        423: another request is in flight on the session
    │   ├── RateLimited          429, with ``retry_after``
    │   └── ServerError          5xx
    ├── TransportError           no complete answer came back
    │   ├── ConnectionFailed     the request provably never reached the server
    │   └── DeliveryUnknown      the request may have reached the agent; it was not resent
    │       └── StreamInterrupted  the turn was delivered, the streamed reply broke off
    └── ConversationError        lifecycle-level failures
        ├── ConversationBusy     waited too long for the conversation's turn lock
        ├── ConversationEnded    the agent ended the session and the policy forbids a new one
        ├── StaleRecord          a compare-and-save lost: someone else saved the record first
        ├── LeaseLost            the turn lock expired or was taken over (fencing token is stale)
        └── StoreUnavailable     the session store cannot be reached; nothing was sent

Every error carries ``status``, ``request_id`` and the raw ``body`` where the server gave them.
Messages say what happened and what to do; they never contain tokens or secrets.
"""

from __future__ import annotations

import json
from typing import Any

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
    "SessionforceError",
    "StaleRecord",
    "StoreUnavailable",
    "StreamInterrupted",
    "TransportError",
    "error_from_status",
]


class SessionforceError(Exception):
    """Root of every error sessionforce raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        body: bytes | str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        extra = []
        if self.status is not None:
            extra.append(f"status {self.status}")
        if self.request_id:
            extra.append(f"request id {self.request_id}")
        return f"{self.message} ({', '.join(extra)})" if extra else self.message

    @property
    def body_json(self) -> Any:
        """The raw body parsed as JSON, or ``None`` when it is not JSON."""
        if self.body is None:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, TypeError):
            return None


class ConfigError(SessionforceError):
    """A setting is missing or malformed; the message names the setting and how to set it."""


class InvalidArgument(SessionforceError, ValueError):
    """A call's argument is malformed; nothing was sent. The message names the argument."""


class ClientClosed(SessionforceError):
    """The client (or conversation) was used after it was closed."""


class ProtocolError(SessionforceError):
    """The server answered, but with something that does not follow the Agent API wire format."""


class APIStatusError(SessionforceError):
    """The server answered with an HTTP error status."""


class BadRequest(APIStatusError):
    """400 (or another 4xx without its own class): the request was refused as malformed or out of order.

    Never retried: the same request would be refused again.
    """


class AuthError(APIStatusError):
    """Authentication failed: the token endpoint refused the credentials, or the Agent API kept answering
    401 after one token refresh (e.g. the app is not attached to the agent)."""


class PermissionDenied(AuthError):
    """403: the app lacks a scope, or the agent is not accessible to it."""


class NotFound(APIStatusError):
    """404 outside a started session: unknown agent, or a wrong API host or token."""


class SessionNotFound(NotFound):
    """404 on a started session: it expired after inactivity or was ended. Start a new session."""


class SessionLocked(APIStatusError):
    """423: another request is in flight on this session (one request at a time per session)."""


class RateLimited(APIStatusError):
    """429: rate limited. ``retry_after`` holds the server's wait hint in seconds, when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the server failed."""


class TransportError(SessionforceError):
    """No complete answer came back: the connection failed, timed out or broke."""


class ConnectionFailed(TransportError):
    """The request provably never reached the server (connect refused, DNS, connect timeout)."""


class DeliveryUnknown(TransportError):
    """The request was sent, but no answer came back: the agent may or may not have acted on it.

    It is never resent automatically, because resending a user turn could run an action twice.
    """


class StreamInterrupted(DeliveryUnknown):
    """The server accepted the turn and began streaming the reply, then the stream broke off.

    The turn *was delivered*. ``partial_text`` holds the text received so far and ``messages`` any
    complete messages; do not resend the turn.
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        messages: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.partial_text = partial_text
        self.messages: list[Any] = messages or []


class ConversationError(SessionforceError):
    """Base of the lifecycle-level failures raised by conversations and stores."""

    reply: Any = None
    """The agent's reply, when it arrived but could not be saved (e.g. the store went down mid-turn)."""


class ConversationBusy(ConversationError):
    """Waited longer than the configured bound for the conversation's one-turn-at-a-time lock."""


class ConversationEnded(ConversationError):
    """The agent ended the session, and the conversation's policy forbids starting a new one."""


class StaleRecord(ConversationError):
    """A compare-and-save found a newer version of the record: another writer saved it first."""


class LeaseLost(ConversationError):
    """This worker's lease on the conversation expired or was taken over; its write was refused."""


class StoreUnavailable(ConversationError):
    """The session store cannot be reached. Nothing was sent to the agent and nothing was lost."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequest,
    401: AuthError,
    403: PermissionDenied,
    404: NotFound,
    423: SessionLocked,
    429: RateLimited,
}

_ADVICE: dict[type[APIStatusError], str] = {
    BadRequest: "the request was refused; check the arguments (it is not retried)",
    AuthError: "check the client id and secret, and that the app is attached to the agent",
    PermissionDenied: "give the External Client App the needed OAuth scopes and access to the agent",
    NotFound: "check the agent id, the API host (base URL) and that the token belongs to this org",
    SessionNotFound: "the session expired or was ended; start a new session",
    SessionLocked: "another request is in flight on this session; send turns one at a time",
    RateLimited: "the org's rate limit was hit; wait and retry",
    ServerError: "the server failed; retry later",
}


def error_from_status(
    status: int,
    server_message: str | None,
    *,
    request_id: str | None = None,
    body: bytes | str | None = None,
    on_session: bool = False,
    retry_after: float | None = None,
) -> APIStatusError:
    """Build the most specific :class:`APIStatusError` for an HTTP status.

    ``on_session`` says the request addressed a started session, which turns a 404 into
    :class:`SessionNotFound` (expired or ended) rather than :class:`NotFound` (wrong agent or host).
    """
    cls: type[APIStatusError]
    if status == 404 and on_session:
        cls = SessionNotFound
    elif status >= 500:
        cls = ServerError
    else:
        cls = _STATUS_CLASSES.get(status, BadRequest if 400 <= status < 500 else APIStatusError)
    what = f"The Agent API answered {status}"
    if server_message:
        what += f": {server_message}"
    advice = _ADVICE.get(cls)
    message = f"{what}. What to do: {advice}." if advice else f"{what}."
    if cls is RateLimited:
        return RateLimited(message, retry_after=retry_after, status=status, request_id=request_id, body=body)
    return cls(message, status=status, request_id=request_id, body=body)
