"""The CLI, driven as a user drives it: a real subprocess, with every user directory in a temporary one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionforce.emulator import RunningEmulator, run_emulator
from sessionforce.emulator.pytest_plugin import emulator_strict

_SCRIPT = Path(sys.executable).parent / "sessionforce"
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "sessionforce.cli"]
"""The installed ``sessionforce`` script, as a user runs it (``python -m sessionforce.cli`` only without one)."""

# Variables that would point the CLI at a real org or at the user's own files.
_SCRUB = ("SF_MY_DOMAIN", "SF_CLIENT_ID", "SF_CLIENT_SECRET", "SF_AGENT_ID", "SF_ACCESS_TOKEN",
          "SESSIONFORCE_BASE_URL", "SESSIONFORCE_STORE", "SESSIONFORCE_CONFIG", "SESSIONFORCE_PROFILE",
          "SESSIONFORCE_DEBUG", "FORCE_COLOR", "NO_COLOR")


class Cli:
    """Runs ``sessionforce`` with an environment confined to a temporary directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.store_url = f"sqlite:///{home / 'sessions.db'}"
        self.config = home / "config.toml"
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        env.update({
            "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
            "XDG_STATE_HOME": str(home / "state"), "XDG_CACHE_HOME": str(home / "cache"),
            "SESSIONFORCE_STORE": self.store_url, "SESSIONFORCE_CONFIG": str(self.config),
            "PYTHONUNBUFFERED": "1", "PROMPT_TOOLKIT_NO_CPR": "1", "COLUMNS": "100", "TERM": "xterm-256color",
        })
        self.env = env

    def with_org(self, emu: RunningEmulator, *, secret: str | None = None) -> Cli:
        """Point the CLI at ``emu`` through the environment, as a user with an org would."""
        self.env.update({"SF_MY_DOMAIN": emu.url, "SF_CLIENT_ID": emu.client_id,
                         "SF_CLIENT_SECRET": secret or emu.client_secret, "SF_AGENT_ID": emu.default_agent_id})
        return self

    def run(self, *args: str, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run one command to completion."""
        return subprocess.run([*COMMAND, *args], input=input, capture_output=True, text=True, env=self.env,
                              timeout=timeout, check=False)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI with no org configured and every user directory under ``tmp_path``."""
    return Cli(tmp_path)


@pytest.fixture
def emu(request: pytest.FixtureRequest) -> Iterator[RunningEmulator]:
    """An emulator in the test process, so the test can look at its state while the CLI talks to it
    (strict, per the fixture flag: the CLI is held to the documented shapes too)."""
    with run_emulator(strict=emulator_strict(request)) as running:
        yield running
