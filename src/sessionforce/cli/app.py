"""The root ``sessionforce`` command: sub-commands register themselves here."""

from __future__ import annotations

import typer

from sessionforce._version import __version__

app = typer.Typer(
    name="sessionforce",
    help="Run conversations with Salesforce Agentforce agents, or with the built-in emulator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
) -> None:
    """Run conversations with Salesforce Agentforce agents, or with the built-in emulator."""


def _register_commands() -> None:
    # Imported here so that `sessionforce --version` does not pay for every sub-command's imports.
    from sessionforce.cli import emulator_cmd

    emulator_cmd.register(app)


def main() -> None:
    """Entry point of the ``sessionforce`` console script."""
    _register_commands()
    app()
