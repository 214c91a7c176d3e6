"""What OpenTelemetry costs a turn: client CPU per ``Conversation.send`` against the emulator (a separate
process), with telemetry off and on, in the same run.

``python -m bench.otel_cost [--turns N] [--repeats R] [--modes off,noop,batch]`` runs one conversation per
mode, each on its own client, the modes taking turns within every repeat (so drift of the machine hits
them alike):

* ``off``: no tracer or meter provider configured (the library's default; what everyone who does not turn
  telemetry on pays). ``--no-otel`` makes ``opentelemetry`` unimportable first: the cost without the API
  installed at all;
* ``noop``: the SDK's ``TracerProvider`` with a span processor handing every span to an exporter that drops
  it, and the SDK's ``MeterProvider`` aggregating every metric (read by nobody): the cost of recording;
* ``batch``: as deployed: a ``BatchSpanProcessor`` (its worker thread's CPU counts, it is this process's)
  to an exporter that drops the batches, and a periodic metric reader exporting every second to a dropping
  exporter.

Printed: the median CPU microseconds per turn of each mode and its ratio to ``off``. Run it on a checkout
from before telemetry existed (``PYTHONPATH=<checkout>/src python -m bench.otel_cost --modes off``) to
compare ``off`` with the code before it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.common import CLIENT_ID, CLIENT_SECRET, DEMO_AGENT_ID, header, server_process, us

MODES = ("off", "noop", "batch")


def _telemetry(mode: str) -> tuple[Any, list[Any]]:
    """(the ``telemetry=`` argument for ``mode``, the providers to shut down). ``off`` passes nothing, so the
    mode runs on code from before the argument existed too."""
    if mode == "off":
        return None, []
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        InMemoryMetricReader,
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from sessionforce import Telemetry

    class DropSpans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            return None

    tracer_provider = TracerProvider()
    if mode == "noop":
        tracer_provider.add_span_processor(SimpleSpanProcessor(DropSpans()))
        reader: Any = InMemoryMetricReader()
    else:
        tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
        reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=1000)
    meter_provider = MeterProvider(metric_readers=[reader])
    return Telemetry(tracer_provider, meter_provider), [tracer_provider, meter_provider]


async def measure(url: str, modes: Sequence[str], turns: int, repeats: int) -> dict[str, list[float]]:
    """CPU seconds per turn of each repeat, by mode."""
    from sessionforce import AsyncAgentClient, Conversations
    from sessionforce.store import MemoryStore

    setups = []
    for mode in modes:
        telemetry, providers = _telemetry(mode)
        extra = {"telemetry": telemetry} if telemetry is not None else {}
        client = AsyncAgentClient(my_domain=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                  agent_id=DEMO_AGENT_ID, **extra)
        conversation = Conversations(client, store=MemoryStore()).get(f"otel-{mode}")
        for _ in range(20):  # warm up: token, session, pools, first-call caches
            await conversation.send("ping")
        setups.append((mode, client, conversation, providers))
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode, _client, conversation, _providers in setups:
            gc.collect()
            started = time.process_time()
            for _ in range(turns):
                await conversation.send("ping")
            results[mode].append((time.process_time() - started) / turns)
    for _mode, client, conversation, providers in setups:
        await conversation.end()
        await client.aclose()
        for provider in providers:
            provider.shutdown()
    return results


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--no-otel", action="store_true", help="make opentelemetry unimportable (mode off only)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}; known: {', '.join(MODES)}")
    if args.no_otel:
        if modes != ["off"]:
            parser.error("--no-otel runs the off mode alone: --modes off")
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    if args.smoke:
        args.turns, args.repeats = 100, 1
    header("OpenTelemetry cost: client CPU per Conversation.send, telemetry off and on")
    with server_process() as server:
        results = asyncio.run(measure(server.url, modes, args.turns, args.repeats))
    print(f"turns per repeat: {args.turns}; repeats: {args.repeats}; modes interleaved within each repeat")
    medians = {mode: statistics.median(values) for mode, values in results.items()}
    for mode, values in results.items():
        spread = f"{us(min(values))} .. {us(max(values))}"
        print(f"{mode:>6}: {us(medians[mode])} per turn (median; repeats {spread})")
    if "off" in medians:
        for mode in modes:
            if mode != "off":
                print(f"RATIO otel cost | {mode} vs off: {medians[mode] / medians['off']:.2f}")


if __name__ == "__main__":
    main()
