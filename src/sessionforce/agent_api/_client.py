"""`AsyncAgentClient`: the Agent API, one method per call, typed, with no lifecycle policy and no store.

Use it directly when you want full control of sessions and sequence ids; for conversations that
survive expiry, restarts and many workers, use :class:`sessionforce.lifecycle.Conversations` (the
lifecycle manager built on top of this client).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from sessionforce.agent_api._agents import AgentInfo, AgentResolver
from sessionforce.agent_api._auth import AccessToken, TokenProvider
from sessionforce.agent_api._bodies import end_reason, feedback_body, message_body, path_segment, start_body
from sessionforce.agent_api._events import raise_for_error_messages, require_answer
from sessionforce.agent_api._factory import retry_policy_from, timeouts_from, token_provider_from
from sessionforce.agent_api._models import (
    EndReason,
    MessagesResponse,
    MessageType,
    StartSessionResponse,
    VariableInput,
)
from sessionforce.agent_api._reply import Reply, construct_validated
from sessionforce.agent_api._retry import RetryPolicy
from sessionforce.agent_api._stream import MessageStream
from sessionforce.agent_api._transport import Timeouts, Transport
from sessionforce.config import ClientSettings
from sessionforce.errors import SessionNotFound
from sessionforce.errors._build import protocol_error
from sessionforce.telemetry import Telemetry

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = ["AsyncAgentClient", "MessageStream", "Session", "parse_response"]

M = TypeVar("M", bound=MessagesResponse)


class Session(BaseModel):
    """A started server session: its id, the key the caller correlates it by, and the greeting."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    external_session_key: str
    agent_id: str
    greeting: Reply


def parse_response(model: type[M], body: bytes, status: int) -> M:
    """Read a response body as ``model``; anything unreadable raises :class:`~sessionforce.errors.ProtocolError`."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)[:3])
        raise protocol_error(f"unexpected response body ({problems})", body=body, status=status) from None


class AsyncAgentClient:
    """The Agent API over one pooled aiohttp session. Close it with ``async with`` or :meth:`aclose`.

    Settings come from the arguments, then the environment (``SF_MY_DOMAIN``, ``SF_CLIENT_ID``,
    ``SF_CLIENT_SECRET``, ``SF_AGENT_ID``, ``SESSIONFORCE_BASE_URL``, ...); a missing or malformed one
    raises :class:`~sessionforce.errors.ConfigError` here, naming it.

    ``telemetry``: where HTTP attempt spans and retry metrics go (``None``: OpenTelemetry's global providers,
    if the application set any; see docs/observability.md).
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
        telemetry: Telemetry | None = None,
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
        self.telemetry = telemetry or Telemetry()
        self._transport = Transport(
            token_provider or token_provider_from(self.settings),
            base_url=self.settings.base_url,
            timeouts=timeouts or timeouts_from(self.settings),
            retry=retry or retry_policy_from(self.settings),
            max_connections=max_connections,
            session=http_session,
            telemetry=self.telemetry,
        )
        self._agents = AgentResolver(self._transport, self.my_domain)

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

    async def find_agent(self, agent: str | None = None, *, lookup: bool = False) -> AgentInfo:
        """The agent ``agent`` names (default: the ``SF_AGENT_ID`` setting): an id (``0Xx...``) as is, an API
        name or label through the org's REST query (``BotDefinition``, same token; remembered by this
        client). ``lookup=True`` queries the org for an id too (type, active version). No agent by that
        name raises :class:`~sessionforce.errors.ConfigError`."""
        name = agent or self.settings.agent_id
        if name is None:
            self.settings.require("agent_id")
        assert name is not None
        return await (self._agents.lookup(name) if lookup else self._agents.resolve(name))

    async def start_session(
        self,
        agent_id: str | None = None,
        *,
        external_session_key: str | None = None,
        variables: Iterable[VariableInput] = (),
        bypass_user: bool | None = None,
        tz: str | None = None,
        streaming: bool = True,
    ) -> Session:
        """Start a session with the agent: ``agent_id`` is its id or its API name (default: the
        ``SF_AGENT_ID`` setting; a name is looked up once per client, see :meth:`find_agent`).

        ``bypass_user`` (run as the agent's own user) defaults to what the agent's type calls for when it is
        known (an employee agent runs as the token's user: false), else true.
        ``external_session_key`` is the caller's correlation key (a fresh UUID when not given); store it.
        Not retried once sent: a lost answer raises :class:`~sessionforce.errors.DeliveryUnknown`.
        """
        info = await self.find_agent(agent_id)
        agent = info.id
        key = external_session_key or str(uuid.uuid4())
        bypass = info.bypass_user if bypass_user is None else bypass_user
        body = start_body(key, self.my_domain, variables=variables, bypass_user=bypass, tz=tz,
                          streaming=streaming)
        path = f"/agents/{path_segment(agent, 'agent_id')}/sessions"
        response = await self._transport.request("POST", path, body=body)
        parsed = parse_response(StartSessionResponse, response.body, response.status)
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
        :class:`~sessionforce.errors.SessionNotFound` (the session expired or ended); a 423 is waited out
        within ``RetryPolicy.locked_wait``. Not retried once sent: a lost answer raises
        :class:`~sessionforce.errors.DeliveryUnknown`, and a 200 that is not an answer (no messages)
        :class:`~sessionforce.errors.ProtocolError` (a ``DeliveryUnknown`` too).
        """
        body = message_body(text, sequence_id, variables, message_type, in_reply_to)
        path = f"/sessions/{path_segment(session_id, 'session_id')}/messages"
        response = await self._transport.request("POST", path, body=body, on_session=True, turn=True)
        parsed = parse_response(MessagesResponse, response.body, response.status)
        require_answer(parsed.messages, response.body, response.status)
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

        If the stream breaks after the turn was accepted, stalls past ``Timeouts.stream_read`` between
        complete events or runs past ``Timeouts.turn``, iteration raises
        :class:`~sessionforce.errors.StreamInterrupted` carrying the partial text: the turn was delivered.
        """
        body = message_body(text, sequence_id, variables, message_type, in_reply_to)
        path = f"/sessions/{path_segment(session_id, 'session_id')}/messages/stream"
        return MessageStream(self._transport, path, body, session_id, sequence_id)

    async def end_session(self, session_id: str, reason: EndReason = "UserRequest") -> Reply | None:
        """End the session (frees server resources). Returns the ``SessionEnded`` reply, or ``None`` when
        the session was already gone (expired or ended): that is not an error. A session still locked by
        an earlier request (423, e.g. a cancelled turn the agent is still working on) is waited out within
        ``RetryPolicy.locked_wait``."""
        header = end_reason(reason)
        path = f"/sessions/{path_segment(session_id, 'session_id')}"
        try:
            response = await self._transport.request(
                "DELETE", path, headers={"x-session-end-reason": header}, idempotent=True, on_session=True
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
        body = feedback_body(feedback_id, feedback, text)
        path = f"/sessions/{path_segment(session_id, 'session_id')}/feedback"
        await self._transport.request("POST", path, body=body, on_session=True)


