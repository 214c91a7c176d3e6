"""OpenTelemetry traces and metrics for sessionforce: :class:`Telemetry` says where they go.

Optional: with ``opentelemetry-api`` absent (install ``sessionforce[otel]`` to have it), or with no tracer
and meter provider configured, nothing is recorded and the turns pay (next to) nothing for it. See
docs/observability.md for every span, attribute and metric.
"""

from sessionforce.telemetry._telemetry import CAPTURE_CONTENT_ENV, Telemetry

__all__ = ["CAPTURE_CONTENT_ENV", "Telemetry"]
