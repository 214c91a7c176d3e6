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
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 8787,
    agents: Annotated[Path | None, typer.Option(help="YAML file of scripted agents (default: the demo agent).")] = None,
    idle_timeout: Annotated[float, typer.Option(help="Seconds of inactivity before a session expires.")] = 900.0,
    faults: Annotated[Path | None, typer.Option(help="YAML/JSON file of fault-injection rules.")] = None,
    client_id: Annotated[str, typer.Option(help="Client id the token endpoint accepts.")] = "sessionforce-emulator",
    client_secret: Annotated[str, typer.Option(help="Client secret the token endpoint accepts.")] = "emulator-secret",
    token_ttl: Annotated[float, typer.Option(help="Seconds an access token stays valid.")] = 7200.0,
    max_sessions: Annotated[int | None, typer.Option(help="Limit on active sessions (429 beyond).")] = None,
    requests_per_minute: Annotated[
        int | None, typer.Option(help="Limit on Agent API requests per minute (429 beyond).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for probabilistic faults.")] = 0,
) -> None:
    """Run a local stand-in for the Agentforce Agent API (tokens, sessions, streaming, faults)."""
    # Imported here so other commands do not pay for uvicorn and starlette.
    import uvicorn

    from sessionforce.emulator import AgentConfigError, FaultConfigError
    from sessionforce.emulator.server import bind_socket, build_state, uvicorn_config
    from sessionforce.emulator.state import EmulatorConfig

    config = EmulatorConfig(client_id=client_id, client_secret=client_secret, idle_timeout=idle_timeout,
                            token_ttl=token_ttl, max_sessions=max_sessions, requests_per_minute=requests_per_minute,
                            seed=seed)
    try:
        state = build_state(agents=agents, faults=faults, config=config)
    except (AgentConfigError, FaultConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        sock, url = bind_socket(host, port)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port} ({exc.strerror or exc})", err=True)
        raise typer.Exit(1) from None
    default = next(iter(state.agents))
    lines = [
        f"sessionforce emulator listening on {url}",
        f"  token URL:     {url}/services/oauth2/token",
        f"  client id:     {client_id}",
        f"  client secret: {client_secret}",
        *(f"  agent:         {agent.id}  {agent.name}{'  (default)' if agent.id == default else ''}"
          for agent in state.agents.values()),
        f"  admin:         {url}/__emulator/agents",
    ]
    if not _is_loopback(host):
        lines.append(f"  warning: listening on {host}, not loopback: anyone who can reach it can use it")
    lines.append("Press Ctrl-C to stop.")
    typer.echo("\n".join(lines))
    server = uvicorn.Server(uvicorn_config(state, host, sock.getsockname()[1], log_config=True))
    # uvicorn re-raises the Ctrl-C it handled once it has shut down; that is our normal way out.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    typer.echo("emulator stopped")


def register(app: typer.Typer) -> None:
    """Add the ``emulator`` command to ``app``."""
    app.command("emulator")(emulator)
