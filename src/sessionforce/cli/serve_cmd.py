"""``sessionforce serve``: run the gateway (HTTP API, event streams, web chat) in the foreground."""

from __future__ import annotations

import os
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from sessionforce.cli.common import PROFILE_HELP, STORE_HELP, err_console, open_target
from sessionforce.cli.errors import EXIT_CODES_HELP, CliError, guard

__all__ = ["register", "serve"]


def _shown(url: str) -> str:
    """A store URL without its password."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable URL>"


@guard
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback unless you say otherwise).")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the port and the store.")] = 1,
    store: Annotated[str | None, typer.Option("--store", help=STORE_HELP)] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Agent id (default: SF_AGENT_ID or the profile's).")
                     ] = None,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help=PROFILE_HELP)] = None,
    api_key: Annotated[list[str] | None, typer.Option(
        "--api-key", help="Key your backend mints tokens with (repeat to rotate). Prefer "
        "SESSIONFORCE_GATEWAY_API_KEY: arguments show in `ps`.")] = None,
    signing_key: Annotated[list[str] | None, typer.Option(
        "--signing-key", help="End-user token key, 32+ bytes; the first signs (repeat to rotate). Prefer "
        "SESSIONFORCE_GATEWAY_SIGNING_KEY. Default: a random key for this run.")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="Origin allowed to call from a browser, e.g. https://shop.example (repeat).")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Offer POST /v1/demo/token (on by itself with the built-in "
                                       "emulator and no API key).")] = False,
    shutdown_timeout: Annotated[float | None, typer.Option(
        help="Seconds running turns get to finish on SIGTERM (default 30).")] = None,
    log_format: Annotated[str | None, typer.Option(
        help="text or json (default: the root --log-format, else SESSIONFORCE_GATEWAY_LOG_FORMAT, else text).")
                          ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the gateway: end-user tokens, one turn at a time, idempotent messages, event streams with
    re-attach, and the web chat page at /. With no org configured it serves the built-in emulator's demo
    agent, and the page works with no key at all.

    Settings: arguments, then SESSIONFORCE_GATEWAY_* environment variables (docs/gateway.md lists them
    all), then the profile for the org and the store.

    Examples:

      sessionforce serve

      SESSIONFORCE_GATEWAY_API_KEY=... sessionforce serve --workers 4 --store redis://redis:6379/0
    """
    try:
        import jwt  # noqa: F401 - the gateway's one dependency beyond the core
    except ImportError:
        raise CliError("the gateway needs its extra: pip install 'sessionforce[gateway]'") from None
    from sessionforce.cli._logs import chosen_log_format
    from sessionforce.config import STORE_ENV
    from sessionforce.gateway import GatewayConfig, GatewaySettings, SigningKey, bind
    from sessionforce.gateway import serve as run
    from sessionforce.store import default_sqlite_path

    if workers < 1:
        raise CliError("--workers must be 1 or more.")
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise CliError("--log-level must be debug, info, warning or error.")
    settings = GatewaySettings.load(api_key=api_key, signing_key=signing_key, cors_origin=cors_origin,
                                    demo=demo or None, shutdown_timeout=shutdown_timeout,
                                    log_format=log_format or chosen_log_format())
    console = err_console()
    with open_target(profile, agent=agent, store=store, announce=console, what="serving") as target:
        store_url = target.store_url or os.environ.get(STORE_ENV) or f"sqlite:///{default_sqlite_path()}"
        if store_url.startswith("memory:") and workers > 1:
            raise CliError("memory:// cannot be shared by several workers. What to do: use --workers 1, or a "
                           "SQLite file (sqlite:///path.db) or Redis (redis://host:6379/0).")
        keys = tuple(settings.signing_keys())
        if not keys:
            keys = (SigningKey.generate(),)
            console.print("[dim]No signing key configured: tokens are signed with a random key for this run "
                          "(set SESSIONFORCE_GATEWAY_SIGNING_KEY to keep them valid across restarts and hosts).[/dim]")
        config = GatewayConfig(org=target.settings, store_url=store_url, settings=settings, signing_keys=keys,
                               emulator=target.embedded)
        try:
            sock, url = bind(host, port)
        except OSError as exc:
            raise CliError(f"cannot listen on {host}:{port} ({exc.strerror or exc}).", 1) from None
        console.print(f"sessionforce gateway on {url}  ({workers} worker{'s' * (workers > 1)}, store "
                      f"{_shown(store_url)}, agent {target.settings.agent_id})")
        if config.demo:
            console.print(f"  web chat: {url}/   (demo tokens on: POST /v1/demo/token)")
        console.print(f"  API: {url}/openapi.json   health: {url}/healthz, {url}/readyz")
        if not settings.api_key:
            console.print("  [dim]no API key: POST /v1/tokens is closed (set SESSIONFORCE_GATEWAY_API_KEY)[/dim]")
        console.print("Press Ctrl-C to stop.")
        try:
            status = run(config, sock, workers=workers, log_format=settings.log_format, log_level=log_level)
        finally:
            sock.close()
    console.print("gateway stopped")
    raise typer.Exit(status)


serve.__doc__ = (serve.__doc__ or "") + "\n\n    " + EXIT_CODES_HELP


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve)
