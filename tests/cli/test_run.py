"""``sessionforce run``: a YAML suite with one passing and one failing conversation, JUnit XML, bad input."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from sessionforce.emulator import RunningEmulator
from tests.cli.conftest import Cli

SUITE = """\
vars: {day: Tuesday}
conversations:
  - name: booking a repair
    turns:
      - say: "What are your opening hours?"
        expect: {contains: "${day}", type: Inform}
      - say: "book a repair"
        expect: {type: Inquire, awaiting: input}
      - answer: "2026-12-01"
        expect: {type: Confirm, contains: "2026-12-01"}
      - answer: "yes"
        expect: {action: BookRepair}
      - say: 42
        expect: {contains: "You said: 42"}
      - say: "warranty?"
        expect: {citation: true, regex: "90-day"}
      - say: "talk to a human"
        expect: {escalation: true}
  - name: brunch hours
    turns:
      - say: "What are your opening hours?"
        expect: {contains: "Tuesday"}
      - say: "And brunch?"
        expect: {contains: "Sunday brunch"}
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    return path


def test_one_pass_one_failure_exits_1_with_junit(cli: Cli, suite: Path, tmp_path: Path) -> None:
    junit = tmp_path / "reports" / "junit.xml"
    result = cli.run("run", str(suite), "--junit", str(junit), "--concurrency", "2")
    assert result.returncode == 1, result.stderr
    assert "No org configured: running against the built-in emulator" in result.stderr
    assert "1 passed, 1 failed" in result.stdout
    assert "turn 2 (say 'And brunch?'): expected contains 'Sunday brunch'" in result.stdout
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["booking a repair"].find("failure") is None
    failure = cases["brunch hours"].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("turn 2 (say 'And brunch?'): expected contains 'Sunday brunch'")


def test_against_an_org_every_session_is_ended(cli: Cli, suite: Path, emu: RunningEmulator) -> None:
    suite.write_text(SUITE.split("  - name: brunch hours")[0])
    result = cli.with_org(emu).run("run", str(suite))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No org configured" not in result.stderr
    sessions = httpx.get(f"{emu.url}/__emulator/sessions").json()["sessions"]
    assert [s["state"] for s in sessions] == ["ended"]


@pytest.mark.parametrize(("text", "message"), [
    ("conversations:\n  - name: x\n    turns:\n      - say: [a, b]\n",
     "conversations[0].turns[0]: 'say' must be a string"),
    ("conversations:\n  - name: x\n    turns:\n      - {say: hi, answer: yes}\n",
     "conversations[0].turns[0]: a turn has exactly one of 'say' or 'answer'"),
    ("conversations:\n  - name: x\n    turns:\n      - say: hi\n        expect: {colour: red}\n",
     "conversations[0].turns[0].expect: 'colour' is not a known key"),
    ("conversations:\n  - name: x\n    turns:\n      - say: ${nope}\n",
     "unknown variable (define it under 'vars') 'nope'"),
    ("conversations: [\n", "line 2: not valid YAML"),
    ("conversations:\n  - name: x\n    turns:\n      - say: hi\n        expect: {type: Informm}\n",
     "conversations[0].turns[0].expect: 'type' names an unknown message type 'Informm' (did you mean 'Inform'?)"),
    ("conversations:\n  - name: x\n    turns: [{say: hi}]\n  - name: x\n    turns: [{say: ho}]\n",
     "conversations[1]: the name 'x' is also the name of conversations[0]"),
    ("conversations:\n  - name: x\n    turns:\n      - say: hi\n        expect: {regex: '${pattern}'}\n"
     "vars: {pattern: '(unclosed'}\n", "conversations[0].turns[0].expect: 'regex' is not a valid regular expression"),
])
def test_bad_suite_is_a_usage_error_naming_file_and_place(cli: Cli, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = cli.run("run", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_org_exits_3(cli: Cli, suite: Path) -> None:
    cli.env.update({"SF_MY_DOMAIN": "http://127.0.0.1:9", "SF_CLIENT_ID": "x", "SF_CLIENT_SECRET": "y",
                    "SF_AGENT_ID": "0Xx000000000000001", "SESSIONFORCE_MAX_RETRIES": "0"})
    result = cli.run("run", str(suite))
    assert result.returncode == 3, result.stdout + result.stderr


def test_a_run_leaves_nothing_in_the_store_unless_asked(cli: Cli, suite: Path, tmp_path: Path) -> None:
    assert cli.run("run", str(suite)).returncode == 1
    assert "No conversations in the store" in cli.run("sessions", "list").stdout
    kept = f"sqlite:///{tmp_path / 'kept.db'}"
    assert cli.run("run", str(suite), "--store", kept).returncode == 1
    listed = cli.run("sessions", "list", "--store", kept, "--json")
    names = sorted(r["conversation_id"].rsplit("-", 1)[0] for r in json.loads(listed.stdout))
    assert names == ["run-booking-a-repair", "run-brunch-hours"]


def test_json_results_and_a_transcript_per_conversation(cli: Cli, suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "transcripts"
    result = cli.run("run", str(suite), "--json", "--output-dir", str(out))
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert (data["passed"], data["failed"], data["errors"], data["exit_code"]) == (1, 1, 0, 1)
    by_name = {c["name"]: c for c in data["conversations"]}
    assert by_name["booking a repair"]["status"] == "passed"
    assert by_name["brunch hours"]["failure"].startswith("turn 2 (say 'And brunch?')")
    for conversation in data["conversations"]:
        path = Path(conversation["transcript"])
        assert path.parent == out
        assert path.name == f"{conversation['conversation_id']}.jsonl"
        entries = [json.loads(line) for line in path.read_text().splitlines()]
        assert entries[0]["kind"] == "session_started"
        assert entries[-1]["kind"] == "session_ended"
        assert sum(e["kind"] == "turn" for e in entries) == conversation["passed_turns"] + (
            conversation["status"] == "failed")


def test_an_unwritable_output_fails_before_any_turn(cli: Cli, suite: Path, emu: RunningEmulator) -> None:
    result = cli.with_org(emu).run("run", str(suite), "--junit", "/proc/nope/junit.xml")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: cannot write JUnit XML to /proc/nope/junit.xml: No such file or " \
        "directory (/proc/nope)."
    assert httpx.get(f"{emu.url}/__emulator/sessions").json()["sessions"] == []


def test_a_bad_store_url_is_one_error_before_any_turn(cli: Cli, suite: Path, emu: RunningEmulator) -> None:
    result = cli.with_org(emu).run("run", str(suite), "--store", "foo://bar")
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1
    assert result.stderr.startswith("error: --store: Store URL 'foo://bar'")
    assert httpx.get(f"{emu.url}/__emulator/sessions").json()["sessions"] == []
