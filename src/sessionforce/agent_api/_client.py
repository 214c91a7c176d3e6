"""`AsyncAgentClient`: the Agent API, one method per call, typed, with no lifecycle policy and no store.

Use it directly when you want full control of sessions and sequence ids; for conversations that
survive expiry, restarts and many workers, use :class:`sessionforce.lifecycle.Conversations` (the
lifecycle manager built on top of this client).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncGenerator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, get_args
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from sessionforce.agent_api._auth import AccessToken, TokenProvider
from sessionforce.agent_api._events import (
    EndOfTurnEvent,
    EventStream,
    ReplyAssembler,
    StreamEvent,
    protocol_error,
    raise_for_error_messages,
    stream_event_from_sse,
)
from sessionforce.agent_api._factory import retry_policy_from, timeouts_from, token_provider_from
from sessionforce.agent_api._models import (
    EndReason,
    FeedbackRequest,
    InstanceConfig,
    MessagesResponse,
    MessageType,
    StartSessionRequest,
    StartSessionResponse,
    StreamingCapabilities,
    VariableInput,
    to_variables,
)
from sessionforce.agent_api._reply import Reply, construct_validated
from sessionforce.agent_api._retry import RetryPolicy
from sessionforce.agent_api._sse import SSEDecoder
from sessionforce.agent_api._transport import Timeouts, Transport
from sessionforce.config import ClientSettings
from sessionforce.errors import InvalidArgument, SessionNotFound, StreamInterrupted

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = ["AsyncAgentClient", "MessageStream", "Session"]

_MESSAGE_TYPES = frozenset(get_args(MessageType))
_END_REASONS = frozenset(get_args(EndReason))


class Session(BaseModel):
    """A started server session: its id, the key the caller correlates it by, and the greeting."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    external_session_key: str
    agent_id: str
    greeting: Reply


# Ids made only of URL-safe characters (Salesforce's always are) go into the path as they are.
_url_safe = re.compile(r"[A-Za-z0-9._~-]+").fullmatch


def _segment(value: str, name: str) -> str:
    if isinstance(value, str) and _url_safe(value):
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{name} must be a non-empty string, got {value!r}.")
    return quote(value, safe="")


def parse_response(model: type[MessagesResponse], body: bytes, status: int) -> MessagesResponse:
    """Read a response body as ``model``; anything unreadable raises :class:`~sessionforce.errors.ProtocolError`."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)[:3])
        raise protocol_error(f"unexpected response body ({problems})", body, status) from None


# Compact, UTF-8 as is: the same bytes pydantic's model_dump_json writes for the request models.
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _message_body(
    text: str,
    sequence_id: int,
    variables: Iterable[VariableInput],
    message_type: str,
    in_reply_to: str | None,
) -> bytes:
    """The send-message body (the shape of :class:`~sessionforce.models.SendMessageRequest`).

    Written as a dict rather than through the two request models: it is built on every turn, and the
    models cost four times as much for a body whose every field is checked here anyway.
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"text must be a string, got {type(text).__name__}.")
    if isinstance(sequence_id, bool) or not isinstance(sequence_id, int) or sequence_id < 1:
        raise InvalidArgument(f"sequence_id must be a positive integer, got {sequence_id!r}.")
    if message_type not in _MESSAGE_TYPES:
        raise InvalidArgument(
            f"message_type {message_type!r} is not one the Agent API lists; use one of {sorted(_MESSAGE_TYPES)}."
        )
    message: dict[str, Any] = {"sequenceId": sequence_id, "type": message_type, "text": text}
    if in_reply_to is not None:
        if not isinstance(in_reply_to, str):
            raise InvalidArgument(f"in_reply_to must be a message id string, got {type(in_reply_to).__name__}.")
        message["inReplyToMessageId"] = in_reply_to
    try:
        wire_variables = [
            v.model_dump(mode="json", by_alias=True, exclude_none=True) for v in to_variables(variables)
        ]
    except ValidationError as exc:
        raise InvalidArgument(f"Invalid variables: {exc.errors(include_input=False)[0]['msg']}") from None
    try:
        return _encode_json({"message": message, "variables": wire_variables}).encode()
    except UnicodeEncodeError:
        raise InvalidArgument(
            "The message text or a variable is not valid Unicode (it holds a lone surrogate). "
            "What to do: decode the user's input with errors='replace' before sending it."
        ) from None


class AsyncAgentClient:
    """The Agent API over one pooled aiohttp session. Close it with ``async with`` or :meth:`aclose`.

    Settings come from the arguments, then the environment (``SF_MY_DOMAIN``, ``SF_CLIENT_ID``,
    ``SF_CLIENT_SECRET``, ``SF_AGENT_ID``, ``SESSIONFORCE_BASE_URL``, ...); a missing or malformed one
    raises :class:`~sessionforce.errors.ConfigError` here, naming it.
    """

    def __init__(
        self,
        *,
        my_domain: str | None = None,
        client_id: str | None = None,
        client_secret: str | SecretStr | None = None,
        agent_id: str | None = None,
        base_url: str | None = None,
        access_token: str | SecretStr | None = None,
        token_provider: TokenProvider | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 100,
        http_session: aiohttp.ClientSession | None = None,
        settings: ClientSettings | None = None,
    ) -> None:
        self.settings = settings or ClientSettings.load(
            my_domain=my_domain,
            client_id=client_id,
            client_secret=client_secret,
            agent_id=agent_id,
            base_url=base_url,
            access_token=access_token,
        )
        self.settings.require("my_domain")
        assert self.settings.my_domain is not None
        self.my_domain: str = self.settings.my_domain
        self._transport = Transport(
            token_provider or token_provider_from(self.settings),
            base_url=self.settings.base_url,
            timeouts=timeouts or timeouts_from(self.settings),
            retry=retry or retry_policy_from(self.settings),
            max_connections=max_connections,
            session=http_session,
        )

    def __repr__(self) -> str:
        return f"AsyncAgentClient(my_domain={self.my_domain!r}, agent_id={self.settings.agent_id!r})"

    @property
    def transport(self) -> Transport:
        """The HTTP transport (pool, retry policy, token provider)."""
        return self._transport

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._transport.aclose()

    # ------------------------------------------------------------------ calls

    async def fetch_token(self) -> AccessToken:
        """The access token calls use (fetched now if there is none): proves the credentials and My Domain
        work. Its ``value`` is a secret: never log it."""
        return await self._transport.token_provider.get_token(self._transport.post_form)

    async def start_session(
        self,
        agent_id: str | None = None,
        *,
        external_session_key: str | None = None,
        variables: Iterable[VariableInput] = (),
        bypass_user: bool = True,
        tz: str | None = None,
        streaming: bool = True,
    ) -> Session:
        """Start a session with the agent (``agent_id`` defaults to the ``SF_AGENT_ID`` setting).

        ``external_session_key`` is the caller's correlation key (a fresh UUID when not given); store it.
        Not retried once sent: a lost answer raises :class:`~sessionforce.errors.DeliveryUnknown`.
        """
        agent = agent_id or self.settings.agent_id
        if agent is None:
            self.settings.require("agent_id")
        assert agent is not None
        key = external_session_key or str(uuid.uuid4())
        try:
            body = StartSessionRequest(
                external_session_key=key,
                instance_config=InstanceConfig(endpoint=self.my_domain),
                tz=tz,
                variables=to_variables(variables),
                feature_support="Streaming" if streaming else None,
                streaming_capabilities=StreamingCapabilities() if streaming else None,
                bypass_user=bypass_user,
            ).to_wire()
        except ValidationError as exc:
            raise InvalidArgument(f"Invalid session arguments: {exc.errors(include_input=False)[0]['msg']}") from None
        response = await self._transport.request("POST", f"/agents/{_segment(agent, 'agent_id')}/sessions", body=body)
        parsed = parse_response(StartSessionResponse, response.body, response.status)
        assert isinstance(parsed, StartSessionResponse)
        raise_for_error_messages(parsed.messages, response.body)
        greeting = Reply(messages=parsed.messages, session_id=parsed.session_id)
        return Session(session_id=parsed.session_id, external_session_key=key, agent_id=agent, greeting=greeting)

    async def send_message(
        self,
        session_id: str,
        text: str,
        *,
        sequence_id: int,
        variables: Iterable[VariableInput] = (),
        message_type: MessageType = "Text",
        in_reply_to: str | None = None,
    ) -> Reply:
        """Send one user turn and wait for the whole reply.

        ``sequence_id`` must be greater than the last one sent on this session. A 404 raises
        :class:`~sessionforce.errors.SessionNotFound` (the session expired or ended). Not retried once
        sent: a lost answer raises :class:`~sessionforce.errors.DeliveryUnknown`.
        """
        body = _message_body(text, sequence_id, variables, message_type, in_reply_to)
        path = f"/sessions/{_segment(session_id, 'session_id')}/messages"
        response = await self._transport.request("POST", path, body=body, on_session=True)
        parsed = parse_response(MessagesResponse, response.body, response.status)
        raise_for_error_messages(parsed.messages, response.body)
        # The messages were just validated with the response; do not pay for it twice.
        return construct_validated(
            Reply, {"messages": parsed.messages, "session_id": session_id, "sequence_id": sequence_id}
        )

    def stream_message(
        self,
        session_id: str,
        text: str,
        *,
        sequence_id: int,
        variables: Iterable[VariableInput] = (),
        message_type: MessageType = "Text",
        in_reply_to: str | None = None,
    ) -> MessageStream:
        """Send one user turn and stream the reply as typed events (progress, text chunks, messages,
        end of turn). Iterate it with ``async for``; use ``async with`` to close it early.

        If the stream breaks after the turn was accepted, iteration raises
        :class:`~sessionforce.errors.StreamInterrupted` carrying the partial text: the turn was delivered.
        """
        body = _message_body(text, sequence_id, variables, message_type, in_reply_to)
        path = f"/sessions/{_segment(session_id, 'session_id')}/messages/stream"
        return MessageStream(self._transport, path, body, session_id, sequence_id)

    async def end_session(self, session_id: str, reason: EndReason = "UserRequest") -> Reply | None:
        """End the session (frees server resources). Returns the ``SessionEnded`` reply, or ``None`` when
        the session was already gone (expired or ended): that is not an error."""
        if reason not in _END_REASONS:
            raise InvalidArgument(
                f"reason {reason!r} is not an end reason the API knows; use one of {sorted(_END_REASONS)}."
            )
        path = f"/sessions/{_segment(session_id, 'session_id')}"
        try:
            response = await self._transport.request(
                "DELETE", path, headers={"x-session-end-reason": reason}, idempotent=True, on_session=True
            )
        except SessionNotFound:
            return None
        parsed = parse_response(MessagesResponse, response.body, response.status) if response.body.strip() else None
        return Reply(messages=parsed.messages if parsed else [], session_id=session_id)

    async def submit_feedback(
        self,
        session_id: str,
        feedback_id: str,
        feedback: Literal["GOOD", "BAD"],
        text: str | None = None,
    ) -> None:
        """Send GOOD or BAD feedback (with an optional comment) on a reply, by its ``feedback_id``."""
        if feedback not in ("GOOD", "BAD"):
            raise InvalidArgument(f"feedback must be 'GOOD' or 'BAD', got {feedback!r}.")
        if not isinstance(feedback_id, str) or not feedback_id:
            raise InvalidArgument("feedback_id must be the non-empty feedbackId of a reply (Reply.feedback_id).")
        body = FeedbackRequest(feedback_id=feedback_id, feedback=feedback, text=text).to_wire()
        path = f"/sessions/{_segment(session_id, 'session_id')}/feedback"
        await self._transport.request("POST", path, body=body, on_session=True)


class MessageStream(EventStream[Reply]):
    """The events of one streamed turn. Iterate with ``async for``; ``reply`` is set at the end of turn."""

    _DRAIN_SECONDS = 2.0

    def __init__(self, transport: Transport, path: str, body: bytes, session_id: str, sequence_id: int) -> None:
        self._transport = transport
        self._path = path
        self._body = body
        self._assembler = ReplyAssembler(session_id, sequence_id)
        self._events: AsyncGenerator[StreamEvent, None] | None = None

    async def __anext__(self) -> StreamEvent:
        if self._events is None:
            self._events = self._run()
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        events, self._events = self._events, None
        if events is not None:
            await events.aclose()

    @property
    def partial_text(self) -> str:
        """The reply text received so far."""
        return self._assembler.partial_text

    def _interrupted(self, why: str) -> StreamInterrupted:
        a = self._assembler
        return StreamInterrupted(
            f"The reply stream for turn {a.sequence_id} on session {a.session_id} broke off ({why}). "
            "The turn WAS delivered to the agent; the reply is incomplete. What to do: do not resend the "
            "turn; show the partial text, or ask the user to continue.",
            partial_text=a.partial_text,
            messages=list(a.messages),
        )

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        response = await self._transport.open_stream(self._path, body=self._body)
        decoder = SSEDecoder()
        try:
            try:
                async for chunk in response.content.iter_any():
                    for sse in decoder.feed(chunk):
                        # One JSON parse per event: stream_event_from_sse answers None for the EndOfTurn marker.
                        event = None if sse.event == "EndOfTurn" else stream_event_from_sse(sse)
                        if event is None:
                            await self._drain(response)
                            self.reply = self._assembler.reply()
                            yield EndOfTurnEvent(self.reply)
                            return
                        self._assembler.add(event)
                        yield event
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise self._interrupted(f"{type(exc).__name__}: {exc}") from exc
            raise self._interrupted("the connection closed before the end of turn")
        finally:
            response.release()

    async def _drain(self, response: aiohttp.ClientResponse) -> None:
        # Reading to the end lets the pooled connection be reused; the turn is complete either way.
        try:
            async with asyncio.timeout(self._DRAIN_SECONDS):
                while await response.content.readany():
                    pass
        except (aiohttp.ClientError, TimeoutError):
            response.close()
