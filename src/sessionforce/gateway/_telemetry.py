"""The gateway's observability: a SERVER span per API request continuing the caller's trace, and ``/metrics``.

Traces: each ``/v1/`` request gets a SERVER span whose parent is the caller's W3C ``traceparent`` (a
browser's, a backend's), so the library's ``invoke_agent`` span of the turn, and its HTTP attempts to the
Agent API, are one trace with the caller's. The tracer provider is OpenTelemetry's global one (operators
configure it, e.g. ``opentelemetry-instrument sessionforce serve``) unless one is passed (tests).

Metrics: an SDK ``MeterProvider`` whose Prometheus reader collects into a registry of this gateway's own
(never prometheus_client's process-wide one: several gateways in one process, as in the tests, would
collide). The library's turn, session, lease and store metrics go to it too (``Telemetry(meter_provider=...)``),
and the gateway adds its requests by route and status, its open end-user streams, and the messages it
deduplicated. Attributes hold route templates, never a path with a conversation id, a token or a text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.propagate import extract
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionforce._version import __version__
from sessionforce.telemetry import Telemetry

__all__ = ["CONTENT_TYPE", "GatewayTelemetry", "ObserveRequests"]

SCOPE = "sessionforce.gateway"
CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "unmatched"
"""The route label of a request no route matched (its path is never a label: unbounded, and it may hold ids)."""


class GatewayTelemetry:
    """One gateway's meter provider, Prometheus registry, instruments, request tracer and library telemetry."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer_provider = tracer_provider
        self.registry = CollectorRegistry(auto_describe=False)
        reader = PrometheusMetricReader(registry=self.registry)
        # Resource.create adds OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES from the environment.
        resource = Resource.create({"service.name": "sessionforce-gateway", "service.version": __version__})
        self.meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
        self.library = Telemetry(tracer_provider=tracer_provider, meter_provider=self.meter_provider)
        """What the gateway's client and conversations record to."""
        meter = self.meter_provider.get_meter(SCOPE, __version__)
        self.requests = meter.create_counter(
            "sessionforce.gateway.requests", unit="{request}",
            description="HTTP requests answered, by route template, method and status code.")
        self.streams = meter.create_up_down_counter(
            "sessionforce.gateway.streams.open", unit="{stream}",
            description="End-user event streams open now (kind: events = GET .../events, message = a streamed "
                        "POST .../messages).")
        self.deduplicated = meter.create_counter(
            "sessionforce.gateway.messages.deduplicated", unit="{message}",
            description="Message POSTs answered from an earlier one with the same client message id (never sent "
                        "to the agent again).")

    def tracer(self) -> trace.Tracer:
        """The tracer of the request spans (the given provider, else the global one at this moment)."""
        provider = self._tracer_provider or trace.get_tracer_provider()
        return provider.get_tracer(SCOPE, __version__)

    def exposition(self) -> bytes:
        """The metrics, in the Prometheus text format (collected now)."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        """Stop the meter provider (its reader leaves the registry)."""
        self.meter_provider.shutdown()


class ObserveRequests:
    """ASGI middleware: counts every HTTP request by route template and status; for ``/v1/`` requests, a
    SERVER span continuing the caller's ``traceparent``, current while the route runs (a turn the route
    starts runs in a task copied from this context, so the library's turn span is its child)."""

    def __init__(self, app: ASGIApp, telemetry: GatewayTelemetry, templates: Callable[[Any], str | None]) -> None:
        self.app = app
        self.telemetry = telemetry
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        status = [500]  # what an exception that escapes every handler becomes

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if not scope["path"].startswith("/v1/"):
                await self.app(scope, receive, send_status)
                return
            carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
            tracer = self.telemetry.tracer()
            # An exception's message is not recorded (it may quote what a lower library saw): its class is.
            with tracer.start_as_current_span(method, context=extract(carrier), kind=SpanKind.SERVER,
                                              attributes={"http.request.method": method,
                                                          "url.scheme": scope.get("scheme", "http")},
                                              record_exception=False, set_status_on_exception=False) as span:
                error: str | None = None
                try:
                    await self.app(scope, receive, send_status)
                except BaseException as exc:
                    error = type(exc).__qualname__
                    raise
                finally:
                    route = self.templates(scope.get("endpoint")) or UNMATCHED
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status[0])
                    if error is not None or status[0] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                        span.set_attribute("error.type", error or str(status[0]))
        finally:
            route = self.templates(scope.get("endpoint")) or UNMATCHED
            self.telemetry.requests.add(1, {"http.route": route, "http.request.method": method,
                                            "http.response.status_code": status[0]})
