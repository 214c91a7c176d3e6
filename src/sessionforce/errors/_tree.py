"""The error classes and :class:`Delivery` (the tree and what each class means: ``sessionforce.errors``)."""

from __future__ import annotations

import enum
import json
from typing import Any

from sessionforce.errors._redact import scrub, scrub_body

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
]


class Delivery(enum.StrEnum):
    """What became of the request an error is about: may the agent have it?"""

    NOT_SENT = "not_sent"
    """The agent did not get it: it was never sent, or the server refused it before the agent saw it
    (a 4xx such as 400, 401, 404, 423, 429, or a 503). Sending it again cannot run it twice."""
    MAYBE_DELIVERED = "maybe_delivered"
    """It may have reached the agent, and no answer that can be trusted came back (a timeout or a
    connection lost after sending, a 500/502/504, an answer that is not an Agent API answer, a stream
    that broke off: that one was delivered for sure). Never resend it blindly: check first."""
    ANSWERED = "answered"
    """The agent got it and answered: the answer is an error (an ``Error`` message or an error event in
    a 200), or the failure came after the answer (``exc.reply`` holds it). Do not resend it."""


_UNSET: Any = object()


class SessionforceError(Exception):
    """Root of every error sessionforce raises.

    ``status``, ``request_id`` and the raw ``body`` are kept where the server gave them (secrets
    scrubbed, as from the message); ``delivery`` says what became of the request (:class:`Delivery`,
    ``None`` when the error is not about one).
    """

    delivery: Delivery | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        body: bytes | str | None = None,
        delivery: Delivery | None = _UNSET,
    ) -> None:
        # The one redaction point: every error, whoever builds it, is scrubbed here (error path only).
        message = scrub(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.body = scrub_body(body)
        if delivery is not _UNSET:
            self.delivery = delivery

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

    delivery = Delivery.NOT_SENT


class ClientClosed(SessionforceError):
    """The client (or conversation) was used after it was closed; nothing was sent."""

    delivery = Delivery.NOT_SENT


class APIStatusError(SessionforceError):
    """The server answered with an HTTP error status (or an error inside a 200)."""

    delivery = Delivery.NOT_SENT


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
    """423: another request stayed in flight on this session for longer than ``RetryPolicy.locked_wait``
    (one request at a time per session). This request was not accepted."""


class RateLimited(APIStatusError):
    """429: rate limited. ``retry_after`` holds the server's wait hint in seconds, when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the server failed. On a turn (500, 502, 504) the agent may have acted: ``delivery`` is
    ``MAYBE_DELIVERED``; a 503 refused the request (``NOT_SENT``)."""

    delivery = Delivery.MAYBE_DELIVERED


class TransportError(SessionforceError):
    """No usable answer came back: the connection failed, timed out or broke, or what came back was not
    an Agent API answer."""


class ConnectionFailed(TransportError):
    """The request provably never reached the server (connect refused, DNS, connect timeout, TLS)."""

    delivery = Delivery.NOT_SENT


class DeliveryUnknown(TransportError):
    """The request was sent, but no usable answer came back: the agent may or may not have acted on it.

    It is never resent automatically, because resending a user turn could run an action twice.
    """

    delivery = Delivery.MAYBE_DELIVERED


class ProtocolError(DeliveryUnknown):
    """The server answered, but not with an Agent API answer (a 200 without messages, HTML where JSON
    belongs, a status line that is not HTTP). The request was sent and something answered, so the agent
    may have received it: a :class:`DeliveryUnknown`, never resent."""


class StreamInterrupted(DeliveryUnknown):
    """The server accepted the turn and began streaming the reply, then the stream broke off (or stalled
    past ``Timeouts.stream_read``, or ran past ``Timeouts.turn``).

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
        self.partial_text = scrub(partial_text) if partial_text else partial_text
        self.messages: list[Any] = messages or []


class ConversationError(SessionforceError):
    """Base of the lifecycle-level failures raised by conversations and stores."""

    reply: Any = None
    """The agent's reply, when it arrived but could not be saved (e.g. the store went down mid-turn)."""


class ConversationBusy(ConversationError):
    """Waited longer than the configured bound for the conversation's one-turn-at-a-time lock; the turn
    was not sent."""

    delivery = Delivery.NOT_SENT


class ConversationEnded(ConversationError):
    """The agent ended the session, and the conversation's policy forbids starting a new one."""

    delivery = Delivery.NOT_SENT


class StaleRecord(ConversationError):
    """A compare-and-save found a newer version of the record: another writer saved it first."""


class LeaseLost(ConversationError):
    """This worker's lease on the conversation expired or was taken over; its write was refused."""


class SessionStartFailed(ConversationError):
    """No session could be made ready for a turn (starting one, or replaying history into a new one, failed
    in a way that may have reached the server); the turn itself was not sent. ``__cause__`` is what failed."""

    delivery = Delivery.NOT_SENT


class StoreUnavailable(ConversationError):
    """The session store cannot be reached or used. ``delivery`` says what became of the turn, when the
    lifecycle knows (the store itself does not)."""
