"""Run in a subprocess by test_global.py: one turn with ``Telemetry`` left to its defaults, either with
OpenTelemetry's global providers set after the client was made (``global``), or with opentelemetry
not importable at all (``absent``). Prints what was recorded, as JSON."""

from __future__ import annotations

import asyncio
import json
import sys

if sys.argv[1] == "absent":
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import opentelemetry now fails


async def main(mode: str) -> dict[str, object]:
    from sessionforce import AsyncAgentClient, Conversations
    from sessionforce.emulator import run_emulator
    from sessionforce.store import MemoryStore
    from tests.support import client_kwargs

    with run_emulator() as emu:
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            conversations = Conversations(client, store=MemoryStore())
            if mode == "absent":
                reply = await conversations.get("c").send("message 1")
                return {"text": reply.text, "tracer": repr(client.telemetry.tracer()),
                        "instruments": repr(client.telemetry.instruments())}
            await conversations.get("c").send("before")  # no provider yet: nothing recorded
            from opentelemetry import metrics, trace
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

            exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            await conversations.get("c").send("after")
            data = reader.get_metrics_data()
            assert data is not None
            turns = [p.value for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                     if m.name == "sessionforce.turns" for p in m.data.data_points]
            return {"spans": sorted(s.name for s in exporter.get_finished_spans()), "turns": turns}


print(json.dumps(asyncio.run(main(sys.argv[1]))))
