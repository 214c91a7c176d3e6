"""``GET /metrics``: the emulator's counters in the Prometheus format, read back with Prometheus' own parser."""

from __future__ import annotations

import httpx
from emulator_wire import Wire
from prometheus_client.parser import text_string_to_metric_families

from sessionforce.emulator import RunningEmulator, run_emulator


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``url``'s ``/metrics`` by (name, sorted labels), parsed by prometheus_client."""
    response = httpx.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_requests_sessions_turns_faults_and_tokens(emu: RunningEmulator, wire: Wire) -> None:
    first, second = wire.session(), wire.session()
    assert wire.send(first, 1).status_code == 200
    response, events = wire.stream(first, 2)
    assert response.status_code == 200
    assert events[-1]["event"] == "EndOfTurn"
    wire.admin("PUT", "/faults", {"rules": [{"route": "send_message", "status": 503, "times": 1}]})
    assert wire.send(second, 1).status_code == 503  # refused by the fault: not a turn
    assert wire.send(second, 1).status_code == 200
    assert wire.end(first).status_code == 200
    assert wire.send(first, 3).status_code == 404
    wire.admin("POST", f"/sessions/{second}/expire")

    samples = scrape(emu.url)
    assert {k: v for k, v in samples.items() if k[0] == "sessionforce_emulator_requests_total"} == {
        ("sessionforce_emulator_requests_total", (("route", "token"), ("status", "200"))): 1.0,
        ("sessionforce_emulator_requests_total", (("route", "start_session"), ("status", "200"))): 2.0,
        ("sessionforce_emulator_requests_total", (("route", "send_message"), ("status", "200"))): 2.0,
        ("sessionforce_emulator_requests_total", (("route", "send_message"), ("status", "503"))): 1.0,
        ("sessionforce_emulator_requests_total", (("route", "send_message"), ("status", "404"))): 1.0,
        ("sessionforce_emulator_requests_total", (("route", "stream_message"), ("status", "200"))): 1.0,
        ("sessionforce_emulator_requests_total", (("route", "end_session"), ("status", "200"))): 1.0,
    }
    assert samples[("sessionforce_emulator_sessions_active", ())] == 0.0
    assert samples[("sessionforce_emulator_sessions_started_total", ())] == 2.0
    assert samples[("sessionforce_emulator_sessions_ended_total", (("reason", "ended"),))] == 1.0
    assert samples[("sessionforce_emulator_sessions_ended_total", (("reason", "expired"),))] == 1.0
    assert samples[("sessionforce_emulator_turns_total", (("route", "send_message"),))] == 2.0
    assert samples[("sessionforce_emulator_turns_total", (("route", "stream_message"),))] == 1.0
    assert samples[("sessionforce_emulator_faults_injected_total", (("route", "send_message"),))] == 1.0
    assert samples[("sessionforce_emulator_tokens_issued_total", (("format", "jwt"),))] == 1.0
    # Scraping is not a request to the emulated API, and the counters stay where they were.
    assert scrape(emu.url) == samples


def test_each_emulator_has_its_own_registry_and_reset_starts_from_zero(emu: RunningEmulator, wire: Wire) -> None:
    wire.session()
    with run_emulator() as other:
        assert scrape(other.url)[("sessionforce_emulator_sessions_started_total", ())] == 0.0
        assert scrape(other.url)[("sessionforce_emulator_sessions_active", ())] == 0.0
    assert scrape(emu.url)[("sessionforce_emulator_sessions_active", ())] == 1.0
    wire.admin("POST", "/reset")
    after = scrape(emu.url)
    assert after[("sessionforce_emulator_sessions_started_total", ())] == 0.0
    assert not [k for k in after if k[0] == "sessionforce_emulator_requests_total"]
