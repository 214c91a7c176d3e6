"""``sessionforce chat``: talk to an agent (or the built-in emulator) in the terminal.

One conversation (``chat-<uuid>``, or ``--conversation ID`` to carry a detached one on) served by as
many sessions as it takes: expiries are resumed, and ``/end`` or the agent ending the session starts a
fresh one. Ctrl-C during a reply cancels that turn; Ctrl-C at the prompt or Ctrl-D ends the session and
exits 0. With stdin not a terminal, each line is one turn and output is plain, so it is scriptable.
"""

from __future__ import annotations

import asyncio
import enum
import sys
import uuid
from typing import Annotated

import typer

from sessionforce.cli.common import (
    PROFILE_HELP,
    STORE_HELP,
    err_console,
    open_cli_store,
    open_target,
    out_console,
    resolve_settings,
    store_source,
)
from sessionforce.cli.errors import EXIT_CODES_HELP, CliError, guard

__all__ = ["Resume", "chat", "register"]


class Resume(enum.StrEnum):
    """What a replacement session is told when the last one expired (``--resume``)."""

    NONE = "none"
    REPLAY = "replay"

def _stored(profile: str | None, store: str | None, conversation_id: str) -> bool:
    """Whether the store already holds ``conversation_id``."""
    resolved = resolve_settings(profile, store=store)

    async def load() -> bool:
        the_store = open_cli_store(resolved.store_url, store_source(resolved))
        try:
            return await the_store.load(conversation_id) is not None
        finally:
            await the_store.aclose()

    return asyncio.run(load())


@guard
def chat(
    agent: Annotated[str | None, typer.Option(
        "--agent", help="Agent id (0Xx...) or API name (default: SF_AGENT_ID or the profile's).")] = None,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help=PROFILE_HELP)] = None,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Wait for whole replies instead of streaming.")
                         ] = False,
    conversation: Annotated[str | None, typer.Option(
        "--conversation", "-c", help="Carry on a stored conversation by id (with --new: start one with this id). "
        "Default: a new chat-<uuid>.")] = None,
    new: Annotated[bool, typer.Option("--new", help="With --conversation: start a new conversation with that id."
                                      )] = False,
    resume: Annotated[Resume, typer.Option(
        "--resume", help="When a session expires: 'none' starts the next one fresh (the agent forgets), "
        "'replay' tells it the last few turns first.")] = Resume.NONE,
    store: Annotated[str | None, typer.Option("--store", help=STORE_HELP)] = None,
) -> None:
    """Chat with an agent. With no org configured, chats with the built-in emulator's demo agent.

    Replies stream in as they arrive; action results, citations, questions and escalations are shown
    distinctly, session lifecycle quietly. Type /help in the chat for its commands. Piped stdin: one
    turn per line, plain output.

    Examples:

      sessionforce chat

      sessionforce chat --profile prod --agent 0XxRM0000000001 --resume replay

      sessionforce chat --agent Service_Assistant

      sessionforce chat --conversation ticket-42

      printf 'hours?\nbook a repair\n2026-12-01\nyes\n' | sessionforce chat
    """
    if sys.stdin is None or sys.stdout is None:
        raise CliError("stdin or stdout is closed. What to do: run `sessionforce chat` in a terminal, or pipe "
                       "lines into it and its output somewhere.")
    if conversation is not None:
        stored = _stored(profile, store, conversation)
        if not stored and not new:
            raise CliError(f"no conversation {conversation!r} in the store. What to do: "
                           f"`sessionforce sessions list`, or add --new to start one with this id.")
        if stored and new:
            raise CliError(f"conversation {conversation!r} already exists. What to do: drop --new to carry it on.")
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    from sessionforce.cli._chat_loop import ChatLoop
    from sessionforce.cli.render import Renderer

    renderer = Renderer(out_console(), rich=interactive, resume=resume.value)
    conversation_id = conversation or f"chat-{uuid.uuid4()}"
    with open_target(profile, agent=agent, store=store, announce=err_console()) as target:
        loop = ChatLoop(target, renderer, conversation_id, stream=not no_stream, interactive=interactive,
                        resume=resume.value, new=conversation is None or new)
        code = asyncio.run(loop.run())
    raise typer.Exit(code)


chat.__doc__ = (chat.__doc__ or "") + "\n\n    " + EXIT_CODES_HELP


def register(app: typer.Typer) -> None:
    """Add the ``chat`` command to ``app``."""
    app.command("chat")(chat)
