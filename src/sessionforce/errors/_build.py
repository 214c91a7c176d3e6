"""Every error sessionforce raises about a request or a store is built here, and only here: the texts,
the class for each status, and the truth about delivery each one tells.

The wire (transport, auth, stream events) and the stores call these functions; none of them formats an
error text of its own. Arguments are plain values (no aiohttp, no store records), so this module stays at
the bottom of the layers.
"""

from __future__ import annotations

from typing import Any, Protocol

from sessionforce.errors._redact import redact_url
from sessionforce.errors._tree import (
    APIStatusError,
    AuthError,
    BadRequest,
    ClientClosed,
    ConnectionFailed,
    ConversationBusy,
    ConversationError,
    Delivery,
    DeliveryUnknown,
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
)

__all__ = [
    "client_closed",
    "connection_failed",
    "conversation_busy",
    "delivery_unknown",
    "error_from_status",
    "in_stream_error",
    "lease_lost",
    "protocol_error",
    "redact_url",
    "session_locked",
    "session_start_failed",
    "stale_record",
    "static_token_refused",
    "store_unavailable",
    "stream_interrupted",
    "token_endpoint_error",
    "token_unreadable",
    "turn_store_failure",
]

# ---------------------------------------------------------------------------------------- status errors

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

_MAYBE_RAN = frozenset({500, 502, 504})
"""Statuses after which the agent may have acted on the request (the Agent API answers 500 to a call that
ran past 120 s); every other error status refused the request before the agent saw it (503 included)."""


def _delivery_of(status: int) -> Delivery:
    return Delivery.MAYBE_DELIVERED if status in _MAYBE_RAN else Delivery.NOT_SENT


def error_from_status(
    status: int,
    server_message: str | None,
    *,
    request_id: str | None = None,
    body: bytes | str | None = None,
    on_session: bool = False,
    retry_after: float | None = None,
    delivery: Delivery | None = None,
    idempotent: bool = False,
) -> APIStatusError:
    """Build the most specific :class:`APIStatusError` for an HTTP status.

    ``on_session`` says the request addressed a started session, which turns a 404 into
    :class:`SessionNotFound` (expired or ended) rather than :class:`NotFound` (wrong agent or host).
    ``delivery`` defaults to what the status says (500, 502, 504: maybe delivered; others: not sent);
    ``idempotent`` requests (ending a session, the token) were safe to retry, so no warning is given.
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
    truth = _delivery_of(status) if delivery is None else delivery
    advice = _ADVICE.get(cls)
    if truth is Delivery.MAYBE_DELIVERED and not idempotent:
        what += ". The agent may have received the request, so it was not resent"
        advice = "check the conversation's state before sending the turn again"
    message = f"{what}. What to do: {advice}." if advice else f"{what}."
    kwargs: dict[str, Any] = {"status": status, "request_id": request_id, "body": body, "delivery": truth}
    if cls is RateLimited:
        return RateLimited(message, retry_after=retry_after, **kwargs)
    return cls(message, **kwargs)


def session_locked(locked: SessionforceError, *, waited: float, budget: float) -> SessionLocked:
    """The 423 that outlasted ``RetryPolicy.locked_wait``: the request was not accepted."""
    return SessionLocked(
        f"The session stayed locked (423: another request is in flight on it) for {waited:.1f}s, past the "
        f"wait bound of {budget:g}s (RetryPolicy.locked_wait). This request was NOT accepted: the agent did "
        "not receive it. What to do: send it again once the earlier request has finished (an earlier turn, "
        "perhaps one that was cancelled, is still running on the server), or raise locked_wait.",
        status=locked.status,
        request_id=locked.request_id,
        body=locked.body,
        delivery=Delivery.NOT_SENT,
    )


def in_stream_error(
    status: int | None, text: str | None, *, request_id: str | None, raw: bytes | str
) -> APIStatusError:
    """An ``Error`` message or error event inside a 200: the agent got the turn and answered that it
    failed (``httpStatus`` picks the class; 500 when it gives none)."""
    code = status if isinstance(status, int) and 400 <= status < 600 else 500
    return error_from_status(
        code,
        text or "the turn failed",
        request_id=request_id,
        body=raw,
        on_session=True,
        delivery=Delivery.ANSWERED,
    )


# ---------------------------------------------------------------------------------------- no usable answer


def protocol_error(what: str, *, body: bytes | str | None = None, status: int | None = None) -> ProtocolError:
    """The server answered something that is not an Agent API answer: the request may have reached the
    agent (it was sent, something answered), so it is never resent."""
    return ProtocolError(
        f"The Agent API answered something sessionforce cannot read: {what}. The request was sent and "
        "something answered, so the agent may have received it; it was not resent. What to do: check the "
        "base URL points at the Agent API (report it if it does), and check the conversation's state "
        "before sending the turn again.",
        status=status,
        body=body,
    )


def connection_failed(what: str, reason: str, *, tls: bool = False) -> ConnectionFailed:
    """The request never reached the server."""
    if tls:
        return ConnectionFailed(
            f"TLS failed for {what}: {reason}. The request did not reach the server. What to do: check the "
            "base URL and the machine's CA certificates."
        )
    return ConnectionFailed(
        f"Could not connect for {what}: {reason}. The request did not reach the server. "
        "What to do: check the base URL / My Domain and the network."
    )


def delivery_unknown(what: str, reason: str, *, idempotent: bool) -> DeliveryUnknown:
    """The request was (or may have been) sent and no answer came back."""
    if idempotent:
        return DeliveryUnknown(f"{what} {reason}. What to do: retry later.")
    return DeliveryUnknown(
        f"{what} {reason} after the request was sent: the agent may or may not have received it, so it was "
        "not resent. What to do: check the conversation's state before sending the turn again."
    )


def stream_interrupted(
    session_id: str, sequence_id: int, why: str, *, partial_text: str, messages: list[Any]
) -> StreamInterrupted:
    """The streamed reply of an accepted turn broke off: delivered, reply incomplete."""
    return StreamInterrupted(
        f"The reply stream for turn {sequence_id} on session {session_id} broke off ({why}). The turn WAS "
        "delivered to the agent; the reply is incomplete. What to do: do not resend the turn; show the "
        "partial text, or ask the user to continue.",
        partial_text=partial_text,
        messages=messages,
    )


def client_closed() -> ClientClosed:
    """A call on a closed client."""
    return ClientClosed("This client is closed. What to do: create a new client.")


# ---------------------------------------------------------------------------------------- the token endpoint


def token_endpoint_error(
    token_url: str, status: int, code: str | None, description: str | None, body: bytes
) -> APIStatusError:
    """The token endpoint refused or failed (the request carried no user turn: delivery not sent)."""
    if status in (400, 401) and code:
        return AuthError(
            f"The token endpoint refused the client credentials ({code}: {description or 'no description'}). "
            "What to do: check SF_CLIENT_ID and SF_CLIENT_SECRET, and that the External Client App has "
            "the client credentials flow enabled with a run-as user.",
            status=status,
            body=body,
        )
    error = error_from_status(status, description or code, body=body, delivery=Delivery.NOT_SENT)
    if status == 429 or status >= 500:
        return error
    return AuthError(
        f"Fetching a token from {token_url} failed: {error.message} What to do: check SF_MY_DOMAIN is the "
        "org's My Domain URL.",
        status=status,
        body=body,
    )


def token_unreadable(token_url: str, problems: int, *, status: int, body: bytes) -> AuthError:
    """The token endpoint answered 200 without a usable token."""
    return AuthError(
        f"The token endpoint {token_url} answered 200 without a readable access_token ({problems} "
        "problem(s)). What to do: check SF_MY_DOMAIN is the org's My Domain URL.",
        status=status,
        body=body,
    )


def static_token_refused() -> AuthError:
    """A static token was refused: it cannot be refreshed."""
    return AuthError(
        "The Agent API refused the static token (401). What to do: mint a new token, or configure "
        "client credentials (SF_CLIENT_ID / SF_CLIENT_SECRET) so sessionforce can refresh it.",
        status=401,
    )


# ---------------------------------------------------------------------------------------- stores


class LeaseLike(Protocol):
    """What the store errors read of a lease (``sessionforce.store.Lease`` has it)."""

    @property
    def owner(self) -> str: ...  # pragma: no cover - a protocol

    @property
    def fence(self) -> int: ...  # pragma: no cover - a protocol


def lease_lost(conversation_id: str, lease: LeaseLike | None) -> LeaseLost:
    """A write under ``lease`` was refused: it is not the conversation's current lease any more."""
    held = f"fence {lease.fence}, owner {lease.owner}" if lease is not None else "no lease"
    return LeaseLost(
        f"The lease on conversation {conversation_id!r} was lost ({held}); the write was refused. "
        "What to do: nothing was overwritten; retry the turn, it will see the newer state."
    )


def stale_record(conversation_id: str, expected: int, found: int) -> StaleRecord:
    """A compare-and-save expected version ``expected`` and found ``found``."""
    return StaleRecord(
        f"Conversation {conversation_id!r} was saved by someone else (version {found}, this write expected "
        f"{expected}). What to do: reload it and apply the change again."
    )


def conversation_busy(conversation_id: str, waited: float, *, holder: str | None = None,
                      where: str | None = None) -> ConversationBusy:
    """The conversation's lease stayed held past the wait bound; the turn was not sent."""
    by = f"a turn by {holder} holds it" if holder else "another turn holds it"
    if where:
        by += f" in {where}"
    return ConversationBusy(
        f"Conversation {conversation_id!r} stayed busy for {waited:.1f}s ({by}); the turn was not sent. "
        "What to do: retry later, or raise the wait bound (lock_wait)."
    )


_STORE_DELIVERY = {
    None: "",
    Delivery.NOT_SENT: " Nothing was sent to the agent.",
    Delivery.MAYBE_DELIVERED: " The turn may have reached the agent: do not resend it before checking.",
    Delivery.ANSWERED: " The agent answered the turn (the reply is in exc.reply) but it was not saved: "
    "do not resend it.",
}


def store_unavailable(
    store: str,
    operation: str,
    cause: BaseException | str,
    *,
    advice: str | None = None,
    delivery: Delivery | None = None,
) -> StoreUnavailable:
    """``store`` (e.g. ``"Redis at 127.0.0.1:6379"``; URLs are redacted) failed while ``operation``.

    The store does not know whether a turn was sent: ``delivery`` is for the caller who does (the
    lifecycle); without it the message says nothing about delivery.
    """
    reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}" if str(cause) else type(
        cause).__name__
    return StoreUnavailable(
        f"The session store {redact_url(store)} failed while {operation} ({reason})."
        f"{_STORE_DELIVERY[delivery]} What to do: {advice or 'check that the store is up and writable, then retry'}.",
        delivery=delivery,
    )


def turn_store_failure(error: ConversationError, delivery: Delivery) -> ConversationError:
    """A store's failure during a turn (``error``: the store cannot know whether the turn was sent)
    restated by the lifecycle, which knows: same class, with ``delivery`` and its sentence first. Raise it
    ``from error``."""
    restated = type(error)(f"{_STORE_DELIVERY[delivery].strip()} {error.message}", delivery=delivery)
    restated.reply = error.reply
    return restated


def session_start_failed(what: str, cause: BaseException) -> SessionStartFailed:
    """Making a session ready for a turn failed in ``what`` (starting it, its resume preamble) in a way
    that may have reached the server; the user's turn was not sent. Raise it ``from cause``."""
    return SessionStartFailed(
        f"The turn was not sent: {what} failed ({cause}). A session that may have been opened meanwhile expires "
        "on the server by itself. What to do: send the turn again."
    )
