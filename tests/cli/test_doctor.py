"""``sessionforce doctor`` in a real subprocess against the emulator: for each failure mode of issue 14 it
names the right cause and fix, exits with the documented code, and prints nothing secret."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sessionforce.emulator import RunningEmulator, run_emulator
from tests.cli.conftest import Cli

SECRET = f"planted-secret-{uuid.uuid4().hex}"
AGENTS: list[dict[str, Any]] = [
    {"id": "0XxSVC000000000001", "name": "Service Assistant", "api_name": "Service_Assistant"},
    {"id": "0XxEMP000000000001", "name": "Helpdesk", "type": "employee"},
    {"id": "0XxBRK000000000001", "name": "Broken", "invalid_config": True},
    {"id": "0XxOFF000000000001", "name": "Retired", "active": False},
]


@pytest.fixture(scope="module")
def org() -> Iterator[RunningEmulator]:
    with run_emulator(agents=AGENTS, client_secret=SECRET, strict=True) as emu:
        yield emu


def doctor(cli: Cli, emu: RunningEmulator, agent: str, *args: str, **env: str) -> tuple[int, str, dict[str, Any]]:
    """Run ``doctor --json`` and plain ``doctor``; both must agree. (exit code, plain output, JSON report)."""
    cli.with_org(emu, secret=env.pop("secret", SECRET))
    cli.env.update({"SF_AGENT_ID": agent, **env})
    plain = cli.run("doctor", *args)
    as_json = cli.run("doctor", "--json", *args)
    assert plain.returncode == as_json.returncode, plain.stdout + plain.stderr
    report = json.loads(as_json.stdout)
    assert report["exit_code"] == as_json.returncode
    output = plain.stdout + plain.stderr + as_json.stdout + as_json.stderr
    assert "Traceback" not in output
    assert SECRET not in output
    for token in emu.call(lambda state: list(state.tokens)):  # every token the runs were given
        assert token not in output
        assert token[-40:] not in output
    return plain.returncode, plain.stdout + plain.stderr, report


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def failed(report: dict[str, Any]) -> dict[str, Any]:
    [check] = [c for c in report["checks"] if c["status"] == "failed"]
    return dict(check)


@pytest.mark.parametrize("agent", ["Service_Assistant", "Service Assistant", "0XxSVC000000000001", "Helpdesk"])
def test_a_working_setup_passes_every_check(cli: Cli, org: RunningEmulator, agent: str) -> None:
    code, output, report = doctor(cli, org, agent)
    assert code == 0
    assert report["ok"] is True
    assert set(statuses(report).values()) == {"ok"}
    assert "The setup works." in output
    assert "JSON Web Token" in output
    employee = agent == "Helpdesk"
    assert f"bypassUser={'false' if employee else 'true'}" in output


@pytest.mark.parametrize(("agent", "args", "step", "cause", "fix", "code"), [
    ("Nope", (), "agent", "no agent in the org has this API name", "Setup > Agents", 2),
    ("0XxNOSUCHAGENT0000", (), "agent", "no agent with this id is active", "Setup > Agents", 2),
    ("Retired", (), "agent", "has no active version", "activate the agent", 1),
    ("0XxEMP000000000001", (), "agent_type", "employee agent", "bypass_user=False", 1),
    ("Helpdesk", ("--bypass-user",), "agent_type", "employee agent", "bypass_user=False", 1),
    ("Broken", (), "session", "planner configuration is broken", "Agentforce Builder", 1),
])
def test_each_failure_names_its_cause_and_fix(cli: Cli, org: RunningEmulator, agent: str, args: tuple[str, ...],
                                              step: str, cause: str, fix: str, code: int) -> None:
    exit_code, output, report = doctor(cli, org, agent, *args)
    assert exit_code == code
    check = failed(report)
    assert check["name"] == step
    assert cause in check["cause"]
    assert fix in check["fix"]
    assert f"cause: {check['cause']}" in " ".join(output.split())
    later = [c["status"] for c in report["checks"]][[c["name"] for c in report["checks"]].index(step) + 1:]
    assert set(later) <= {"skipped"}


def test_engine_config_lookup_from_the_session_start(cli: Cli, org: RunningEmulator) -> None:
    org.set_faults({"rules": [{"route": "start_session", "error": "engine_config"}]})
    try:
        code, _, report = doctor(cli, org, "Service_Assistant")
    finally:
        org.set_faults(None)
    assert code == 1
    check = failed(report)
    assert (check["name"], check["cause"].split(" (")[0]) == ("session", "instanceConfig.endpoint")
    assert "Setup > My Domain" in check["fix"]


def test_an_opaque_token_is_caught_before_any_session(cli: Cli) -> None:
    with run_emulator(token_format="opaque", client_secret=SECRET) as emu:
        code, _, report = doctor(cli, emu, emu.default_agent_id)
        assert emu.counters()["requests"].get("start_session 404") is None  # it never got that far
    assert code == 1
    check = failed(report)
    assert check["name"] == "jwt"
    assert "opaque" in check["cause"]
    assert "JWT)-based access tokens" in check["fix"]


def test_wrong_credentials_exit_3_without_echoing_the_secret(cli: Cli, org: RunningEmulator) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    code, output, report = doctor(cli, org, "Service_Assistant", secret=wrong)
    assert code == 3
    assert wrong not in output
    assert failed(report)["name"] == "token"
    assert statuses(report)["my_domain"] == "ok"


def test_an_unreachable_my_domain_exits_3(cli: Cli, org: RunningEmulator) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        code, _, report = doctor(cli, org, "Service_Assistant", SF_MY_DOMAIN=f"http://127.0.0.1:{port}")
    assert code == 3
    check = failed(report)
    assert check["name"] == "my_domain"
    assert "SF_MY_DOMAIN" in check["fix"]


def test_a_sandbox_api_host_from_the_token_and_a_base_url_that_is_the_my_domain(cli: Cli) -> None:
    with run_emulator(separate_api_host=True, client_secret=SECRET, strict=True) as emu:
        code, output, report = doctor(cli, emu, emu.default_agent_id)
        assert code == 0, output
        assert f"{emu.api_url} (from the token's api_instance_url)" in output
        code, _, report = doctor(cli, emu, emu.default_agent_id, SESSIONFORCE_BASE_URL=emu.url)
    assert code == 1
    check = failed(report)
    assert check["name"] == "api_host"
    assert "SESSIONFORCE_BASE_URL" in check["fix"]


def test_with_nothing_configured_it_says_what_to_do(cli: Cli) -> None:
    result = cli.run("doctor")
    assert result.returncode == 2
    assert "no org configured" in result.stderr
    assert "SF_MY_DOMAIN" in result.stderr
