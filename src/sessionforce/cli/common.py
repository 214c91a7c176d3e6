"""What the commands share: consoles, the org-or-emulator target, and the store."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sessionforce.cli.errors import EXIT_UNREACHABLE, CliError

if TYPE_CHECKING:
    from rich.console import Console

    from sessionforce.config import ClientSettings, Resolved
    from sessionforce.emulator import RunningEmulator

__all__ = ["Target", "err_console", "open_target", "out_console", "resolve_settings"]

PROFILE_HELP = "Profile from the config file (see `sessionforce config`); default: SESSIONFORCE_PROFILE or 'default'."
STORE_HELP = "Session store URL (sqlite:///path.db, redis://..., memory://); default: SESSIONFORCE_STORE, the " \
    "profile's store, else the default SQLite file."


def out_console() -> Console:
    """The stdout console: colours only on a terminal (or with FORCE_COLOR), no line wrapping of data."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped output is for scripts and files: one line per item, never cut at an imagined 80 columns.
        console.soft_wrap = True
        console.width = max(console.width, 250)
    return console


def err_console() -> Console:
    """The stderr console, for progress, warnings and quiet status lines."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    console.soft_wrap = not console.is_terminal
    return console


def resolve_settings(profile: str | None, *, agent: str | None = None, store: str | None = None) -> Resolved:
    """Settings by precedence (arguments > environment > profile); warns about a config file others can read."""
    from sessionforce.config import config_path, permission_warning, resolve

    warning = permission_warning(config_path())
    if warning:
        print(warning, file=sys.stderr)
    return resolve(profile, store=store, agent_id=agent)


@dataclass
class Target:
    """Where turns go: a configured org, or the built-in emulator started for this command."""

    settings: ClientSettings
    store_url: str | None
    emulator: RunningEmulator | None
    profile: str | None

    @property
    def embedded(self) -> bool:
        """Whether this is the built-in emulator, started in this process."""
        return self.emulator is not None

    @property
    def admin_url(self) -> str | None:
        """The emulator admin root when the target is an emulator on loopback (embedded or not)."""
        if self.emulator is not None:
            return self.emulator.url + "/__emulator"
        domain = self.settings.my_domain or ""
        if domain.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
            return domain + "/__emulator"
        return None

    def describe(self) -> str:
        """One line: what we talk to."""
        if self.emulator is not None:
            return f"built-in emulator at {self.emulator.url}"
        where = self.settings.my_domain or "?"
        return f"{where}" + (f" (profile {self.profile})" if self.profile else "")


@contextlib.contextmanager
def open_target(
    profile: str | None,
    *,
    agent: str | None = None,
    store: str | None = None,
    allow_emulator: bool = True,
    announce: Console | None = None,
    what: str = "chatting with",
    emulator_agents: Path | None = None,
) -> Iterator[Target]:
    """The configured org, or (with no org configured and ``allow_emulator``) the built-in emulator for
    the ``with`` block (with ``emulator_agents``' scripted agents, else the demo agent), announced in one
    dim line on ``announce``."""
    resolved = resolve_settings(profile, agent=agent, store=store)
    name = resolved.profile.name if resolved.profile else None
    if resolved.has_org:
        yield Target(resolved.settings, resolved.store_url, None, name)
        return
    if not allow_emulator:
        raise CliError(
            "no org configured, so there is no server to reach. What to do: set SF_MY_DOMAIN, SF_CLIENT_ID, "
            "SF_CLIENT_SECRET and SF_AGENT_ID, or run `sessionforce config init`.",
            EXIT_UNREACHABLE,
        )
    from sessionforce.config import ClientSettings
    from sessionforce.emulator import AgentConfigError, run_emulator

    stack = contextlib.ExitStack()
    try:
        emu = stack.enter_context(run_emulator(agents=emulator_agents))
    except AgentConfigError as exc:
        raise CliError(str(exc)) from None
    with stack:
        agent_id = agent or emu.default_agent_id
        settings = ClientSettings.load(my_domain=emu.url, client_id=emu.client_id, client_secret=emu.client_secret,
                                       agent_id=agent_id, base_url=emu.url)
        if announce is not None:
            label = "demo agent" if emulator_agents is None and agent_id == emu.default_agent_id else "agent"
            announce.print(f"[dim]No org configured: {what} the built-in emulator ({label} {agent_id}) "
                           f"at {emu.url}[/dim]")
        yield Target(settings, resolved.store_url, emu, None)
