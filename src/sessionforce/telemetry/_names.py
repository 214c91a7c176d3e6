"""Span, attribute and metric attribute names: the OpenTelemetry GenAI agent conventions where they fit
(``gen_ai.*``, ``error.type``, ``http.*``, ``server.*``), ``sessionforce.*`` for the rest."""

from __future__ import annotations

# The GenAI agent conventions (invoke_agent client span).
OPERATION = "gen_ai.operation.name"
INVOKE_AGENT = "invoke_agent"
PROVIDER = "gen_ai.provider.name"
PROVIDER_NAME = "salesforce.agentforce"
"""No well-known value names Salesforce yet: ``<vendor>.<product>``, as the conventions' own values go
(``aws.bedrock``, ``azure.ai.inference``)."""
AGENT_ID = "gen_ai.agent.id"
CONVERSATION = "gen_ai.conversation.id"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"

# HTTP client attempt spans.
HTTP_METHOD = "http.request.method"
HTTP_STATUS = "http.response.status_code"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
URL_TEMPLATE = "url.template"

# Ours.
SESSION_ID = "sessionforce.session_id"
SEQUENCE_ID = "sessionforce.sequence_id"
EXTERNAL_KEY = "sessionforce.external_session_key"
OUTCOME = "sessionforce.outcome"
DELIVERY = "sessionforce.delivery"
RESUME_REASON = "sessionforce.resume_reason"
END_REASON = "sessionforce.end_reason"
STREAM = "sessionforce.stream"
STORE = "sessionforce.store"
STORE_OPERATION = "sessionforce.store.operation"
RETRY_VERDICT = "sessionforce.retry.verdict"

SPAN_LEASE = "lease acquire"
SPAN_START_SESSION = "start session"
EVENT_FIRST = "sessionforce.stream.first_event"
EVENT_END = "sessionforce.stream.end"
EVENT_SESSION_ENDED = "sessionforce.session.ended"

# Metric attributes (never ids, texts or secrets).
M_OUTCOME = "outcome"
M_STREAM = "stream"
M_REASON = "reason"
M_OPERATION = "operation"
M_STORE = "store"
M_CAUSE = "cause"

ANSWERED = "answered"
RESUMED = "resumed"
DELIVERY_UNKNOWN = "delivery_unknown"
FAILED = "failed"
