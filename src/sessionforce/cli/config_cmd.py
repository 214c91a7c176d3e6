"""``sessionforce config``: write a profile, show the settings in effect, and prove they work."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from typing import Annotated

import typer

from sessionforce.cli.common import FLAGS, PROFILE_HELP, open_cli_store, out_console, resolve_settings, shown_store
from sessionforce.cli.errors import EXIT_CODES_HELP, CliError, exit_code_for, guard, message_for

__all__ = ["config_app", "register"]

config_app = typer.Typer(
    name="config",
    help="Profiles in a TOML file under your config directory (SESSIONFORCE_CONFIG overrides the path). "
    "Precedence: command-line options, then environment variables, then the profile.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
)

AGENT_ID = re.compile(r"0Xx[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?")
"""A Salesforce record id of an agent (a BotDefinition): 15 or 18 characters, prefix ``0Xx``."""
_SHOWN = ("my_domain", "client_id", "client_secret", "agent_id", "base_url", "access_token", "store")
_SECRETS = frozenset({"client_secret", "access_token"})


@config_app.command("init")
@guard
def init(
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile name to write.")] = "default",
    my_domain: Annotated[str | None, typer.Option(help="The org's My Domain URL.")] = None,
    client_id: Annotated[str | None, typer.Option(help="The External Client App's consumer key.")] = None,
    client_secret: Annotated[str | None, typer.Option(
        help="Its consumer secret (prompted for, hidden, when omitted on a terminal).")] = None,
    agent_id: Annotated[str | None, typer.Option(help="The agent id (0Xx...) or API name.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Agent API host, if not the token's (rarely needed).")] = None,
    store: Annotated[str | None, typer.Option(help="Session store URL for this profile.")] = None,
    make_default: Annotated[bool, typer.Option("--default", help="Make this the default profile.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the profile if it exists.")] = False,
) -> None:
    """Write a profile to the config file (created readable by you only).

    Asks for what is missing when run on a terminal.

    Examples:

      sessionforce config init

      sessionforce config init --profile prod --my-domain https://acme.my.salesforce.com
      --client-id 3MVG9... --agent-id 0Xx...
    """
    from sessionforce.config import config_path, load_profiles, resolve, write_profile

    path = config_path()
    if profile in load_profiles(path)[0] and not force:
        raise CliError(f"profile {profile!r} already exists in {path}. What to do: add --force to replace it.")
    interactive = sys.stdin.isatty()
    values = {"my_domain": my_domain, "client_id": client_id, "client_secret": client_secret, "agent_id": agent_id,
              "base_url": base_url, "store": store}
    prompts = {"my_domain": "My Domain URL (https://....my.salesforce.com)", "client_id": "Client id (consumer key)",
               "client_secret": "Client secret (consumer secret)", "agent_id": "Agent id (0Xx...) or API name"}
    for key, question in prompts.items():
        if values[key] is None:
            if not interactive:
                raise CliError(f"--{key.replace('_', '-')} is required when not on a terminal.")
            values[key] = typer.prompt(question, hide_input=key == "client_secret").strip()
    agent = values["agent_id"] or ""
    if not AGENT_ID.fullmatch(agent):
        raise CliError(f"--agent-id {agent!r} is not an agent id: those are 15 or 18 letters and digits starting "
                       "with 0Xx. What to do: copy it from Setup > Agents (the agent's record id).")
    # Validate before writing, so a typo is caught now rather than at the first chat.
    flags = {**FLAGS, "agent_id": "--agent-id"}
    given = {k: v for k, v in values.items() if k != "store"}
    resolve(None, argument_names=flags, **given)
    if store:
        open_cli_store(store, "--store")
    written = write_profile(profile, {k: v for k, v in values.items() if v}, path, make_default=make_default)
    out_console().print(f"Wrote profile [bold]{profile}[/bold] to {written} (mode 600). "
                        f"Next: sessionforce config check{'' if profile == 'default' else f' --profile {profile}'}")


@config_app.command("show")
@guard
def show(profile: Annotated[str | None, typer.Option("--profile", "-p", help=PROFILE_HELP)] = None) -> None:
    """Show the settings in effect and where each comes from. Secrets are never printed.

    Examples:

      sessionforce config show

      sessionforce config show --profile prod
    """
    from rich.markup import escape
    from rich.table import Table

    from sessionforce.config import config_path, load_profiles

    path = config_path()
    resolved = resolve_settings(profile)
    profiles, default = load_profiles(path)
    console = out_console()
    exists = "" if path.exists() else " (does not exist yet: `sessionforce config init`)"
    console.print(f"config file: {path}{exists}")
    names = ", ".join(f"{n}{' (default)' if n == default else ''}" for n in profiles) or "none"
    console.print(f"profiles:    {escape(names)}")
    console.print(f"in use:      {resolved.profile.name if resolved.profile else 'none'}")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("setting", "value", "from"):
        table.add_column(column)
    for key in _SHOWN:
        if key == "store":
            # The store in use, wherever it came from (the environment and the default file included),
            # as every command shows it: the password hidden.
            source = resolved.sources.get("store") or (
                "SESSIONFORCE_STORE" if os.environ.get("SESSIONFORCE_STORE") else "[dim]default[/dim]")
            table.add_row(key, escape(shown_store(resolved.store_url)), source)
            continue
        raw = getattr(resolved.settings, key, None)
        if key in _SECRETS:
            value = "[dim]set (hidden)[/dim]" if raw is not None else "[dim]-[/dim]"
        else:
            value = escape(str(raw)) if raw is not None else "[dim]-[/dim]"
        table.add_row(key, value, resolved.sources.get(key, ""))
    console.print(table)
    if not resolved.has_org:
        console.print("[dim]No org configured: chat and run use the built-in emulator.[/dim]")


@config_app.command("check")
@guard
def check(profile: Annotated[str | None, typer.Option("--profile", "-p", help=PROFILE_HELP)] = None) -> None:
    """Prove the setup works: fetch a token, start a session with the agent, end it.

    Prints each step; on failure, what failed and how to fix it (exit 2 config, 3 unreachable or refused,
    1 other failures). Secrets are never printed.

    Examples:

      sessionforce config check

      sessionforce config check --profile prod
    """
    from sessionforce.agent_api import AsyncAgentClient

    resolved = resolve_settings(profile)
    settings = resolved.settings
    console = out_console()
    if not resolved.has_org:
        raise CliError("no org configured. What to do: run `sessionforce config init`, or set SF_MY_DOMAIN, "
                       "SF_CLIENT_ID, SF_CLIENT_SECRET and SF_AGENT_ID.")
    settings.require("my_domain", "agent_id")
    used = f" (profile {resolved.profile.name})" if resolved.profile else ""
    console.print(f"Checking {settings.my_domain}{used}")

    async def steps() -> None:
        async with AsyncAgentClient(settings=settings) as client:
            step = "fetch a token"
            try:
                token = await client.fetch_token()
                console.print(f"  [green]✓[/green] token fetched (API host {client.transport.api_base(token)})")
                step = f"start a session with agent {settings.agent_id}"
                session = await client.start_session()
                console.print(f"  [green]✓[/green] session {session.session_id} started with agent "
                              f"{settings.agent_id}")
                step = "end the session"
                await client.end_session(session.session_id)
                console.print("  [green]✓[/green] session ended")
            except Exception as exc:
                console.print(f"  [red]✗[/red] could not {step}")
                raise exc from None

    try:
        asyncio.run(steps())
    except Exception as exc:
        print(message_for(exc), file=sys.stderr)
        raise typer.Exit(exit_code_for(exc)) from None
    console.print("[green]The setup works.[/green]")


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group to ``app``."""
    app.add_typer(config_app)
