"""The Agent API routes: each handler applies the real rules in the order a server would.

Order for a turn: bearer token (401; an opaque token 404) → rate limit (429) → media type (500) → body
(400, and deviations: recorded, rejected in strict mode) → session (404) → lock (423) → sequenceId
(400). Only then is the turn *accepted*: recorded in the counters, shown to the agent, and the session
locked until the answer is complete (for a stream: until the stream ends, however it ends).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from sessionforce.emulator._agents import PartialMessage, TurnContext
from sessionforce.emulator._bodies import check_json_media_type, read_body
from sessionforce.emulator._errors import ApiError
from sessionforce.emulator._failures import failure
from sessionforce.emulator._faults import FaultPlan
from sessionforce.emulator._messages import (
    END_REASONS,
    Message,
    complete_message,
    feedback_ids,
    greeting_message,
    new_id,
    stream_events,
)
from sessionforce.emulator._responses import TurnStream, base_url, json_response
from sessionforce.emulator._sessions import Session
from sessionforce.emulator._state import EmulatorState
from sessionforce.emulator._validation import (
    SendRequest,
    apply_variables,
    parse_feedback,
    parse_json_object,
    parse_send,
    parse_start,
)

#: What a Salesforce record id looks like: 15 or 18 letters and digits (agent ids start with 0Xx).
_SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
#: Hosts of the Agent API itself: never an org's My Domain, so never a valid instanceConfig.endpoint.
API_HOSTS = ("api.salesforce.com", "api.gov.salesforce.com")


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
    """Handlers for the five Agent API routes, over one :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def _authorize(self, request: Request) -> None:
        if not self.state.check_token(request.headers.get("authorization")):
            raise failure("opaque_token")  # a valid opaque token: the Agent API cannot read it
        self.state.check_rate()

    async def _json(self, request: Request) -> dict[str, Any]:
        check_json_media_type(request)
        config = self.state.config
        return parse_json_object(await read_body(request, config.max_body_bytes), config.max_json_depth)

    def _deviations(self, route: str, deviations: list[str]) -> None:
        """Record deviations from the documented shapes; in strict mode, refuse the request (400)."""
        if not deviations:
            return
        self.state.record_deviations(route, deviations)
        if self.state.strict:
            raise ApiError(400, "Strict mode (sessionforce emulator): the request deviates from the documented "
                           f"shape: {'; '.join(deviations)}")

    # --- sessions -----------------------------------------------------------------------------
    async def start_session(self, request: Request, plan: FaultPlan | None) -> Response:
        """``POST /einstein/ai-agent/v1/agents/{agentId}/sessions``."""
        self._authorize(request)
        agent_id = request.path_params["agentId"]
        agent = self.state.agents.get(agent_id)
        if agent is None:
            raise failure("agent_not_found" if _SALESFORCE_ID.match(agent_id) else "invalid_agent_id",
                          agent_id=agent_id)
        deviations: list[str] = []
        start = parse_start(await self._json(request), deviations)
        self._deviations("start_session", deviations)
        if not agent.active:
            raise failure("agent_not_found", agent_id=agent_id)
        endpoint = urlsplit(start.endpoint)
        if endpoint.hostname in API_HOSTS or (
                self.state.api_port is not None and f"{endpoint.scheme}://{endpoint.netloc}" == base_url(request)):
            raise failure("engine_config", endpoint=start.endpoint)
        if agent.invalid_config:
            raise failure("invalid_config")
        if agent.agent_type == "employee" and start.bypass_user:
            raise failure("invalid_user")
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
        reason = request.headers.get("x-session-end-reason")
        if reason is None:
            self._deviations("end_session", ["missing header 'x-session-end-reason' (the reference sends one "
                                             f"of {', '.join(END_REASONS)}); taken as UserRequest"])
            reason = "UserRequest"
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
        deviations: list[str] = []
        feedback_id, value, text = parse_feedback(await self._json(request), deviations)
        self._deviations("feedback", deviations)
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
        deviations: list[str] = []
        if route == "stream_message" and "text/event-stream" not in request.headers.get("accept", ""):
            deviations.append("missing 'Accept: text/event-stream' on the streaming route")
        send = parse_send(await self._json(request), deviations)
        self._deviations(route, deviations)
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
        """``POST .../sessions/{sessionId}/messages``: one turn, answered when the agent is done (or 500
        once it has run past the request timeout, as the real service does after 120 s)."""
        session, send = await self._accept_turn(request, "send_message")
        messages: list[Message] = []
        timeout = self.state.config.request_timeout
        try:
            messages = self._run_agent(session, send)
            delay = self._delay(session, plan)
            if delay > timeout:
                await asyncio.sleep(timeout)
                raise failure("timeout", seconds=timeout)
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            if session.in_flight:
                self._release(session, messages)
        return json_response({"messages": messages, "_links": _links(request, session)})

    async def stream_message(self, request: Request, plan: FaultPlan | None) -> Response:
        """``POST .../messages/stream``: progress, text chunks, the final messages, ``EndOfTurn``; past the
        request timeout, an ``Error`` event (500) instead, and the stream closes."""
        session, send = await self._accept_turn(request, "stream_message")
        messages = self._run_agent(session, send)
        timestamp = self.state.clock.wall_ms()
        events = stream_events(messages, timestamp, chunk_text=session.chunk_text)
        delay, timeout = self._delay(session, plan), self.state.config.request_timeout
        if delay > timeout:
            error = failure("timeout", seconds=timeout)
            events = [events[0], ("Error", {"timestamp": timestamp, "message": {
                "type": "Error", "id": new_id(), "httpStatus": 500, "traceId": new_id(), "error": error.error,
                "message": error.message, "timestamp": timestamp, "expected": False}})]
            delay = timeout
        return TurnStream(events, delay=delay, drop_after_chunks=plan.drop_after_chunks if plan else None,
                          headers={"x-request-id": request.state.request_id},
                          on_done=lambda: self._release(session, messages))
