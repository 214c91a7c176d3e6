"""The canary: unique values planted in the client secret, the access token (the hostile server's token
response) and the Redis password (a redis-server with ``requirepass``); the fault scenarios run with
logging at DEBUG and the CLI with ``--debug``; then every exception (message, repr, chain, raw body),
every log record, the whole store (raw keys and values), ``sessions export`` and every line the CLI
printed are scanned. Zero hits. The telemetry too (issue 17): every span (name, attributes, events,
status) and every metric point the library recorded through SDK providers of the test's own, the same
records as JSON log lines, and the gateway's spans, ``/metrics`` text and JSON logs in front of the hostile
server.
"""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sessionforce._json_logs import JSONFormatter
from sessionforce.config import ClientSettings
from sessionforce.gateway import GatewayConfig, GatewaySettings, run_gateway
from sessionforce.telemetry import Telemetry
from tests.adversarial import _harness
from tests.adversarial._assertions import outcome_within, stream_outcome
from tests.adversarial._canary import Canaries, LogCapture, exception_texts
from tests.adversarial._cli import CliRun
from tests.adversarial._hostile import (
    Behaviour,
    HostileServer,
    after,
    bad_chunked,
    bad_status_line,
    echo_secret,
    echo_token,
    json_200,
    reset_after_body,
    short_body,
    sse_error_echo,
    truncated_json,
    well_behaved,
    wrong_content_type,
)
from tests.adversarial._redis_proc import RedisProcess

_SCENARIOS: list[tuple[str, Behaviour]] = [
    ("send", bad_status_line()),
    ("send", bad_chunked()),
    ("send", echo_token(500)),
    ("send", echo_token(400)),
    ("send", echo_token(401)),
    ("send", sse_error_echo()),
    ("send", json_200({"status": 500, "error": "HttpServerErrorException", "message": "boom"})),
    ("send", json_200({})),
    ("send", truncated_json()),
    ("send", short_body()),
    ("send", wrong_content_type()),
    ("send", reset_after_body()),
    ("stream", bad_status_line()),
    ("stream", echo_token(500)),
    ("stream", sse_error_echo()),
    ("stream", short_body()),
]


def _store_url(process: RedisProcess) -> str:
    return f"{process.url}?prefix=canary:{uuid.uuid4().hex}:"


def _malformed_urls(password: str) -> list[str]:
    return [f"reddis://:{password}@127.0.0.1:6379/0", f"redis//:{password}@127.0.0.1:6379/0",
            f"redis://:{password}@[::1/0", f"sqlite://:{password}@db.example/x.db",
            f"redis://:{password}@127.0.0.1:99999999/0", f"redis://:{password}@127.0.0.1:6379/0?socket_timeout=x"]


def _dump(url: str) -> list[str]:
    """Every key and value in the Redis at ``url`` (it is the test's own server), as text."""
    client: Any = redis.Redis.from_url(url.split("?", 1)[0])
    out: list[str] = []
    try:
        for key in client.scan_iter(count=500):
            kind = client.type(key)
            values: list[Any] = []
            if kind == b"string":
                values = [client.get(key) or b""]
            elif kind == b"list":
                values = client.lrange(key, 0, -1)
            elif kind == b"zset":
                values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == b"hash":
                values = [b"%s=%s" % pair for pair in client.hgetall(key).items()]
            out += [key.decode("utf-8", "replace"), *(v.decode("utf-8", "replace") for v in values)]
    finally:
        client.close()
    return out


def _cli_texts(done: object) -> list[str]:
    return [getattr(done, "stdout", ""), getattr(done, "stderr", "")]


class Recorded:
    """SDK providers of the test's own (never the global ones), and a text of everything they hold."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])
        self.telemetry = Telemetry(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider,
                                   capture_content=True)  # message content too: it must be scrubbed of secrets

    def texts(self) -> list[str]:
        """Each span's name, attributes, events and status; the metrics (names, attributes, values) as JSON."""
        texts = []
        for span in self.spans.get_finished_spans():
            texts += [span.name, repr(dict(span.attributes or {})), repr(span.status.description)]
            texts += [f"{event.name} {dict(event.attributes or {})!r}" for event in span.events]
        data = self.metrics.get_metrics_data()
        texts.append(data.to_json() if data is not None else "")
        return texts

    def count(self) -> tuple[int, int]:
        """(spans, metric points) recorded: the scan must have had something to scan."""
        data = self.metrics.get_metrics_data()
        points = 0 if data is None else sum(len(m.data.data_points) for r in data.resource_metrics
                                            for s in r.scope_metrics for m in s.metrics)
        return len(self.spans.get_finished_spans()), points


@contextmanager
def json_logs() -> Iterator[io.StringIO]:
    """Every record at DEBUG and above, formatted as the CLI's and the gateway's JSON log lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_no_planted_secret_comes_out_of_the_library(
    canaries: Canaries, debug_logs: LogCapture, redis_binary: str, cli: CliRun
) -> None:
    texts: list[str] = []
    recorded = Recorded()
    telemetry = recorded.telemetry
    with RedisProcess(redis_binary, password=canaries.redis_password) as process, \
            HostileServer(token=canaries.access_token) as hostile, json_logs() as json_lines:
        store_url = _store_url(process)
        store = _harness.open_store(store_url)
        texts += [repr(store), str(store)]
        try:
            async with _harness.client(hostile.url, secret=canaries.client_secret, store=store,
                                       retry=_harness.no_retries(), telemetry=telemetry,
                                       timeouts=_harness.timeouts(read=3, stream_read=3)) as owner:
                texts += [repr(owner), repr(owner.settings), str(owner.settings)]
                conv = _harness.conversation(owner, "canary")
                await conv.send("hello")  # a good turn first: the token is in use, the store holds a record
                for route, behaviour in _SCENARIOS:
                    hostile.clear()
                    hostile.script(route, behaviour, times=1)
                    if route == "send":
                        outcome = await outcome_within(conv.send("a turn"), 10, "a turn")
                    else:
                        outcome = await stream_outcome(lambda: conv.stream("a streamed turn"), 10, "a streamed turn")
                    texts += exception_texts(outcome.error)
                hostile.clear()
                hostile.script("start", echo_token(500), times=1)
                texts += exception_texts((await outcome_within(owner.start_session(), 10, "a start")).error)
                hostile.script("end", echo_token(500), times=1)
                texts += exception_texts((await outcome_within(conv.end(), 10, "an end")).error)
                texts += [e.to_json() for e in await conv.transcript()]
                texts += [r.to_json() for r in await store.list_conversations()]
            # A fresh client must fetch a token: the token endpoint refuses it, echoing the secret.
            for status in (400, 500):
                hostile.script("token", echo_secret(status), times=1)
                async with _harness.client(hostile.url, secret=canaries.client_secret, store=store,
                                           retry=_harness.no_retries(), telemetry=telemetry) as fresh:
                    texts += exception_texts((await outcome_within(fresh.start_session(), 10, "a start")).error)
            texts += _dump(process.url)
            exported = await asyncio.to_thread(cli.run, "--debug", "sessions", "export", "canary", "--store", store_url)
            assert exported.returncode == 0, exported.stderr
            texts += _cli_texts(exported)
            # Redis killed mid-turn (the password in the store URL), then back, empty, with the same password.
            async with _harness.client(hostile.url, secret=canaries.client_secret, store=store,
                                       retry=_harness.no_retries(), telemetry=telemetry) as owner:
                hostile.script("send", after(process.kill, well_behaved("send")), times=1)
                texts += exception_texts((await outcome_within(
                    _harness.conversation(owner, "canary-redis").send("redis dies now"), 15, "a turn")).error)
                process.start()
                wrong = _harness.open_store(f"redis://:wrong-{uuid.uuid4().hex}@127.0.0.1:{process.port}/0")
                try:
                    texts += exception_texts((await outcome_within(wrong.load("x"), 10, "a load")).error)
                finally:
                    await wrong.aclose()
        finally:
            await store.aclose()
        for url in _malformed_urls(canaries.redis_password):
            try:
                _harness.open_store(url)
            except Exception as exc:
                texts += exception_texts(exc)
        bearer = {r.bearer for r in hostile.requests if r.bearer}
        secret_sent = any(canaries.client_secret in r.body.decode("latin-1") for r in hostile.requests)
    assert bearer == {canaries.access_token}, "the planted token was not the one in use"
    assert secret_sent, "the planted client secret was never sent"
    assert any(r.name.startswith("sessionforce") for r in debug_logs.records), "DEBUG logging captured nothing"
    assert not (leaked := canaries.report([*texts, *debug_logs.texts])), f"planted secrets leaked:\n{leaked}"
    spans, points = recorded.count()
    assert spans > 50, "the turns recorded too few spans to scan"
    assert points > 5, "the turns recorded too few metric points to scan"
    lines = json_lines.getvalue().splitlines()
    assert any('"logger": "sessionforce' in line for line in lines), "no JSON log line to scan"
    leaked = canaries.report([*recorded.texts(), *lines])
    assert not leaked, f"planted secrets leaked in spans, metrics or JSON logs:\n{leaked}"


# Eight CLI processes in a row (each a Python start-up); on a loaded CI machine that is more than the suite's
# default 30 s.
@pytest.mark.timeout(120)
def test_no_planted_secret_comes_out_of_the_cli(canaries: Canaries, redis_binary: str, cli: CliRun) -> None:
    with RedisProcess(redis_binary, password=canaries.redis_password) as process, \
            HostileServer(token=canaries.access_token) as hostile:
        store_url = _store_url(process)
        cli.org(hostile.url, client_id="canary-client", secret=canaries.client_secret, agent_id="0XxCANARY000000001")
        cli.env["SESSIONFORCE_STORE"] = store_url
        hostile.script("stream", well_behaved("stream"), times=1)
        hostile.script("stream", bad_status_line(), times=1)
        hostile.script("stream", echo_token(500), times=1)
        hostile.script("stream", sse_error_echo(), times=1)
        chat = cli.run("--debug", "chat", "--conversation", "canary-cli", "--new",
                       input=b"hello\n/info\nthe answer is garbled\nthe token is echoed\nan error event\n/transcript\n")
        outputs = [chat]
        hostile.clear()
        hostile.script("token", echo_secret(400), times=1)
        outputs.append(cli.run("--debug", "chat", "--conversation", "canary-cli-2", "--new", input=b"hi\n"))
        for args in (["sessions", "export", "canary-cli"], ["sessions", "show", "canary-cli"], ["config", "show"]):
            outputs.append(cli.run("--debug", *args))
        outputs.append(cli.run("--debug", "sessions", "list", "--store", _malformed_urls(canaries.redis_password)[0]))
        hostile.script("stream", echo_token(500), times=1)
        outputs.append(json_chat := cli.run("--log-format", "json", "--debug", "chat", "--conversation", "canary-cli-3",
                                            "--new", input=b"the token is echoed again\n"))
        sent = [r for r in hostile.requests if r.route == "stream"]
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert len(sent) >= 4, f"the chats did not run their turns: {chat.stderr[-2000:]}"
    assert {r.bearer for r in sent} == {canaries.access_token}, "the planted token was not the one in use"
    assert '"logger": "sessionforce' in json_chat.stderr, "the JSON log run logged nothing"
    texts = [text for done in outputs for text in _cli_texts(done)]
    assert not (leaked := canaries.report(texts)), f"planted secrets leaked in CLI output:\n{leaked}"


def test_no_planted_secret_comes_out_of_the_gateways_telemetry(canaries: Canaries, debug_logs: LogCapture) -> None:
    recorded = Recorded()
    api_key, signing_key = f"canary-api-key-{uuid.uuid4().hex}", f"canary-signing-key-{uuid.uuid4().hex}"
    with HostileServer(token=canaries.access_token) as hostile, json_logs() as json_lines:
        org = ClientSettings.load(my_domain=hostile.url, base_url=hostile.url, client_id="canary-client",
                                  client_secret=canaries.client_secret, agent_id="0XxCANARY000000001")
        settings = GatewaySettings.load(api_key=[api_key], signing_key=[signing_key], idle_timeout=0)
        config = GatewayConfig(org=org, store_url="memory://", settings=settings)
        with run_gateway(config, tracer_provider=recorded.tracer_provider) as gateway, \
                httpx.Client(base_url=gateway.url, timeout=30) as http:
            minted = http.post("/v1/tokens", json={"user": "u"}, headers={"Authorization": f"Bearer {api_key}"})
            token, conversation = minted.json()["token"], minted.json()["conversations"][0]
            auth = {"Authorization": f"Bearer {token}",
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
            answers = []
            for n, behaviour in enumerate([well_behaved("stream"), echo_token(500), sse_error_echo(),
                                           bad_status_line()]):
                hostile.script("stream", behaviour, times=1)
                answers.append(http.post(f"/v1/conversations/{conversation}/messages", headers=auth,
                                         json={"id": f"m-{n}", "text": "hello"}))
            with http.stream("GET", f"/v1/conversations/{conversation}/events?after=0&access_token={token}") as events:
                next(events.iter_lines())
            metrics = http.get("/metrics").text
        sent = [r for r in hostile.requests if r.route == "stream"]
    assert [a.status_code for a in answers] == [200, 502, 502, 504], [a.text for a in answers]
    assert {r.bearer for r in sent} == {canaries.access_token}, "the planted token was not the one in use"
    assert "sessionforce_gateway_requests_total" in metrics
    assert len(recorded.spans.get_finished_spans()) > 10, "the gateway recorded too few spans to scan"
    lines = json_lines.getvalue().splitlines()
    assert any('"logger": "sessionforce.gateway"' in line for line in lines), "no gateway JSON log line to scan"
    texts = [metrics, *recorded.texts(), *lines, *debug_logs.texts, *(a.text for a in answers)]
    assert not (leaked := canaries.report(texts)), f"planted secrets leaked from the gateway:\n{leaked}"
