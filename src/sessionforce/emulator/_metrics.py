"""``GET /metrics``: the emulator's counters in the Prometheus exposition format, for dashboards and load tests.

Each app gets its own :class:`~prometheus_client.CollectorRegistry` (never the process-wide one: a test
process runs many emulators). The values are read from the state's counters when scraped, so the hot path
pays nothing more than the counters it already kept; ``POST /__emulator/reset`` starts them from zero
again, which Prometheus reads as a counter reset. No label holds a session id, a text or a token.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sessionforce.emulator._state import EmulatorState

__all__ = ["EmulatorCollector", "metrics_route"]

PREFIX = "sessionforce_emulator_"


class EmulatorCollector(Collector):
    """Reads one emulator's counters at each scrape (on the server's loop, where the state lives)."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        """The families, from the counters as they are now."""
        state = self._state
        state.sweep()  # idle sessions expire when looked at, as for GET /__emulator/counters
        counters = state.counters
        requests = CounterMetricFamily(PREFIX + "requests", "Agent API and org requests answered, by route and "
                                       "HTTP status (status 'reset': the connection was cut).",
                                       labels=["route", "status"])
        for key, count in sorted(counters.requests.items()):
            route, _, status = key.rpartition(" ")
            requests.add_metric([route, status], count)
        yield requests
        yield GaugeMetricFamily(PREFIX + "sessions_active", "Sessions open now.", value=len(state.active))
        yield CounterMetricFamily(PREFIX + "sessions_started", "Sessions started.", value=counters.opened)
        ended = CounterMetricFamily(PREFIX + "sessions_ended", "Sessions closed, by how: 'ended' (a DELETE or "
                                    "the agent) or 'expired' (idle past the timeout, or expired on purpose).",
                                    labels=["reason"])
        ended.add_metric(["ended"], counters.ended)
        ended.add_metric(["expired"], counters.expired)
        yield ended
        yield _by(PREFIX + "turns", "Turns accepted (counted as delivered), by route.", "route", counters.turn_routes)
        yield _by(PREFIX + "faults_injected", "Requests a fault rule acted on, by route.", "route", counters.faults)
        yield _by(PREFIX + "tokens_issued", "Access tokens issued, by format.", "format", counters.tokens)


def _by(name: str, documentation: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


def metrics_route(state: EmulatorState) -> Route:
    """``GET /metrics`` over a registry of this app's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EmulatorCollector(state))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])
