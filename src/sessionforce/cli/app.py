"""The root ``sessionforce`` command: sub-commands register themselves here."""

from __future__ import annotations

import typer

from sessionforce._version import __version__
from sessionforce.cli.errors import EXIT_CODES_HELP

EPILOG = EXIT_CODES_HELP + " Each command's --help has examples; the guides are the docs/ folder of the " \
    "sessionforce source (the CLI: docs/cli.md)."

app = typer.Typer(
    name="sessionforce",
    help="Run conversations with Salesforce Agentforce agents, or with the built-in emulator.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"sessionforce {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and library logs on errors."),
    log_format: str | None = typer.Option(
        None, "--log-format", show_default=False, metavar="[text|json]",
        help="Log records on stderr as text (default: warnings, one line each) or json (one JSON object per "
        "line with the correlation keys, info and up; everything with --debug). Also `serve`'s default.",
    ),
) -> None:
    """Run conversations with Salesforce Agentforce agents, or with the built-in emulator.

    Start with `sessionforce chat`: with no org configured it talks to the built-in emulator.
    """
    from sessionforce.cli._logs import configure
    from sessionforce.cli.errors import debug_enabled, set_debug

    if log_format is not None and log_format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="'--log-format'")
    if debug:
        set_debug(True)
    configure(debug=debug_enabled(), log_format=log_format)


def _register_commands() -> None:
    # Imported here so that `sessionforce --version` does not pay for every sub-command's imports; the
    # command modules themselves import their heavy dependencies (Rich, the client, the emulator) lazily.
    from sessionforce.cli import chat, config_cmd, doctor_cmd, emulator_cmd, run_cmd, serve_cmd, sessions_cmd

    chat.register(app)
    run_cmd.register(app)
    sessions_cmd.register(app)
    config_cmd.register(app)
    doctor_cmd.register(app)
    emulator_cmd.register(app)
    serve_cmd.register(app)


def main() -> None:
    """Entry point of the ``sessionforce`` console script."""
    _register_commands()
    app(prog_name="sessionforce")
