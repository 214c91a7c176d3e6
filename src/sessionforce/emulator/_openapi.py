"""The OpenAPI 3.0 document of the routes the emulator serves (token endpoint, REST query, Agent API).

Hand-written from agent-api.md, not generated from our handlers, so a schemathesis run against it
checks the handlers against the reference's reading rather than against themselves. It describes the
documented shapes, which is the strict mode's contract: "valid by the schema" and "accepted in strict
mode" agree (the default, lenient mode also accepts what the real service coerces, e.g. a string
``"true"`` for ``bypassUser``; see _validation.py).
"""

from __future__ import annotations

from typing import Any

from sessionforce.emulator._messages import CLIENT_MESSAGE_TYPES, END_REASONS
from sessionforce.emulator._validation import CHUNK_TYPES, FEEDBACK_VALUES, VARIABLE_TYPES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _opt(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional field: like the real (Java) service, we read an explicit null as "absent"."""
    return {**schema, "nullable": True}


_NON_BLANK = {"type": "string", "pattern": r"\S"}
_ERRORS = {
    "400": _json(_ref("ApiError"), "Malformed body, bad sequenceId or unknown end reason (names the field)"),
    "401": _json(_ref("ApiError"), "Missing, unknown or expired bearer token"),
    "404": _json(_ref("ApiError"), "Unknown agent, or session unknown, ended or expired"),
    "423": _json(_ref("ApiError"), "Another request is in flight on this session"),
    "413": _json(_ref("ApiError"), "Request body larger than the configured limit"),
    "429": _json(_ref("ApiError"), "A configured limit was exceeded (carries Retry-After)"),
    "500": _json(_ref("ApiError"), "Body not declared JSON (Unsupported Media Type), a turn past the request "
                 "timeout, or instanceConfig.endpoint not a My Domain URL (EngineConfigLookupException)"),
}
_REST_ERROR = {"type": "array", "items": {"type": "object", "required": ["message", "errorCode"], "properties": {
    "message": {"type": "string"}, "errorCode": {"type": "string"}}}}
_SESSION_ID = {"name": "sessionId", "in": "path", "required": True, "schema": {"type": "string"}}

_SCHEMAS: dict[str, Any] = {
    "ApiError": {
        "type": "object",
        "required": ["status", "path", "mode", "requestId", "error", "message", "timestamp", "expected"],
        "properties": {"status": {"type": "integer"}, "path": {"type": "string"}, "mode": {"type": "string"},
                       "requestId": {"type": "string"}, "error": {"type": "string"}, "message": {"type": "string"},
                       "timestamp": {"type": "integer"}, "expected": {"type": "boolean"}},
    },
    "OAuthError": {"type": "object", "required": ["error", "error_description"],
                   "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}},
    "TokenResponse": {
        "type": "object",
        "required": ["access_token", "instance_url", "api_instance_url", "id", "token_type", "issued_at",
                     "signature", "scope"],
        "properties": {k: {"type": "string"} for k in ("access_token", "instance_url", "api_instance_url", "id",
                                                       "token_type", "issued_at", "signature", "scope",
                                                       "token_format")},
    },
    "QueryResult": {"type": "object", "required": ["totalSize", "done", "records"],
                    "properties": {"totalSize": {"type": "integer"}, "done": {"type": "boolean"},
                                   "records": {"type": "array", "items": {"type": "object"}}}},
    "Variable": {"type": "object", "required": ["name", "type", "value"], "additionalProperties": False,
                 "properties": {"name": _NON_BLANK, "type": {"type": "string", "enum": list(VARIABLE_TYPES)},
                                # Text/Number/Boolean values must match their type; the rest take any JSON.
                                "value": {"nullable": True}}},
    "Variables": _opt({"type": "array", "items": _ref("Variable")}),
    "StartSessionRequest": {
        "type": "object",
        "required": ["externalSessionKey", "instanceConfig"],
        "additionalProperties": False,
        "properties": {
            "externalSessionKey": {"type": "string", "format": "uuid"},
            "instanceConfig": {"type": "object", "required": ["endpoint"], "additionalProperties": False,
                               "properties": {"endpoint": {"type": "string", "pattern": "^https?://"}}},
            "tz": _opt({"type": "string"}),
            "variables": _ref("Variables"),
            "featureSupport": _opt({"type": "string"}),
            "streamingCapabilities": _opt({"type": "object", "additionalProperties": False, "properties": {
                "chunkTypes": _opt({"type": "array", "items": {"type": "string", "enum": list(CHUNK_TYPES)}})}}),
            "bypassUser": _opt({"type": "boolean"}),
        },
    },
    "Link": {"type": "object", "nullable": True, "properties": {"href": {"type": "string"}}},
    "Links": {"type": "object", "additionalProperties": _ref("Link")},
    "AgentMessage": {"type": "object", "required": ["type", "id"],
                     "properties": {"type": {"type": "string"}, "id": {"type": "string"}}},
    "MessagesResponse": {"type": "object", "required": ["messages", "_links"],
                         "properties": {"messages": {"type": "array", "items": _ref("AgentMessage")},
                                        "_links": _ref("Links")}},
    "StartSessionResponse": {"type": "object", "required": ["sessionId", "messages", "_links"],
                             "properties": {"sessionId": {"type": "string"},
                                            "messages": {"type": "array", "items": _ref("AgentMessage")},
                                            "_links": _ref("Links")}},
    "SendMessageRequest": {
        "type": "object",
        "required": ["message"],
        "additionalProperties": False,
        "properties": {
            "message": {
                "type": "object",
                "required": ["sequenceId", "type"],
                "additionalProperties": False,
                "properties": {
                    "sequenceId": {"type": "integer", "minimum": 1},
                    "type": {"type": "string", "enum": list(CLIENT_MESSAGE_TYPES)},
                    # Required for Text, optional for the others: OpenAPI 3.0 cannot say that, so
                    # a Text without text is "valid" here and answered 400 (named field) there.
                    "text": _opt({"type": "string"}),
                    "inReplyToMessageId": _opt({"type": "string"}),
                },
            },
            "variables": _ref("Variables"),
        },
    },
    "FeedbackRequest": {"type": "object", "required": ["feedbackId", "feedback"], "additionalProperties": False,
                        "properties": {"feedbackId": _NON_BLANK,
                                       "feedback": {"type": "string", "enum": list(FEEDBACK_VALUES)},
                                       "text": _opt({"type": "string"})}},
}


def _turn(summary: str, ok: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "security": [{"bearer": []}], "parameters": [_SESSION_ID],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SendMessageRequest")}}},
            "responses": {"200": ok, **_ERRORS}}


_PATHS: dict[str, Any] = {
    "/services/oauth2/token": {"post": {
        "summary": "OAuth 2.0 client credentials",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["grant_type"],
            "properties": {"grant_type": {"type": "string", "enum": ["client_credentials"]},
                           "client_id": {"type": "string"}, "client_secret": {"type": "string"}}}}}},
        "responses": {"200": _json(_ref("TokenResponse"), "A bearer token"),
                      "400": _json(_ref("OAuthError"), "Unsupported grant type"),
                      "401": _json(_ref("OAuthError"), "Wrong client credentials")},
    }},
    "/services/data/{version}/query": {"get": {
        "summary": "The org's REST query, for BotDefinition / BotVersion (find an agent by name, see its type)",
        "security": [{"bearer": []}],
        "parameters": [{"name": "version", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": r"^v\d{2,3}\.\d$"}},
                       {"name": "q", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}}],
        "responses": {"200": _json(_ref("QueryResult"), "The matching records"),
                      "400": _json(_REST_ERROR, "MALFORMED_QUERY, INVALID_TYPE or INVALID_FIELD"),
                      "401": _json(_REST_ERROR, "INVALID_SESSION_ID"),
                      "404": _json(_REST_ERROR, "Unknown API version")},
    }},
    "/einstein/ai-agent/v1/agents/{agentId}/sessions": {"post": {
        "summary": "Start a session",
        "security": [{"bearer": []}],
        "parameters": [{"name": "agentId", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("StartSessionRequest")}}},
        "responses": {"200": _json(_ref("StartSessionResponse"), "The session, with the greeting"),
                      **{k: v for k, v in _ERRORS.items() if k != "423"},
                      "412": _json(_ref("ApiError"), "The agent's planner configuration is broken (Invalid Config)")},
    }},
    "/einstein/ai-agent/v1/sessions/{sessionId}/messages": {
        "post": _turn("Send a message", _json(_ref("MessagesResponse"), "The agent's messages"))},
    "/einstein/ai-agent/v1/sessions/{sessionId}/messages/stream": {"post": _turn(
        "Send a message, answer streamed as Server-Sent Events",
        {"description": "ProgressIndicator, TextChunk..., final messages, EndOfTurn",
         "content": {"text/event-stream": {"schema": {
             "type": "object", "required": ["event", "data"],
             "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}}}})},
    "/einstein/ai-agent/v1/sessions/{sessionId}": {"delete": {
        "summary": "End a session",
        "security": [{"bearer": []}],
        "parameters": [_SESSION_ID, {"name": "x-session-end-reason", "in": "header", "required": True,
                                     "schema": {"type": "string", "enum": list(END_REASONS)}}],
        "responses": {"200": _json(_ref("MessagesResponse"), "SessionEnded"), **_ERRORS},
    }},
    "/einstein/ai-agent/v1/sessions/{sessionId}/feedback": {"post": {
        "summary": "Feedback on a reply",
        "security": [{"bearer": []}],
        "parameters": [_SESSION_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("FeedbackRequest")}}},
        "responses": {"201": _json({"type": "object"}, "Recorded"), **_ERRORS},
    }},
}


def openapi_document(server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document, with ``server_url`` as its server."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "Agentforce Agent API (sessionforce emulator)", "version": "v1",
                 "description": "The routes the sessionforce emulator serves; see docs/emulator.md."},
        "servers": [{"url": server_url}],
        "paths": _PATHS,
        "components": {"schemas": _SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
