"""The gateway seen by its operators: one trace from the caller's ``traceparent`` through the gateway, its
``/metrics`` scraped over HTTP and read by Prometheus' own parser, JSON log lines with the trace ids."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from sessionforce._json_logs import JSONFormatter
from sessionforce.emulator import RunningEmulator
from sessionforce.gateway import RunningGateway, run_gateway
from tests.gateway.support import API_KEY, Browser, gateway_env, make_config, serve_process

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
MESSAGES = "/v1/conversations/{conversation_id}/messages"
METRICS_KEY = "metrics-key-0123456789"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Where the traced gateway's spans end up."""
    return InMemorySpanExporter()


@pytest.fixture
def traced(emu: RunningEmulator, spans: InMemorySpanExporter) -> Iterator[RunningGateway]:
    """A gateway recording its spans with an SDK tracer provider of the test's own (not the global one)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with run_gateway(make_config(emu), tracer_provider=provider) as running:
        yield running
    provider.shutdown()


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    """Every sample of ``url``'s ``/metrics`` by (name, sorted labels, without the OTel scope labels)."""
    response = httpx.get(url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if not k.startswith("otel_scope_")))
            samples[(sample.name, labels)] = sample.value
    return samples


def family(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric, by labels."""
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def _server_spans(spans: InMemorySpanExporter, count: int) -> list[ReadableSpan]:
    """The ``count`` SERVER spans, once all have ended (a span ends just after its response is sent)."""
    deadline = time.monotonic() + 10
    while len(found := [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} server spans ended"
        time.sleep(0.01)
    return found


def test_a_callers_traceparent_is_the_parent_of_the_gateways_span(traced: RunningGateway,
                                                                  spans: InMemorySpanExporter) -> None:
    browser = Browser.signed_in(traced.url)
    answer = browser.http.post(f"/v1/conversations/{browser.conversation}/messages",
                               json={"id": "m-1", "text": "hello"},
                               headers={**browser.auth, "traceparent": TRACEPARENT})
    assert answer.status_code == 200, answer.text
    untraced = browser.send("m-2", "what are your opening hours?")
    assert untraced.status_code == 200
    token, continued, fresh = _server_spans(spans, 3)
    assert token.name == "POST /v1/tokens"
    assert token.parent is None  # no traceparent: a trace of its own
    assert continued.name == f"POST {MESSAGES}"
    assert format(continued.context.trace_id, "032x") == TRACE_ID
    assert continued.parent is not None
    assert format(continued.parent.span_id, "016x") == PARENT_ID
    assert continued.parent.is_remote
    assert dict(continued.attributes or {}) == {
        "http.request.method": "POST", "url.scheme": "http", "http.route": MESSAGES,
        "http.response.status_code": 200,
    }
    assert fresh.parent is None
    assert fresh.context.trace_id != continued.context.trace_id
    # The library's turn span is the request span's child; its HTTP call to the Agent API is in the same trace.
    in_trace = {s.context.span_id: s for s in spans.get_finished_spans()
                if format(s.context.trace_id, "032x") == TRACE_ID}
    turn = next(s for s in in_trace.values() if s.name.startswith("invoke_agent"))
    assert turn.kind is SpanKind.CLIENT
    assert turn.parent is not None
    assert turn.parent.span_id == continued.context.span_id
    assert dict(turn.attributes or {})["gen_ai.conversation.id"] == browser.conversation
    call = next(s for s in in_trace.values() if s.name == "POST /sessions/{id}/messages/stream")
    assert continued.context.span_id in _ancestors(call, in_trace)
    assert all(continued.context.span_id in _ancestors(s, in_trace) for s in in_trace.values() if s is not continued)


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[int]:
    found = []
    while span.parent is not None and span.parent.span_id in by_id:
        found.append(span.parent.span_id)
        span = by_id[span.parent.span_id]
    return found


def test_failed_requests_are_spans_with_their_status_and_no_token(traced: RunningGateway,
                                                                  spans: InMemorySpanExporter) -> None:
    refused = httpx.post(f"{traced.url}/v1/conversations/c-1/messages", json={"id": "m", "text": "x"},
                         headers={"Authorization": "Bearer not-a-token", "traceparent": TRACEPARENT})
    assert refused.status_code == 401
    assert httpx.get(f"{traced.url}/v1/nowhere").status_code == 404
    unauthorized, unmatched = _server_spans(spans, 2)
    assert unauthorized.name == f"POST {MESSAGES}"
    assert dict(unauthorized.attributes or {})["http.response.status_code"] == 401
    assert unauthorized.status.is_ok  # a 4xx is the caller's error, not the server's (semantic conventions)
    assert unmatched.name == "GET unmatched"
    assert "not-a-token" not in repr([dict(s.attributes or {}) for s in spans.get_finished_spans()])


def test_metrics_count_requests_streams_and_deduplicated_messages(gateway: RunningGateway, emu: RunningEmulator
                                                                  ) -> None:
    browser = Browser.signed_in(gateway.url)
    assert browser.send("m-1", "hello").status_code == 200
    assert browser.send("m-1", "hello").status_code == 200  # a retry: answered from the first, not sent again
    events = browser.send_streamed("m-2", "what are your opening hours?")
    assert events[-1].event == "turn.end"
    assert browser.send("m-3", "hello", conversation="someone-else").status_code == 403
    with browser.events("0") as lines:
        next(lines)  # the stream has started
        during = scrape(gateway.url)
    assert family(during, "sessionforce_gateway_streams_open") == {
        (("kind", "events"),): 1.0, (("kind", "message"),): 0.0}
    after = scrape(gateway.url)
    assert family(after, "sessionforce_gateway_streams_open") == {
        (("kind", "events"),): 0.0, (("kind", "message"),): 0.0}
    assert family(after, "sessionforce_gateway_messages_deduplicated_total") == {(): 1.0}
    requests = family(after, "sessionforce_gateway_requests_total")
    get, post = "GET", "POST"
    assert requests == {
        (("http_request_method", post), ("http_response_status_code", "200"), ("http_route", "/v1/tokens")): 1.0,
        (("http_request_method", post), ("http_response_status_code", "200"), ("http_route", MESSAGES)): 3.0,
        (("http_request_method", post), ("http_response_status_code", "403"), ("http_route", MESSAGES)): 1.0,
        (("http_request_method", get), ("http_response_status_code", "200"),
         ("http_route", "/v1/conversations/{conversation_id}/events")): 1.0,
        (("http_request_method", get), ("http_response_status_code", "200"), ("http_route", "/metrics")): 1.0,
    }
    # The library's own metrics, on the gateway's meter provider: the retry was no turn.
    assert family(after, "sessionforce_turns_total") == {(("outcome", "answered"), ("stream", "true")): 2.0}
    assert family(after, "sessionforce_sessions_started_total") == {(("reason", "new"),): 1.0}
    assert family(after, "sessionforce_sessions_open") == {(): 1.0}
    assert [t["text"] for t in emu.counters()["turns"]] == ["hello", "what are your opening hours?"]  # no resend
    text = httpx.get(gateway.url + "/metrics").text
    assert browser.conversation not in text
    assert browser.token not in text


def test_metrics_can_require_a_key(emu: RunningEmulator) -> None:
    with run_gateway(make_config(emu, metrics_key=[METRICS_KEY])) as gateway:
        assert httpx.get(gateway.url + "/metrics").status_code == 401
        wrong = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_token"
        samples = scrape(gateway.url, {"Authorization": f"Bearer {METRICS_KEY}"})
    assert family(samples, "sessionforce_gateway_requests_total") == {
        (("http_request_method", "GET"), ("http_response_status_code", "401"), ("http_route", "/metrics")): 2.0}


def test_each_gateway_has_its_own_registry(emu: RunningEmulator) -> None:
    with run_gateway(make_config(emu)) as one, run_gateway(make_config(emu)) as two:
        Browser.signed_in(one.url)
        assert family(scrape(one.url), "sessionforce_gateway_requests_total") == {
            (("http_request_method", "POST"), ("http_response_status_code", "200"), ("http_route", "/v1/tokens")): 1.0}
        assert family(scrape(two.url), "sessionforce_gateway_requests_total") == {}


def test_json_log_lines_carry_the_trace_of_the_request(traced: RunningGateway, spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("sessionforce.gateway")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        browser = Browser.signed_in(traced.url)
        answer = browser.http.post(f"/v1/conversations/{browser.conversation}/messages",
                                   json={"id": "m-1", "text": "hello"},
                                   headers={**browser.auth, "traceparent": TRACEPARENT})
        assert answer.status_code == 200
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    answered = next(r for r in records if r["message"].startswith("message m-1 answered"))
    assert set(answered) == {"time", "level", "logger", "message", "conversation_id", "message_id",
                             "external_session_key", "session_id", "sequence_id", "trace_id", "span_id"}
    assert answered["trace_id"] == TRACE_ID
    assert answered["conversation_id"] == browser.conversation
    assert answered["level"] == "info"
    assert answered["logger"] == "sessionforce.gateway"
    assert answered["span_id"] in {format(s.context.span_id, "016x") for s in _server_spans(spans, 2)}


def test_the_root_log_format_option_reaches_serve(emu: RunningEmulator, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sessionforce.cli", "--log-format", "json", "serve", "--port", "0",
               "--store", "memory://"]
    with serve_process([], gateway_env(emu, tmp_path), tmp_path / "serve.log", command=command) as gateway:
        browser = Browser.signed_in(gateway.url)
        assert browser.send("m-1", "hello").status_code == 200
        gateway.stop()
        records = [json.loads(line) for line in gateway.output().splitlines() if line.startswith("{")]
    answered = next(r for r in records if r["message"].startswith("message m-1 answered"))
    assert answered["message_id"] == "m-1"
    assert answered["conversation_id"] == browser.conversation
    assert "trace_id" not in answered  # no tracer provider configured: no span is current
