"""The Agent API and token routes: each handler applies the real rules in the order a server would.

Order for a turn: bearer token (401) → rate limit (429) → body (400) → session (404) → lock (423) →
sequenceId (400). Only then is the turn *accepted*: recorded in the counters, shown to the agent, and the
session locked until the answer is complete (for a stream: until the stream ends, however it ends).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from sessionforce.emulator.agents import PartialMessage, TurnContext
from sessionforce.emulator.errors import ApiError, OAuthError
from sessionforce.emulator.faults import FaultPlan
from sessionforce.emulator.messages import Message, complete_message, feedback_ids, greeting_message, new_id
from sessionforce.emulator.responses import TurnStream, json_response
from sessionforce.emulator.state import EmulatorState, Session
from sessionforce.emulator.validation import (
    SendRequest,
    apply_variables,
    parse_feedback,
    parse_json_object,
    parse_send,
    parse_start,
)

#: End reasons Salesforce's own client sends in ``x-session-end-reason``.
END_REASONS = ("UserRequest", "Transfer", "Expiration", "Error", "Other")
_WORD_PIECES = re.compile(r"\S+\s*|\s+")
_ORG_ID = "00DSF0000000EMUAAA"
_USER_ID = "005SF0000000EMUAAA"


def base_url(request: Request) -> str:
    """The emulator's own URL as the caller reached it (it is both My Domain and the API host)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def _links(request: Request, session: Session) -> dict[str, Any]:
    api = f"{base_url(request)}/einstein/ai-agent/v1"
    sid = session.session_id
    return {
        "self": None,
        "messages": {"href": f"{api}/sessions/{sid}/messages"},
        "messagesStream": {"href": f"{api}/sessions/{sid}/messages/stream"},
        "session": {"href": f"{api}/agents/{session.agent.id}/sessions"},
        "end": {"href": f"{api}/sessions/{sid}"},
    }


class AgentApi:
    """Handlers for the token endpoint and the five Agent API routes, over one :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    # --- token --------------------------------------------------------------------------------
    async def token(self, request: Request, plan: FaultPlan | None) -> Response:
        """``POST /services/oauth2/token``: client credentials, answered like Salesforce."""
        try:
            form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "grant type not supported")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if client_id is None and basic.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                client_id = None
        config = self.state.config
        if client_id != config.client_id or secret != config.client_secret:
            raise OAuthError(401, "invalid_client", "invalid client credentials")
        token = self.state.issue_token()
        url = base_url(request)
        issued_at = str(self.state.clock.wall_ms())
        identity = f"{url}/id/{_ORG_ID}/{_USER_ID}"
        signature = hmac.new(config.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256)
        return json_response({
            "access_token": token,
            "signature": base64.b64encode(signature.digest()).decode(),
            "scope": "api sfap_api chatbot_api",
            "instance_url": url,
            "api_instance_url": url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        })

    def _authorize(self, request: Request) -> None:
        self.state.check_token(request.headers.get("authorization"))
        self.state.check_rate()

    # --- sessions -----------------------------------------------------------------------------
    async def start_session(self, request: Request, plan: FaultPlan | None) -> Response:
        """``POST /einstein/ai-agent/v1/agents/{agentId}/sessions``."""
        self._authorize(request)
        agent_id = request.path_params["agentId"]
        agent = self.state.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, f"Agent not found for agentId: {agent_id}")
        start = parse_start(parse_json_object(await request.body()))
        self.state.check_session_capacity()
        now = self.state.clock.now()
        session = Session(session_id=new_id(), external_key=start.external_key, agent=agent, created=now,
                          last_activity=now, chunk_text=start.chunk_text, variables={})
        apply_variables(session.variables, start.variables, at_start=True)
        greeting = greeting_message(agent.greeting)
        self.state.add_session(session)
        if self.state.config.record_transcripts:
            session.transcript.append({"direction": "agent", "messages": [greeting]})
        return json_response({"sessionId": session.session_id, "_links": _links(request, session),
                              "messages": [greeting]})

    async def end_session(self, request: Request, plan: FaultPlan | None) -> Response:
        """``DELETE /einstein/ai-agent/v1/sessions/{sessionId}`` (header ``x-session-end-reason``)."""
        self._authorize(request)
        reason = request.headers.get("x-session-end-reason", "UserRequest")
        if reason not in END_REASONS:
            raise ApiError(400, f"Invalid header 'x-session-end-reason': must be one of {', '.join(END_REASONS)};"
                           f" got {reason!r}")
        session = self._unlocked_session(request)
        self.state.close(session, "ended", reason)
        message = {"type": "SessionEnded", "id": new_id(), "reason": "ClientRequest", "feedbackId": new_id()}
        return json_response({"messages": [message], "_links": _links(request, session)})

    async def feedback(self, request: Request, plan: FaultPlan | None) -> Response:
        """``POST /einstein/ai-agent/v1/sessions/{sessionId}/feedback`` → 201."""
        self._authorize(request)
        feedback_id, value, text = parse_feedback(parse_json_object(await request.body()))
        session = self._unlocked_session(request)
        if feedback_id not in session.feedback_ids:
            raise ApiError(400, f"Invalid request body: 'feedbackId' {feedback_id!r} was not issued in this session")
        session.feedback.append({"feedbackId": feedback_id, "feedback": value, "text": text})
        self.state.touch(session)
        return json_response({}, status=201)

    def _unlocked_session(self, request: Request) -> Session:
        session = self.state.live_session(request.path_params["sessionId"])
        if session.in_flight:
            raise ApiError(423, "Session Already Locked: another request is in flight on this session; send "
                           "one request at a time.")
        return session

    # --- turns --------------------------------------------------------------------------------
    async def _accept_turn(self, request: Request, route: str) -> tuple[Session, SendRequest]:
        self._authorize(request)
        send = parse_send(parse_json_object(await request.body()))
        session = self._unlocked_session(request)
        if send.sequence_id <= session.last_sequence_id:
            last = session.last_sequence_id
            raise ApiError(400, f"Invalid request body: 'message.sequenceId' {send.sequence_id} must be greater "
                           f"than the last accepted sequenceId ({last})" if last else
                           f"Invalid request body: 'message.sequenceId' must be a positive integer; got "
                           f"{send.sequence_id}")
        # Accepted: from here on the turn counts as delivered.
        session.in_flight = True
        session.last_sequence_id = send.sequence_id
        session.turns += 1
        self.state.touch(session)
        apply_variables(session.variables, send.variables, at_start=False)
        self.state.counters.record_turn(session.session_id, send.sequence_id, send.message_type, send.text, route)
        if self.state.config.record_transcripts:
            session.transcript.append({"direction": "user", "sequenceId": send.sequence_id, "route": route,
                                       "message": send.message})
        return session, send

    def _run_agent(self, session: Session, send: SendRequest) -> list[Message]:
        ctx = TurnContext(session_id=session.session_id, agent_id=session.agent.id, sequence_id=send.sequence_id,
                          message_type=send.message_type, text=send.text, in_reply_to=send.in_reply_to,
                          message=send.message, memory=session.memory, variables=session.variables,
                          turn=session.turns)
        try:
            partials: list[PartialMessage] = session.agent.respond(ctx)
        except Exception as exc:  # a user's Python agent failed: say so, as a server error
            self._release(session, [])
            raise ApiError(500, f"The agent {session.agent.name!r} raised {type(exc).__name__}: {exc}") from exc
        plan_id = new_id()
        messages = [complete_message(p, plan_id) for p in partials]
        session.feedback_ids.update(feedback_ids(messages))
        if self.state.config.record_transcripts:
            session.transcript.append({"direction": "agent", "messages": messages})
        return messages

    def _release(self, session: Session, messages: list[Message]) -> None:
        session.in_flight = False
        self.state.touch(session)
        for message in messages:
            if message["type"] == "SessionEnded":
                self.state.close(session, "ended", str(message.get("reason", "Action")))

    def _delay(self, session: Session, plan: FaultPlan | None) -> float:
        return (session.agent.latency_ms + (plan.latency_ms if plan else 0.0)) / 1000.0

    async def send_message(self, request: Request, plan: FaultPlan | None) -> Response:
        """``POST .../sessions/{sessionId}/messages``: one turn, answered when the agent is done."""
        session, send = await self._accept_turn(request, "send_message")
        messages: list[Message] = []
        try:
            messages = self._run_agent(session, send)
            delay = self._delay(session, plan)
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            if session.in_flight:
                self._release(session, messages)
        return json_response({"messages": messages, "_links": _links(request, session)})

    async def stream_message(self, request: Request, plan: FaultPlan | None) -> Response:
        """``POST .../messages/stream``: progress, text chunks, the final messages, ``EndOfTurn``."""
        session, send = await self._accept_turn(request, "stream_message")
        messages = self._run_agent(session, send)
        events = stream_events(messages, self.state.clock.wall_ms(), chunk_text=session.chunk_text)
        return TurnStream(events, delay=self._delay(session, plan),
                          drop_after_chunks=plan.drop_after_chunks if plan else None,
                          headers={"x-request-id": request.state.request_id},
                          on_done=lambda: self._release(session, messages))


def stream_events(messages: list[Message], timestamp: int, *, chunk_text: bool) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events of one turn, in the order the real service sends them."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("ProgressIndicator", {"timestamp": timestamp, "message": {
            "type": "ProgressIndicator", "id": new_id(), "indicatorType": "ACTION", "message": "Working on it"}})
    ]
    if chunk_text:  # only when the session asked for streamingCapabilities.chunkTypes ["Text"]
        for message in messages:
            text = message.get("message")
            if message["type"] != "Inform" or not isinstance(text, str):
                continue
            offset = 0
            for piece in _WORD_PIECES.findall(text):
                events.append(("TextChunk", {"timestamp": timestamp, "offset": offset, "message": {
                    "type": "TextChunk", "id": message["id"], "offset": offset, "message": piece,
                    "formatType": "Text"}}))
                offset += len(piece)
    events.extend((m["type"], {"timestamp": timestamp, "message": m}) for m in messages)
    events.append(("EndOfTurn", {"timestamp": timestamp, "message": {"type": "EndOfTurn", "id": new_id()}}))
    return events
