"""The gateway's OpenAPI 3.1 document (served at ``/openapi.json``), written by hand from the contract."""

from __future__ import annotations

from typing import Any

from sessionforce._version import __version__

__all__ = ["openapi_document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "An error: `{\"error\": {\"code\", \"message\"}}`.")
_ERRORS = {"400": _ERROR, "401": _ERROR, "403": _ERROR, "413": _ERROR, "415": _ERROR, "429": _ERROR, "503": _ERROR}
_CONVERSATION = {"name": "conversation_id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"}}
_BEARER: list[dict[str, list[str]]] = [{"endUser": []}]

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "snake_case, stable"},
            "message": {"type": "string", "description": "what was wrong and what to do"},
            "delivery": {"enum": ["not_sent", "maybe_delivered", "answered"],
                         "description": "for a failed message: whether the agent may have it"},
            "retry_after": {"type": "number"},
        }}}},
    "TokenRequest": {"type": "object", "required": ["user"], "properties": {
        "user": {"type": "string", "minLength": 1, "maxLength": 200},
        "conversations": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "string"},
                          "description": "omitted: one new conversation id is generated"},
        "ttl": {"type": "number", "exclusiveMinimum": 0, "description": "seconds (default 900)"}}},
    "Token": {"type": "object", "required": ["token", "expires_in", "expires_at", "conversations", "user"],
              "properties": {"token": {"type": "string"}, "expires_in": {"type": "integer"},
                             "expires_at": {"type": "string", "format": "date-time"},
                             "conversations": {"type": "array", "items": {"type": "string"}},
                             "user": {"type": "string"}}},
    "Message": {"type": "object", "required": ["id", "text"], "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 100,
               "description": "the client's message id: a retry with the same id never reaches the agent twice"},
        "text": {"type": "string", "minLength": 1},
        "type": {"enum": ["Text", "Reply"], "default": "Text"},
        "in_reply_to": {"type": "string", "description": "the Confirm/Inquire message a Reply answers"}}},
    "AgentMessage": {"type": "object", "additionalProperties": True, "required": ["type"],
                     "description": "An agent message as the Agent API sends it (Inform, Inquire, Confirm, "
                                    "Escalate, Failure, SessionEnded, ...)."},
    "TurnEnd": {"type": "object", "properties": {
        "message_id": {"type": "string"}, "sequence_id": {"type": ["integer", "null"]},
        "session_id": {"type": ["string", "null"]},
        "awaiting": {"enum": ["message", "input", "confirmation", "escalated", "ended"]},
        "resumed": {"type": "boolean"}, "resume_reason": {"type": ["string", "null"]}}},
    "MessageResult": {"type": "object", "required": ["message_id", "conversation_id", "turn", "messages"],
                      "properties": {
                          "message_id": {"type": "string"}, "conversation_id": {"type": "string"},
                          "turn": _ref("TurnEnd"), "messages": {"type": "array", "items": _ref("AgentMessage")},
                          "greeting": {"type": "array", "items": _ref("AgentMessage"),
                                       "description": "when the turn started a session: its greeting"},
                          "last_event_id": {"type": ["string", "null"]}}},
    "Started": {"type": "object", "properties": {
        "conversation_id": {"type": "string"}, "started": {"type": "boolean"},
        "session_id": {"type": ["string", "null"]}, "greeting": {"type": "array", "items": _ref("AgentMessage")}}},
    "Transcript": {"type": "object", "properties": {"conversation_id": {"type": "string"},
                                                    "entries": {"type": "array", "items": {"type": "object"}}}},
    "Feedback": {"type": "object", "required": ["feedback_id", "feedback"], "properties": {
        "feedback_id": {"type": "string"}, "feedback": {"enum": ["GOOD", "BAD"]}, "text": {"type": "string"}}},
}

_EVENTS_DOC = (
    "Server-Sent Events: `id` (the conversation's event id), `event` (user.message, session.started, "
    "agent.progress, agent.text_chunk, agent.validation_failure, agent.message, turn.end, turn.error, "
    "session.ended; and, without an id, reconnect and history.truncated), `data` (JSON). Keep-alive "
    "comments every 15 s."
)


def _op(summary: str, responses: dict[str, Any], *, body: str | None = None, security: Any = None,
        parameters: list[Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if security is not None:
        op["security"] = security
    if parameters:
        op["parameters"] = parameters
    return op


def openapi_document() -> dict[str, Any]:
    """The document (a fresh dict each call)."""
    conv = "/v1/conversations/{conversation_id}"
    sse = {"description": _EVENTS_DOC, "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "sessionforce gateway", "version": __version__,
                 "description": "Agentforce conversations for browsers and apps: end-user tokens, one turn "
                                "at a time, idempotent messages, events with re-attach. See docs/gateway.md."},
        "components": {"schemas": _SCHEMAS, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "the gateway API key (backends only)"},
            "endUser": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                        "description": "an end-user token from POST /v1/tokens"},
            "metricsKey": {"type": "http", "scheme": "bearer",
                           "description": "a metrics key (SESSIONFORCE_GATEWAY_METRICS_KEY), when one is set"}}},
        "paths": {
            "/v1/tokens": {"post": _op("Mint an end-user token", {"200": _json(_ref("Token"), "the token"),
                                                                   **_ERRORS}, body="TokenRequest",
                                       security=[{"apiKey": []}])},
            "/v1/tokens/refresh": {"post": _op("Refresh a valid end-user token (same user and scope)",
                                               {"200": _json(_ref("Token"), "a fresh token"), **_ERRORS},
                                               security=_BEARER)},
            "/v1/demo/token": {"post": _op("A token for a new conversation (demo setups only; else 404)",
                                           {"200": _json(_ref("Token"), "the token"), "404": _ERROR},
                                           security=[])},
            conv + "/messages": {"post": _op(
                "Send one user message (Accept: text/event-stream streams its events)",
                {"200": {"description": "the reply (JSON) or the turn's events (SSE)", "content": {
                    "application/json": {"schema": _ref("MessageResult")},
                    "text/event-stream": {"schema": {"type": "string"}}}},
                 "409": _ERROR, "500": _ERROR, "502": _ERROR, "504": _ERROR, **_ERRORS},
                body="Message", security=_BEARER, parameters=[_CONVERSATION])},
            conv + "/events": {"get": _op(
                "The conversation's events: replay after Last-Event-ID / ?after=, then live",
                {"200": sse, **_ERRORS}, security=_BEARER, parameters=[
                    _CONVERSATION, {"name": "after", "in": "query", "schema": {"type": "string"}},
                    {"name": "access_token", "in": "query", "schema": {"type": "string"},
                     "description": "for EventSource, which cannot send headers"},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}])},
            conv + "/start": {"post": _op("Make sure a session is live; its greeting", {
                "200": _json(_ref("Started"), "the session"), **_ERRORS}, security=_BEARER,
                parameters=[_CONVERSATION])},
            conv + "/transcript": {"get": _op("The recorded transcript", {
                "200": _json(_ref("Transcript"), "the entries, oldest first"), **_ERRORS}, security=_BEARER,
                parameters=[_CONVERSATION])},
            conv + "/feedback": {"post": _op("Rate a reply", {"204": {"description": "recorded"}, **_ERRORS},
                                             body="Feedback", security=_BEARER, parameters=[_CONVERSATION])},
            conv: {"delete": _op("End the live session", {
                "200": _json({"type": "object", "properties": {"ended": {"type": "boolean"}}}, "whether one was live"),
                **_ERRORS}, security=_BEARER, parameters=[_CONVERSATION])},
            "/healthz": {"get": _op("The process is up", {"200": _json({"type": "object"}, "ok")}, security=[])},
            "/readyz": {"get": _op("Store, shared state and org reachable", {
                "200": _json({"type": "object"}, "ready"), "503": _json({"type": "object"}, "which check failed")},
                security=[])},
            "/metrics": {"get": _op("Metrics in the Prometheus text format (docs/observability.md)", {
                "200": {"description": "Prometheus exposition", "content": {"text/plain": {}}}, "401": _ERROR},
                security=[{}, {"metricsKey": []}])},
            "/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                                         security=[])},
            "/": {"get": _op("The web chat page", {"200": {"description": "HTML", "content": {"text/html": {}}}},
                             security=[])},
            "/widget.js": {"get": _op("The embeddable widget's loader", {"200": {
                "description": "JavaScript", "content": {"text/javascript": {}}}, "404": _ERROR}, security=[])},
        },
    }
