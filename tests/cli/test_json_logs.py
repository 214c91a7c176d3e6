"""``sessionforce --log-format json``: the library's records as one JSON object per stderr line, from a real
CLI process, with the correlation keys of the turn each was logged in."""

from __future__ import annotations

import json
from typing import Any

from sessionforce.emulator import RunningEmulator
from tests.cli.conftest import Cli


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_json_logs_of_a_resumed_chat_carry_the_correlation_keys(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    result = cli.run("--log-format", "json", "chat", "--no-stream", "--conversation", "json-logs", "--new",
                     input="hello\n/expire\nwhat are your opening hours?\n")
    assert result.returncode == 0, result.stderr
    records = _json_lines(result.stderr)
    assert [r["message"] for r in records] == [
        "session started", "session expired (404); starting a new one and resending",
        "session started (resuming: expired)"]
    first, expired, resumed = records
    for record in records:
        assert record["level"] == "info"
        assert record["logger"] == "sessionforce.conversation"
        assert record["conversation_id"] == "json-logs"
        assert record["time"].endswith("Z")
        assert "trace_id" not in record  # no tracer provider: no span is current
    sessions = [s["sessionId"] for s in emu.call(lambda state: [x.summary() for x in state.sessions.values()])]
    assert set(first) == {"time", "level", "logger", "message", "conversation_id", "external_session_key",
                          "session_id", "agent_id"}
    assert first["session_id"] == sessions[0]
    assert expired["session_id"] == sessions[0]
    assert expired["sequence_id"] == 2
    assert resumed["session_id"] == sessions[1]
    assert resumed["external_session_key"] != first["external_session_key"]  # each session its own key


def test_text_stays_the_default_and_a_bad_format_is_a_usage_error(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    plain = cli.run("chat", "--no-stream", "--conversation", "text-logs", "--new", input="hello\n")
    assert plain.returncode == 0, plain.stderr
    assert not _json_lines(plain.stderr)
    assert "session started" not in plain.stderr  # info records are not shown in text mode
    wrong = cli.run("--log-format", "xml", "chat", input="hello\n")
    assert wrong.returncode == 2
    assert "Invalid value for '--log-format': must be text or json" in wrong.stderr
