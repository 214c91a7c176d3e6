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


def test_init_keeps_the_comments_and_other_profiles_of_the_file(cli: Cli, emu: RunningEmulator) -> None:
    cli.config.write_text('# my org settings: ask Sam before changing\ndefault_profile = "old"\n\n'
                          '[profiles.old]  # the sandbox we retire in June\nmy_domain = "https://old.my.salesforce.com"'
                          '  # sandbox\n# the agent we test with\nagent_id = "0XxRM0000000001"\n')
    os.chmod(cli.config, 0o600)
    _init(cli, emu)
    text = cli.config.read_text()
    for kept in ("# my org settings: ask Sam before changing", "# the sandbox we retire in June", "  # sandbox",
                 "# the agent we test with", 'my_domain = "https://old.my.salesforce.com"'):
        assert kept in text
    assert 'default_profile = "emu"' in text
    assert "[profiles.emu]" in text
    assert stat.S_IMODE(os.stat(cli.config).st_mode) == 0o600
    # Replacing a profile (--force) updates it in place: its comments stay, keys not given go.
    again = cli.run("config", "init", "--profile", "old", "--my-domain", "https://new.my.salesforce.com",
                    "--client-id", "x", "--client-secret", "y", "--agent-id", "0XxRM0000000002", "--force")
    assert again.returncode == 0, again.stderr
    text = cli.config.read_text()
    assert "# the sandbox we retire in June" in text
    assert 'my_domain = "https://new.my.salesforce.com"' in text
    assert "old.my.salesforce.com" not in text
    assert "[profiles.emu]" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--my-domain", "acme.my.salesforce.com"],
     "error: Invalid setting: my_domain (from --my-domain): must be an https:// URL"),
    (["--my-domain", "http://acme.my.salesforce.com"],
     "(from --my-domain): must be an https:// URL, e.g. https://acme.my.salesforce.com (http:// only for a local "
     "emulator"),
    (["--my-domain", "https://acme.my.salesforce.com/lightning/page/home"],
     "(from --my-domain): must be the address alone, with no path after the host"),
    (["--agent-id", "hello"], "error: --agent-id 'hello' is not an agent id"),
    (["--store", "foo://bar"], "error: --store: Store URL 'foo://bar' has an unknown scheme 'foo'"),
])
def test_init_names_the_flag_a_bad_value_came_from(cli: Cli, args: list[str], message: str) -> None:
    given = {"--my-domain": "https://acme.my.salesforce.com", "--client-id": "x", "--client-secret": "y",
             "--agent-id": "0XxRM0000000001"}
    given.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = cli.run("config", "init", *[part for pair in given.items() for part in pair])
    assert result.returncode == 2
    assert message in result.stderr
    assert "SF_MY_DOMAIN" not in result.stderr
    assert "SESSIONFORCE_STORE" not in result.stderr
    assert not cli.config.exists()


def test_a_bad_value_from_the_environment_names_the_variable(cli: Cli) -> None:
    cli.env["SF_MY_DOMAIN"] = "http://acme.my.salesforce.com"
    result = cli.run("chat", input="")
    assert result.returncode == 2
    assert result.stderr.startswith("error: Invalid setting: my_domain (from environment variable SF_MY_DOMAIN)")


def test_the_installed_help_points_to_no_missing_file(cli: Cli) -> None:
    result = cli.run("--help")
    assert "Docs: docs/cli.md" not in result.stdout
    assert "--help has examples" in result.stdout


def test_the_default_store_is_private(cli: Cli) -> None:
    del cli.env["SESSIONFORCE_STORE"]
    assert cli.run("chat", input="hello\n").returncode == 0
    db = cli.home / "data" / "sessionforce" / "sessions.db"
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(db.parent).st_mode) == 0o700
    for companion in db.parent.glob("sessions.db-*"):  # SQLite's -wal and -shm follow the file's mode
        assert stat.S_IMODE(os.stat(companion).st_mode) == 0o600


def test_an_unreachable_http_host_is_not_blamed_on_tls(cli: Cli) -> None:
    cli.env.update({"SF_MY_DOMAIN": "http://127.0.0.1:9", "SF_CLIENT_ID": "x", "SF_CLIENT_SECRET": "y",
                    "SF_AGENT_ID": "0XxRM0000000001", "SESSIONFORCE_MAX_RETRIES": "0"})
    result = cli.run("config", "check")
    assert result.returncode == 3
    assert "127.0.0.1:9: Connection refused" in result.stderr
    assert "ssl" not in result.stderr.lower()


def test_show_names_the_store_in_use_wherever_it_comes_from(cli: Cli) -> None:
    cli.env.pop("SESSIONFORCE_STORE", None)
    shown = cli.run("config", "show")
    default_row = next(line for line in shown.stdout.splitlines() if line.startswith("store"))
    assert "sqlite:///" in default_row, shown.stdout
    assert "default" in default_row, shown.stdout
    cli.env["SESSIONFORCE_STORE"] = "redis://:pw-4711-secret@127.0.0.1:6379/3"
    shown = cli.run("config", "show")
    store_row = next(line for line in shown.stdout.splitlines() if line.startswith("store"))
    assert "redis://:***@127.0.0.1:6379/3" in store_row, shown.stdout
    assert "SESSIONFORCE_STORE" in store_row
    assert "pw-4711-secret" not in shown.stdout + shown.stderr
