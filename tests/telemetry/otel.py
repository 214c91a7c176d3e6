"""The OpenTelemetry SDK's in-memory exporter and metric reader behind one :class:`Telemetry`, with views
of what they caught: the span tree, spans by name, metric points."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sessionforce import Telemetry

Point = tuple[str, frozenset[tuple[str, Any]]]


class Otel:
    """Per-test providers (never the global ones) and the telemetry that records to them."""

    def __init__(self, *, capture_content: bool | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(self.tracer_provider, self.meter_provider, capture_content=capture_content)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    def spans(self) -> list[ReadableSpan]:
        """Finished spans, by start time."""
        return sorted(self.exporter.get_finished_spans(), key=lambda s: s.start_time or 0)

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def tree(self, root: ReadableSpan | None = None) -> list[str]:
        """Span names indented by depth (two spaces per level), each subtree in start order; ``root``: only
        that span's tree."""
        spans = self.spans()
        ids = {s.context.span_id for s in spans}  # type: ignore[union-attr]
        children: dict[int | None, list[ReadableSpan]] = {}
        for s in spans:
            parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
            children.setdefault(parent, []).append(s)
        lines: list[str] = []

        def walk(span: ReadableSpan, depth: int) -> None:
            lines.append("  " * depth + span.name)
            for child in children.get(span.context.span_id, []):  # type: ignore[union-attr]
                walk(child, depth + 1)

        for top in [root] if root is not None else children.get(None, []):
            walk(top, 0)
        return lines

    def points(self) -> dict[Point, float]:
        """Every metric point: a sum's value, a histogram's count, by (name, attributes)."""
        data = self.reader.get_metrics_data()
        found: dict[Point, float] = {}
        if data is None:
            return found
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        key = (metric.name, frozenset((p.attributes or {}).items()))
                        if isinstance(p, HistogramDataPoint):
                            found[key] = p.count
                        elif isinstance(p, NumberDataPoint):
                            found[key] = p.value
        return found

    def json(self) -> str:
        """Everything recorded, serialised (for the secret scan)."""
        data = self.reader.get_metrics_data()
        return "\n".join([*(s.to_json() for s in self.spans()), data.to_json() if data is not None else ""])


def point(name: str, **attributes: Any) -> Point:
    return name, frozenset(attributes.items())
