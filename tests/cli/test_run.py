"""``sessionforce run``: a YAML suite with one passing and one failing conversation, JUnit XML, bad input."""

from __future__ import annotations

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


def test_the_suite_in_docs_cli_md_is_valid(tmp_path: Path) -> None:
    import re

    from sessionforce.cli.scenario import load_suite

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    block = re.search(r"```yaml\n(agent:.*?)```", doc, re.DOTALL)
    assert block
    path = tmp_path / "doc.yaml"
    path.write_text(block.group(1))
    suite = load_suite(path)
    assert suite.conversations[0].turns[0].expect.contains == ["Tuesday"]
    assert suite.conversations[0].turns[3].answer == "yes"
