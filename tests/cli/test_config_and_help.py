"""``sessionforce config init|show|check``, ``--help`` on every command, ``--version``, and short errors."""

from __future__ import annotations

import os
import stat

import pytest

from sessionforce._version import __version__
from sessionforce.emulator import RunningEmulator
from tests.cli.conftest import Cli

SECRET = "emulator-secret"


def _init(cli: Cli, emu: RunningEmulator, *extra: str) -> None:
    result = cli.run("config", "init", "--profile", "emu", "--my-domain", emu.url, "--client-id", emu.client_id,
                     "--client-secret", emu.client_secret, "--agent-id", emu.default_agent_id, "--default", *extra)
    assert result.returncode == 0, result.stderr


def test_init_show_check_with_a_profile(cli: Cli, emu: RunningEmulator) -> None:
    _init(cli, emu)
    assert stat.S_IMODE(os.stat(cli.config).st_mode) == 0o600
    shown = cli.run("config", "show")
    assert shown.returncode == 0, shown.stderr
    assert "profile emu" in shown.stdout
    assert "set (hidden)" in shown.stdout
    assert SECRET not in shown.stdout + shown.stderr
    checked = cli.run("config", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "token fetched" in checked.stdout
    assert "The setup works." in checked.stdout
    # The environment wins over the profile.
    cli.env["SF_AGENT_ID"] = "0XxOVERRIDE0000001"
    assert "environment (SF_AGENT_ID)" in cli.run("config", "show").stdout
    # Writing the same profile again needs --force.
    again = cli.run("config", "init", "--profile", "emu", "--my-domain", emu.url, "--client-id", "x",
                    "--client-secret", "y", "--agent-id", "z")
    assert again.returncode == 2
    assert "--force" in again.stderr


def test_wrong_secret_exits_3_in_one_line_without_the_secret(cli: Cli, emu: RunningEmulator) -> None:
    wrong = "not-the-secret-4711"
    cli.with_org(emu, secret=wrong)
    result = cli.run("config", "check")
    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: The token endpoint refused the client credentials")
    assert wrong not in result.stdout + result.stderr


def test_a_config_file_others_can_read_gets_a_warning(cli: Cli, emu: RunningEmulator) -> None:
    _init(cli, emu)
    os.chmod(cli.config, 0o644)
    result = cli.run("config", "show")
    assert f"warning: {cli.config} is readable by other users" in result.stderr


def test_check_with_nothing_configured_says_what_to_do(cli: Cli) -> None:
    result = cli.run("config", "check")
    assert result.returncode == 2
    assert "sessionforce config init" in result.stderr


def test_unknown_profile_is_a_config_error(cli: Cli) -> None:
    result = cli.run("chat", "--profile", "nope")
    assert result.returncode == 2
    assert result.stderr.startswith("error: No profile 'nope'")


@pytest.mark.parametrize("command", [
    [], ["chat"], ["run"], ["emulator"], ["sessions"], ["sessions", "list"], ["sessions", "show"],
    ["sessions", "end"], ["sessions", "reap"], ["sessions", "export"], ["config"], ["config", "init"],
    ["config", "show"], ["config", "check"], ["doctor"],
])
def test_help_on_every_command(cli: Cli, command: list[str]) -> None:
    result = cli.run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: sessionforce" in result.stdout
    if command and command[0] in ("chat", "run", "sessions", "config", "doctor") and command != ["sessions"] \
            and command != ["config"]:
        assert "Example" in result.stdout
    if not command:
        assert "Exit codes" in result.stdout


def test_version(cli: Cli) -> None:
    result = cli.run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"sessionforce {__version__}"


def test_debug_shows_the_traceback(cli: Cli) -> None:
    plain = cli.run("sessions", "show", "nope")
    assert "Traceback" not in plain.stderr
    debug = cli.run("--debug", "sessions", "show", "nope")
    assert "Traceback" in debug.stderr
    assert debug.returncode == 2
