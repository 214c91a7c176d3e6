"""The ``sessionforce`` CLI as a subprocess, with every user directory confined to a temporary one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["COMMAND", "CliRun", "error_lines"]

COMMAND = [sys.executable, "-m", "sessionforce.cli"]

# What would point the CLI at a real org, at the user's own files, or change its output.
_SCRUB = ("SF_MY_DOMAIN", "SF_CLIENT_ID", "SF_CLIENT_SECRET", "SF_AGENT_ID", "SF_ACCESS_TOKEN",
          "SESSIONFORCE_BASE_URL", "SESSIONFORCE_STORE", "SESSIONFORCE_CONFIG", "SESSIONFORCE_PROFILE",
          "SESSIONFORCE_DEBUG", "FORCE_COLOR", "NO_COLOR")


class CliRun:
    """Runs ``sessionforce`` in ``home`` (HOME and the XDG directories), with a SQLite store there."""

    def __init__(self, home: Path) -> None:
        self.home = home
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        env.update({
            "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
            "XDG_STATE_HOME": str(home / "state"), "XDG_CACHE_HOME": str(home / "cache"),
            "SESSIONFORCE_STORE": f"sqlite:///{home / 'sessions.db'}",
            "SESSIONFORCE_CONFIG": str(home / "config.toml"),
            "PYTHONUNBUFFERED": "1", "PROMPT_TOOLKIT_NO_CPR": "1", "COLUMNS": "100", "TERM": "xterm-256color",
        })
        self.env = env

    def org(self, url: str, *, client_id: str, secret: str, agent_id: str) -> CliRun:
        """Point the CLI at ``url`` (an emulator or the hostile server) through the environment."""
        self.env.update({"SF_MY_DOMAIN": url, "SF_CLIENT_ID": client_id, "SF_CLIENT_SECRET": secret,
                         "SF_AGENT_ID": agent_id, "SESSIONFORCE_BASE_URL": url})
        return self

    def run(self, *args: str, input: bytes | None = None, timeout: float = 25,
            preexec: Callable[[], Any] | None = None, stdin: Any = None) -> subprocess.CompletedProcess[str]:
        """Run one command to completion; output decoded as UTF-8 with replacement."""
        done = subprocess.run([*COMMAND, *args], input=input, stdin=stdin, capture_output=True, env=self.env,
                              timeout=timeout, check=False, preexec_fn=preexec)
        return subprocess.CompletedProcess(done.args, done.returncode,
                                           done.stdout.decode("utf-8", "replace"),
                                           done.stderr.decode("utf-8", "replace"))


def error_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` that report an error."""
    return [line for line in stderr.splitlines() if line.strip().lower().startswith("error")]
