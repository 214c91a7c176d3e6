"""docs/cli.md's exit-code table, row by row: each documented code triggered the way a user would, with the
installed ``sessionforce``, by every command that can end that way."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sessionforce.emulator import RunningEmulator
from tests.cli.conftest import COMMAND, Cli

ROOT = Path(__file__).resolve().parents[2]

PASSING = "conversations:\n  - name: hours\n    turns:\n      - say: what are your opening hours?\n"
FAILING = PASSING + "        expect: {contains: brunch}\n"
NOPE = "0XxNOPE00000000001"  # an agent id of the right shape that no org has


def documented_codes() -> dict[int, str]:
    """The rows of the table under "## Exit codes" in docs/cli.md: code -> meaning."""
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = doc.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)}


@dataclass
class Case:
    """One way a user ends up with one exit code."""

    code: int
    name: str
    run: Callable[[Cli, RunningEmulator, Path], subprocess.CompletedProcess[str]]


def _suite(tmp: Path, text: str, name: str = "suite.yaml") -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _stored(cli: Cli, tmp: Path) -> str:
    """A conversation in the CLI's store (made by a piped chat, as a user would)."""
    done = cli.run("chat", "--conversation", "kept", "--new", input="hi\n")
    assert done.returncode == 0, done.stderr
    return "kept"


def _interrupted_run(cli: Cli, emu: RunningEmulator, tmp: Path) -> subprocess.CompletedProcess[str]:
    agents = tmp / "slow.yaml"
    agents.write_text("agents:\n  - name: Slow\n    latency_ms: 20000\n    fallback: late\n")
    process = subprocess.Popen([*COMMAND, "run", _suite(tmp, PASSING), "--emulator-agents", str(agents)],
                               env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)  # the built-in emulator is up and the turn is on its way (it takes 20 s)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


CASES = [
    Case(0, "chat-ended-by-end-of-input", lambda cli, emu, tmp: cli.run("chat", input="hello\n")),
    Case(0, "chat-quit", lambda cli, emu, tmp: cli.run("chat", input="hello\n/quit\nnot sent\n")),
    Case(0, "run-all-passed", lambda cli, emu, tmp: cli.run("run", _suite(tmp, PASSING))),
    Case(1, "run-expectation-failed", lambda cli, emu, tmp: cli.run("run", _suite(tmp, FAILING))),
    Case(1, "run-server-failed", lambda cli, emu, tmp: (
        emu.set_faults({"rules": [{"route": "start_session", "status": 500}]}),
        cli.with_org(emu).run("run", _suite(tmp, PASSING)))[1]),
    Case(2, "usage-error", lambda cli, emu, tmp: cli.run("run", "--concurrency", "0", "x.yaml")),
    Case(2, "bad-suite", lambda cli, emu, tmp: cli.run("run", _suite(tmp, "conversations: [\n"))),
    Case(2, "suite-unknown-message-type", lambda cli, emu, tmp: cli.run(
        "run", _suite(tmp, PASSING + "        expect: {type: Informm}\n"))),
    Case(2, "suite-nested-too-deep", lambda cli, emu, tmp: cli.run(
        "run", _suite(tmp, "conversations: " + "[" * 5000 + "]" * 5000 + "\n"))),
    Case(2, "suite-too-large", lambda cli, emu, tmp: cli.run("run", "/dev/zero")),
    Case(2, "bad-config-file", lambda cli, emu, tmp: (cli.config.write_text("[profiles\n"),
                                                      cli.run("config", "show"))[1]),
    Case(2, "unknown-profile", lambda cli, emu, tmp: cli.run("chat", "--profile", "nope", input="")),
    Case(2, "invalid-setting", lambda cli, emu, tmp: (cli.env.update({"SF_MY_DOMAIN": "acme.my.salesforce.com"}),
                                                      cli.run("config", "check"))[1]),
    Case(2, "config-init-agent-id", lambda cli, emu, tmp: cli.run(
        "config", "init", "--my-domain", "https://acme.my.salesforce.com", "--client-id", "x",
        "--client-secret", "y", "--agent-id", "hello")),
    Case(2, "run-bad-store-url", lambda cli, emu, tmp: cli.run("run", _suite(tmp, PASSING), "--store", "foo://bar")),
    Case(2, "chat-bad-store-url", lambda cli, emu, tmp: cli.run("chat", "--store", "foo://bar", input="")),
    Case(2, "sessions-bad-store-url", lambda cli, emu, tmp: cli.run("sessions", "list", "--store", "foo://bar")),
    Case(2, "sessions-show-unknown-id", lambda cli, emu, tmp: cli.run("sessions", "show", "nope")),
    Case(2, "sessions-export-unknown-id", lambda cli, emu, tmp: cli.run("sessions", "export", "nope")),
    Case(2, "sessions-end-unknown-id", lambda cli, emu, tmp: cli.run("sessions", "end", "nope")),
    Case(2, "sessions-end-unknown-id-with-org", lambda cli, emu, tmp: cli.with_org(emu).run("sessions", "end", "nope")),
    Case(2, "chat-unknown-conversation", lambda cli, emu, tmp: cli.run("chat", "-c", "does-not-exist", input="hi\n")),
    Case(2, "chat-new-existing-conversation", lambda cli, emu, tmp: cli.run(
        "chat", "-c", _stored(cli, tmp), "--new", input="hi\n")),
    Case(2, "run-unknown-agent", lambda cli, emu, tmp: cli.run("run", _suite(tmp, PASSING), "--agent", NOPE)),
    Case(2, "run-unknown-agent-on-org", lambda cli, emu, tmp: cli.with_org(emu).run(
        "run", _suite(tmp, PASSING), "--agent", NOPE)),
    Case(2, "chat-unknown-agent", lambda cli, emu, tmp: cli.run("chat", "--agent", NOPE, input="hi\n")),
    Case(2, "config-check-unknown-agent", lambda cli, emu, tmp: (
        cli.with_org(emu).env.update({"SF_AGENT_ID": NOPE}), cli.run("config", "check"))[1]),
    Case(2, "run-junit-unwritable", lambda cli, emu, tmp: cli.run(
        "run", _suite(tmp, PASSING), "--junit", "/proc/nope/x.xml")),
    Case(2, "run-output-dir-unwritable", lambda cli, emu, tmp: cli.run(
        "run", _suite(tmp, PASSING), "--output-dir", "/proc/nope")),
    Case(2, "export-unwritable", lambda cli, emu, tmp: cli.run(
        "sessions", "export", _stored(cli, tmp), "-o", "/proc/nope/x.jsonl")),
    Case(2, "chat-input-not-utf8", lambda cli, emu, tmp: subprocess.run(
        [*COMMAND, "chat"], input=b"hello\n\xff\xfe caf\xe9\nnot sent\n", capture_output=True, env=cli.env,
        timeout=30, check=False)),
    Case(2, "chat-stdin-closed", lambda cli, emu, tmp: subprocess.run(
        f"exec {' '.join(COMMAND)} chat <&-", shell=True, capture_output=True, env=cli.env, timeout=30,
        check=False)),
    Case(3, "run-unreachable", lambda cli, emu, tmp: (
        cli.env.update({"SF_MY_DOMAIN": "http://127.0.0.1:9", "SF_CLIENT_ID": "x", "SF_CLIENT_SECRET": "y",
                        "SF_AGENT_ID": NOPE, "SESSIONFORCE_MAX_RETRIES": "0"}),
        cli.run("run", _suite(tmp, PASSING)))[1]),
    Case(3, "chat-unreachable", lambda cli, emu, tmp: (
        cli.env.update({"SF_MY_DOMAIN": "http://127.0.0.1:9", "SF_CLIENT_ID": "x", "SF_CLIENT_SECRET": "y",
                        "SF_AGENT_ID": NOPE, "SESSIONFORCE_MAX_RETRIES": "0"}),
        cli.run("chat", input="hi\n"))[1]),
    Case(3, "config-check-refused", lambda cli, emu, tmp: cli.with_org(emu, secret="wrong").run("config", "check")),
    Case(3, "sessions-end-without-org", lambda cli, emu, tmp: cli.run("sessions", "end", _stored(cli, tmp))),
    Case(3, "store-unreachable", lambda cli, emu, tmp: cli.run("sessions", "list", "--store", "redis://127.0.0.1:9/0")),
    Case(130, "run-interrupted", _interrupted_run),
]


def test_every_documented_code_has_cases_and_every_case_is_documented() -> None:
    assert set(documented_codes()) == {case.code for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.code}-{c.name}" for c in CASES])
def test_exit_code(case: Case, cli: Cli, emu: RunningEmulator, tmp_path: Path) -> None:
    done = case.run(cli, emu, tmp_path)
    err = done.stderr if isinstance(done.stderr, str) else done.stderr.decode("utf-8", "replace")
    out = done.stdout if isinstance(done.stdout, str) else done.stdout.decode("utf-8", "replace")
    assert done.returncode == case.code, f"{case.name}: exit {done.returncode}\n{out}\n{err}"
    assert "Traceback" not in err + out
    assert "unexpected" not in err
    if case.code in (2, 3) and not case.name.startswith("chat-input"):
        errors = [line for line in err.splitlines() if line.startswith(("error:", "Error:"))]
        assert len(errors) == 1, f"{case.name}: one error line, not:\n{err}"


def test_output_cut_short_by_its_reader_ends_quietly(cli: Cli) -> None:
    """`sessionforce ... | head -c 600`: no "Broken pipe" message, exit 1 (as Python advises for EPIPE)."""
    lines = "".join(f"warranty {n}?\n" for n in range(150))
    assert cli.run("chat", "-c", "long", "--new", input=lines, timeout=60).returncode == 0
    for command in ("sessions show long --json", "sessions show long", "sessions export long", "sessions list"):
        done = subprocess.run(f"{' '.join(COMMAND)} {command} | head -c 600", shell=True, capture_output=True,
                              env=cli.env, timeout=30, executable="/bin/bash", check=False)
        assert len(done.stdout) == 600 or command == "sessions list", command
        assert done.stderr == b"", f"{command}: {done.stderr!r}"
    status = subprocess.run(f"set -o pipefail; {' '.join(COMMAND)} sessions show long --json | head -c 600 "
                            ">/dev/null", shell=True, env=cli.env, timeout=30, executable="/bin/bash", check=False)
    assert status.returncode == 1
