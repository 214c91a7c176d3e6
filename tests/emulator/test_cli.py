"""``sessionforce emulator`` in a real subprocess: what it prints, that it serves, how it fails."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sessionforce.emulator import DEMO_AGENT_ID

SCRIPT = Path(sys.executable).with_name("sessionforce")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-c", "from sessionforce.cli.app import main; main()"]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    agents = tmp_path / "agents.yaml"
    agents.write_text("agents:\n  - {id: 0XxCLI000000000001, name: Cli Bot}\n  - {name: Other Bot}\n")
    process = subprocess.Popen([*COMMAND, "emulator", "--port", "0", "--agents", str(agents), "--client-id", "cid",
                                "--client-secret", "csecret", "--idle-timeout", "30"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            break
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_cli_prints_url_credentials_and_agents_then_serves(running: tuple[subprocess.Popen[str], list[str]]) -> None:
    process, lines = running
    text = "\n".join(lines)
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text)
    assert match, text
    url = match.group(1)
    assert "client id:     cid" in text
    assert "client secret: csecret" in text
    assert "0XxCLI000000000001  Cli_Bot  Cli Bot  (default)" in text
    assert "Other Bot" in text
    token = httpx.post(f"{url}/services/oauth2/token",
                       data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"})
    assert token.status_code == 200
    assert token.json()["api_instance_url"] == url
    agents = httpx.get(f"{url}/__emulator/agents").json()["agents"]
    assert next(a["id"] for a in agents) == "0XxCLI000000000001"
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 0


@pytest.mark.parametrize(("option", "content", "fragment"), [
    ("--agents", "agents: [{name: A, topics: [{keywords: [x], steps: [{infrom: hi}]}]}]", "steps[0]"),
    ("--faults", "rules: [{route: nowhere, status: 500}]", "rules[0].route"),
    ("--agents", "agents: [unclosed", "not valid YAML"),
])
def test_bad_files_give_one_clear_line_and_exit_2(tmp_path: Path, option: str, content: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = subprocess.run([*COMMAND, "emulator", "--port", "0", option, str(path)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: ")
    assert str(path) in line
    assert fragment in line


def test_default_agent_is_the_demo(tmp_path: Path) -> None:
    process = subprocess.Popen([*COMMAND, "emulator", "--port", "0"], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    try:
        lines = [next(process.stdout) for _ in range(5)]
        assert DEMO_AGENT_ID in "".join(lines)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)  # a loaded CI machine has taken over 10 s to shut down an idle emulator


@pytest.mark.parametrize(("args", "fragment"), [
    (["--port", "99999"], "--port"),
    (["--port", "-1"], "--port"),
    (["--idle-timeout", "-1"], "--idle-timeout"),
    (["--idle-timeout", "0"], "--idle-timeout"),
    (["--token-ttl", "nan"], "--token-ttl"),
    (["--request-timeout", "inf"], "--request-timeout"),
    (["--max-sessions", "0"], "--max-sessions"),
])
def test_bad_settings_exit_2_naming_the_option(args: list[str], fragment: str) -> None:
    result = subprocess.run([*COMMAND, "emulator", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr
    assert "listening" not in result.stdout
