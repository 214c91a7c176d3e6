"""``sessionforce emulator``: run the local Agent API emulator in the foreground until Ctrl-C."""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path
from typing import Annotated

import typer


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def emulator(
    host: Annotated[str, typer.Option(help="Address to listen on. Loopback unless you say otherwise.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0 = any free port).")] = 8787,
    agents: Annotated[Path | None, typer.Option(help="YAML file of scripted agents (default: the demo agent).")] = None,
    idle_timeout: Annotated[float, typer.Option(
        min=0, help="Seconds of inactivity before a session expires.")] = 900.0,
    faults: Annotated[Path | None, typer.Option(help="YAML/JSON file of fault-injection rules.")] = None,
    client_id: Annotated[str, typer.Option(help="Client id the token endpoint accepts.")] = "sessionforce-emulator",
    client_secret: Annotated[str, typer.Option(help="Client secret the token endpoint accepts.")] = "emulator-secret",
    token_ttl: Annotated[float, typer.Option(
        min=0, help="Seconds an access token stays valid.")] = 7200.0,
    max_sessions: Annotated[int | None, typer.Option(min=1, help="Limit on active sessions (429 beyond).")] = None,
    requests_per_minute: Annotated[
        int | None, typer.Option(min=1, help="Limit on Agent API requests per minute (429 beyond).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for probabilistic faults.")] = 0,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Answer 400 to every deviation from the documented request shapes (else only record "
        "them at /__emulator/deviations).")] = False,
    opaque_tokens: Annotated[bool, typer.Option(
        "--opaque-tokens", help="Mint opaque access tokens, which the Agent API answers with 404 (a common set-up "
        "mistake), instead of JWT-based ones.")] = False,
    separate_api_host: Annotated[bool, typer.Option(
        "--separate-api-host", help="Serve the Agent API on a second port, named by the token response's "
        "api_instance_url (like a sandbox org).")] = False,
    request_timeout: Annotated[float, typer.Option(
        min=0, help="Seconds after which a turn answers 500, like the real service's 120 s.")] = 120.0,
) -> None:
    """Run a local stand-in for the Agentforce Agent API (tokens, sessions, streaming, faults)."""
    # Imported here so other commands do not pay for uvicorn and starlette.
    import uvicorn

    from sessionforce.emulator import (
        AgentConfigError,
        EmulatorConfig,
        EmulatorConfigError,
        FaultConfigError,
        bind_sockets,
        build_state,
        uvicorn_config,
    )

    try:
        config = EmulatorConfig(
            client_id=client_id, client_secret=client_secret, idle_timeout=idle_timeout, token_ttl=token_ttl,
            max_sessions=max_sessions, requests_per_minute=requests_per_minute, seed=seed, strict=strict,
            token_format="opaque" if opaque_tokens else "jwt", separate_api_host=separate_api_host,
            request_timeout=request_timeout)
        state = build_state(agents=agents, faults=faults, config=config)
    except EmulatorConfigError as exc:
        typer.echo(f"error: --{exc.field.replace('_', '-')}: {exc.problem}", err=True)
        raise typer.Exit(2) from None
    except (AgentConfigError, FaultConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        sockets, url, api_url = bind_sockets(state, host, port)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port} ({exc.strerror or exc})", err=True)
        raise typer.Exit(1) from None
    default = next(iter(state.agents))
    lines = [
        f"sessionforce emulator listening on {url}",
        f"  token URL:     {url}/services/oauth2/token",
        *([f"  Agent API:     {api_url}  (separate host, like a sandbox org)"] if api_url != url else []),
        f"  client id:     {client_id}",
        f"  client secret: {client_secret}",
        *(f"  agent:         {agent.id}  {agent.api_name}  {agent.name}{'  (default)' if agent.id == default else ''}"
          for agent in state.agents.values()),
        f"  admin:         {url}/__emulator/agents",
        *(["  mode:          strict (deviations from the documented shapes answer 400)"] if strict else []),
        *(["  tokens:        opaque (the Agent API answers them with 404)"] if opaque_tokens else []),
    ]
    if not _is_loopback(host):
        lines.append(f"  warning: listening on {host}, not loopback: anyone who can reach it can use it")
    lines.append("Press Ctrl-C to stop.")
    typer.echo("\n".join(lines))
    server = uvicorn.Server(uvicorn_config(state, host, sockets[0].getsockname()[1], log_config=True))
    # uvicorn re-raises the Ctrl-C it handled once it has shut down; that is our normal way out.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    typer.echo("emulator stopped")


def register(app: typer.Typer) -> None:
    """Add the ``emulator`` command to ``app``."""
    app.command("emulator")(emulator)
