"""The metric instruments, made once per meter: the names, kinds and units of docs/observability.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter, UpDownCounter

__all__ = ["Instruments", "make_instruments"]

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 130.0)
"""Histogram buckets in seconds: from a store read (milliseconds) to a turn's whole budget (130 s). The SDK's
default buckets are made for milliseconds and would put every turn in the first few."""


@dataclass(frozen=True, slots=True)
class Instruments:
    """Every sessionforce instrument of one meter."""

    turns: Counter
    turn_duration: Histogram
    time_to_first_event: Histogram
    sessions_started: Counter
    sessions_ended: Counter
    sessions_open: UpDownCounter
    lease_wait: Histogram
    locked_waits: Counter
    http_retries: Counter
    store_duration: Histogram


def make_instruments(meter: Meter) -> Instruments:
    """The instruments of ``meter`` (the SDK hands the same instrument back for the same name)."""

    def seconds(name: str, description: str) -> Histogram:
        return meter.create_histogram(name, unit="s", description=description,
                                      explicit_bucket_boundaries_advisory=_SECONDS)

    return Instruments(
        turns=meter.create_counter("sessionforce.turns", unit="{turn}", description="User turns, by outcome."),
        turn_duration=seconds("sessionforce.turn.duration", "A turn from its call to its outcome."),
        time_to_first_event=seconds(
            "sessionforce.turn.time_to_first_event",
            "From a turn's call to the first thing the user sees (a stream's first event; a whole reply).",
        ),
        sessions_started=meter.create_counter(
            "sessionforce.sessions.started", unit="{session}", description="Agent API sessions started, by reason."
        ),
        sessions_ended=meter.create_counter(
            "sessionforce.sessions.ended", unit="{session}", description="Agent API sessions closed, by reason."
        ),
        sessions_open=meter.create_up_down_counter(
            "sessionforce.sessions.open", unit="{session}",
            description="Sessions this process started minus those it closed.",
        ),
        lease_wait=seconds("sessionforce.lease.wait.duration", "Time a turn waited for its conversation's lease."),
        locked_waits=meter.create_counter(
            "sessionforce.locked.waits", unit="{wait}", description="Waits on a session another request holds (423)."
        ),
        http_retries=meter.create_counter(
            "sessionforce.http.retries", unit="{retry}", description="HTTP requests sent again, by cause."
        ),
        store_duration=seconds("sessionforce.store.operation.duration", "A store operation, as a turn saw it."),
    )
