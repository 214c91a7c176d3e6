"""One place that turns errors into exit codes and one or two plain lines (tracebacks only with --debug).

Exit codes (also in ``sessionforce --help`` and docs/cli.md):

====  =====================================================================
0     success
1     failures: a ``run`` expectation failed, ``config check`` or ``doctor`` failed, the server failed or gave
      no answer, or an unexpected error
2     usage error, bad input (a file, an unknown conversation or agent id), configuration error
3     cannot reach the org or emulator, or authentication failed
130   interrupted (Ctrl-C)
====  =====================================================================

An unknown agent id (404 when a session starts) is bad input, not a reachability problem: the org
answered, and the fix is the id (or the host or token it was sent with).
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from typer.exceptions import TyperException

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
    "debug_enabled",
    "exit_code_for",
    "guard",
    "message_for",
    "set_debug",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 failures (run expectations, config check, doctor, server errors, no answer); 2 usage, "
    "bad input (file, unknown conversation or agent id) or config error; 3 cannot reach the org/emulator or "
    "authentication failed; 130 interrupted."
)

P = ParamSpec("P")
R = TypeVar("R")

_debug = False


class CliError(Exception):
    """An error the CLI reports as it is, with the exit code it chose."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def set_debug(value: bool) -> None:
    """Turn tracebacks on or off (the root ``--debug`` option, or ``SESSIONFORCE_DEBUG=1``)."""
    global _debug
    _debug = value


def debug_enabled() -> bool:
    """Whether ``--debug`` (or ``SESSIONFORCE_DEBUG=1``) asked for tracebacks."""
    return _debug or os.environ.get("SESSIONFORCE_DEBUG", "") not in ("", "0")


def exit_code_for(exc: BaseException) -> int:
    """The exit code an error maps to."""
    from sessionforce import errors as e

    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, e.ConfigError | e.InvalidArgument):
        return EXIT_USAGE
    if isinstance(exc, e.NotFound) and not isinstance(exc, e.SessionNotFound):
        return EXIT_USAGE  # the org answered: the agent id (or the host or token it went to) is wrong
    if isinstance(exc, e.AuthError | e.ConnectionFailed | e.StoreUnavailable):
        return EXIT_UNREACHABLE  # (a turn that got no answer is a failure: the server was reached)
    return EXIT_FAILED


def message_for(exc: BaseException) -> str:
    """The one or two lines to print for an error. Library messages never hold secrets."""
    from sessionforce import errors as e

    if isinstance(exc, CliError):
        return f"error: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, e.ConnectionFailed):
        return f"error: cannot reach the server: {exc}"
    if isinstance(exc, e.SessionforceError):
        return f"error: {exc}"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"error: {exc.strerror or exc}{where}"
    return f"error: unexpected {type(exc).__name__}: {exc}\n(run with --debug for the traceback, and report it)"


def report(exc: BaseException) -> int:
    """Print ``exc`` to stderr (with its traceback under --debug) and return its exit code."""
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    print(message_for(exc), file=sys.stderr)
    return exit_code_for(exc)


def guard(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: library, OS and unexpected errors become a short message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            try:
                return fn(*args, **kwargs)
            finally:
                # A reader that went away (`| head`) shows up here, inside the command, rather than as a
                # message from the interpreter's last flush.
                sys.stdout.flush()
        except BrokenPipeError:
            raise  # Typer does what the Python docs advise: stdout pacified, exit 1, no message
        except (typer.Exit, typer.Abort, TyperException):
            raise  # Click prints usage errors itself (exit 2)
        except (Exception, KeyboardInterrupt) as exc:
            raise typer.Exit(report(exc)) from None

    return wrapper
