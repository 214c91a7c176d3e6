"""``sessionforce doctor``: walk the path a first session takes and name the cause and fix of what fails.

The checks, in order: My Domain reachable → access token minted → token JWT-based → Agent API host →
agent found and active → agent type vs ``bypassUser`` → a session started and ended. The first check that
fails stops the walk (the later ones are shown as skipped); its cause and fix come from the same table
the library's own errors use (``sessionforce.agent_api.KNOWN_CAUSES``). Nothing secret is printed: the
token is described by its shape and length, never shown.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Annotated

import typer

from sessionforce.cli.common import PROFILE_HELP, out_console, resolve_settings
from sessionforce.cli.errors import EXIT_CODES_HELP, EXIT_FAILED, EXIT_OK, EXIT_USAGE, exit_code_for, guard

if TYPE_CHECKING:
    from sessionforce.agent_api import AccessToken, AgentInfo, AsyncAgentClient, Diagnosis
    from sessionforce.config import ClientSettings

__all__ = ["Check", "doctor", "register", "run_checks"]

STEPS = (
    ("my_domain", "My Domain reachable"),
    ("token", "access token minted"),
    ("jwt", "access token is JWT-based"),
    ("api_host", "Agent API host"),
    ("agent", "agent found and active"),
    ("agent_type", "agent type vs bypassUser"),
    ("session", "session started and ended"),
)


@dataclass
class Check:
    """One step of the walk: ``ok``, ``failed``, ``warning`` or ``skipped``, with the cause and fix of a
    failure (or warning) and the exit code a failure means."""

    name: str
    title: str
    status: str = "skipped"
    detail: str = ""
    cause: str | None = None
    fix: str | None = None
    exit_code: int = EXIT_OK


@dataclass
class Walk:
    """The checks and what they learnt along the way."""

    checks: dict[str, Check] = field(default_factory=lambda: {n: Check(n, t) for n, t in STEPS})
    token: AccessToken | None = None
    agent: AgentInfo | None = None

    def ok(self, name: str, detail: str) -> None:
        check = self.checks[name]
        check.status, check.detail = "ok", detail

    def fail(self, name: str, detail: str, *, cause: str | None = None, fix: str | None = None,
             code: int = EXIT_FAILED, warning: bool = False) -> None:
        check = self.checks[name]
        check.status = "warning" if warning else "failed"
        check.detail, check.cause, check.fix, check.exit_code = detail, cause, fix, code

    def diagnosed(self, name: str, detail: str, diagnosis: Diagnosis, *, code: int = EXIT_FAILED,
                  warning: bool = False) -> None:
        self.fail(name, detail, cause=diagnosis.cause, fix=diagnosis.fix, code=code, warning=warning)

    @property
    def exit_code(self) -> int:
        failed = [c for c in self.checks.values() if c.status == "failed"]
        return failed[0].exit_code if failed else EXIT_OK


def _first_line(exc: BaseException) -> str:
    return str(exc).split(". What to do:")[0].split(". Cause:")[0]


async def _walk(client: AsyncAgentClient, walk: Walk, agent: str, bypass_user: bool | None) -> None:
    from sessionforce.agent_api import KNOWN_CAUSES, diagnose_error, jwt_shaped
    from sessionforce.errors import AuthError, ConfigError, ConnectionFailed, SessionforceError

    my_domain = client.my_domain
    try:
        walk.token = token = await client.fetch_token()
    except ConnectionFailed as exc:
        walk.fail("my_domain", _first_line(exc), cause=f"{my_domain} cannot be reached",
                  fix="check SF_MY_DOMAIN (Setup > My Domain > Current My Domain URL) and the network",
                  code=exit_code_for(exc))
        return
    except SessionforceError as exc:
        walk.ok("my_domain", f"{my_domain} answered")
        walk.fail("token", _first_line(exc), cause="the token endpoint refused the request",
                  fix=str(exc).split("What to do: ", 1)[-1].rstrip("."), code=exit_code_for(exc))
        return
    walk.ok("my_domain", f"{my_domain} answered")
    walk.ok("token", f"client credentials accepted; token issued ({len(token.value)} characters, not shown)")
    if not jwt_shaped(token.value):
        walk.diagnosed("jwt", "the token is opaque (not three base64url segments)", KNOWN_CAUSES["opaque_token"])
        return
    walk.ok("jwt", "three base64url segments (a JSON Web Token)")
    api_host = client.transport.api_base(token)
    where = ("SESSIONFORCE_BASE_URL" if client.settings.base_url else
             "the token's api_instance_url" if token.api_instance_url else "the default (no api_instance_url)")
    if client.settings.base_url and client.settings.base_url.rstrip("/") == my_domain.rstrip("/") and \
            token.api_instance_url and token.api_instance_url.rstrip("/") != my_domain.rstrip("/"):
        walk.diagnosed("api_host", f"{api_host} (from SESSIONFORCE_BASE_URL) is the My Domain, not the Agent API "
                       f"host the token names ({token.api_instance_url})", KNOWN_CAUSES["wrong_api_host"])
        return
    walk.ok("api_host", f"{api_host} (from {where})")
    try:
        walk.agent = info = await client.find_agent(agent, lookup=True)
    except ConfigError as exc:
        known = "agent_not_found" if agent.startswith("0Xx") else "unknown_agent_name"
        walk.diagnosed("agent", _first_line(exc), KNOWN_CAUSES[known], code=EXIT_USAGE)
        return
    except AuthError as exc:  # the token may not query the REST API: an id still works, a name cannot
        cause = "the token may not query the org's REST API, where agents are looked up"
        fix = "give the External Client App the 'api' OAuth scope, or give the agent's id (0Xx...)"
        try:
            info = await client.find_agent(agent)  # an id needs no lookup
        except SessionforceError:
            walk.fail("agent", _first_line(exc), cause=cause, fix=fix, code=exit_code_for(exc))
            return
        walk.fail("agent", f"{info.id}: type and activation not checked ({_first_line(exc)})", cause=cause, fix=fix,
                  warning=True)
    except SessionforceError as exc:
        walk.fail("agent", _first_line(exc), code=exit_code_for(exc))
        return
    else:
        if info.active is False:
            walk.diagnosed("agent", f"{info.api_name} ({info.id}) has no active version",
                           KNOWN_CAUSES["agent_inactive"])
            return
        walk.ok("agent", f"{info.label} (API name {info.api_name}, id {info.id}), active")
    resolved = await client.find_agent(agent)
    effective = bypass_user if bypass_user is not None else resolved.bypass_user
    kind = {True: "employee agent (runs as the token's user)", False: "service agent (runs as its agent user)",
            None: "type unknown"}[info.employee]
    chosen = "as set" if bypass_user is not None else "by sessionforce"
    if info.employee and effective:
        by_id = bypass_user is None and resolved.employee is None
        walk.diagnosed("agent_type", f"{kind}, but bypassUser=true ({chosen}"
                       + (": the agent is given by id, so its type is not looked up)" if by_id else ")"),
                       KNOWN_CAUSES["employee_bypass_user"])
        return
    walk.ok("agent_type", f"{kind}; sessions start with bypassUser={str(effective).lower()} ({chosen})")
    try:
        session = await client.start_session(info.id, bypass_user=effective)
    except SessionforceError as exc:
        diagnosis = diagnose_error(exc, starting=True, token=token.value)
        if diagnosis is None:
            walk.fail("session", _first_line(exc), fix=str(exc).split("What to do: ", 1)[-1].rstrip("."),
                      code=exit_code_for(exc))
        else:
            walk.diagnosed("session", _first_line(exc), diagnosis, code=exit_code_for(exc))
        return
    try:
        await client.end_session(session.session_id)
    except SessionforceError as exc:
        walk.fail("session", f"started {session.session_id}, but ending it failed: {_first_line(exc)}",
                  code=exit_code_for(exc))
        return
    walk.ok("session", f"session {session.session_id} started and ended")


def run_checks(settings: ClientSettings, agent: str, bypass_user: bool | None) -> Walk:
    """Run the walk against the org ``settings`` name; never raises for what it checks."""
    from sessionforce.agent_api import AsyncAgentClient

    walk = Walk()

    async def main() -> None:
        async with AsyncAgentClient(settings=settings) as client:
            await _walk(client, walk, agent, bypass_user)

    asyncio.run(main())
    return walk


_MARKS = {"ok": "[green]✓[/green]", "failed": "[red]✗[/red]", "warning": "[yellow]![/yellow]",
          "skipped": "[dim]·[/dim]"}


@guard
def doctor(
    profile: Annotated[str | None, typer.Option("--profile", "-p", help=PROFILE_HELP)] = None,
    agent: Annotated[str | None, typer.Option(
        "--agent", help="Agent id (0Xx...) or API name (default: SF_AGENT_ID or the profile's).")] = None,
    bypass_user: Annotated[bool | None, typer.Option(
        "--bypass-user/--no-bypass-user", help="Check starting with this bypassUser (default: what sessionforce "
        "chooses: false for employee agents known by name, else true).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as one JSON object.")] = False,
) -> None:
    """Check the set-up step by step and name the cause and fix of what fails.

    My Domain reachable, token minted, token JWT-based, Agent API host, agent found and active, its type
    vs bypassUser, a session started and ended. Secrets are never printed.

    Examples:

      sessionforce doctor

      sessionforce doctor --agent Service_Assistant --json
    """
    from rich.markup import escape

    resolved = resolve_settings(profile, agent=agent)
    settings = resolved.settings
    if not resolved.has_org:
        from sessionforce.cli.errors import CliError

        raise CliError("no org configured, so there is nothing to check. What to do: run `sessionforce config "
                       "init`, or set SF_MY_DOMAIN, SF_CLIENT_ID, SF_CLIENT_SECRET and SF_AGENT_ID (a standalone "
                       "`sessionforce emulator` works too: docs/emulator.md).")
    settings.require("agent_id")
    assert settings.agent_id is not None
    walk = run_checks(settings, settings.agent_id, bypass_user)
    code = walk.exit_code
    if as_json:
        checks = [asdict(c) for c in walk.checks.values()]
        print(json.dumps({"ok": code == EXIT_OK, "exit_code": code, "checks": checks}, indent=2))
        raise typer.Exit(code)
    console = out_console()
    used = f" (profile {resolved.profile.name})" if resolved.profile else ""
    console.print(f"Checking {escape(settings.my_domain or '?')}{used}, agent {escape(settings.agent_id)}")
    for check in walk.checks.values():
        detail = f": {escape(check.detail)}" if check.detail else ""
        console.print(f"  {_MARKS[check.status]} {check.title}{detail}")
        if check.cause:
            console.print(f"      cause: {escape(check.cause)}")
        if check.fix:
            console.print(f"      fix:   {escape(check.fix)}")
    if code == EXIT_OK:
        console.print("[green]The setup works.[/green]")
    else:
        print("doctor: a check failed (see its cause and fix above)", file=sys.stderr)
    raise typer.Exit(code)


doctor.__doc__ = (doctor.__doc__ or "") + "\n\n    " + EXIT_CODES_HELP


def register(app: typer.Typer) -> None:
    """Add the ``doctor`` command to ``app``."""
    app.command("doctor")(doctor)
