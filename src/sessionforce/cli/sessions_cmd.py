"""``sessionforce sessions``: look into the session store, end sessions, reap idle ones, export transcripts."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from sessionforce.cli.common import PROFILE_HELP, STORE_HELP, err_console, open_target, out_console, resolve_settings
from sessionforce.cli.errors import EXIT_CODES_HELP, CliError, guard

if TYPE_CHECKING:
    from sessionforce.store import ConversationRecord, Store, TranscriptEntry

__all__ = ["parse_duration", "register", "sessions_app"]

T = TypeVar("T")

sessions_app = typer.Typer(
    name="sessions",
    help="Inspect the session store: list and show conversations, end or reap sessions, export transcripts.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
)

StoreOption = Annotated[str | None, typer.Option("--store", help=STORE_HELP)]
ProfileOption = Annotated[str | None, typer.Option("--profile", "-p", help=PROFILE_HELP)]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON instead of a table.")]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` or a bare number of seconds."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise typer.BadParameter(f"{text!r} is not a duration; use e.g. 90s, 15m, 2h or 1h30m.")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _ago(at: float) -> str:
    seconds = max(0.0, time.time() - at)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _with_store(store_url: str | None, profile: str | None, work: Callable[[Store], Awaitable[T]]) -> T:
    from sessionforce.store import open_store

    url = resolve_settings(profile, store=store_url).store_url

    async def run() -> T:
        store = open_store(url)
        try:
            return await work(store)
        finally:
            await store.aclose()

    return asyncio.run(run())


async def _load(store: Store, conversation_id: str) -> ConversationRecord:
    record = await store.load(conversation_id)
    if record is None:
        raise CliError(f"no conversation {conversation_id!r} in the store. What to do: `sessionforce sessions list`.")
    return record


@sessions_app.command("list")
@guard
def list_(
    status: Annotated[str | None, typer.Option(help="Only 'active' (a live session) or 'idle' ones.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, least recently active first.")] = 100,
    as_json: JsonOption = False,
    store: StoreOption = None,
    profile: ProfileOption = None,
) -> None:
    """List the conversations in the store.

    Examples:

      sessionforce sessions list

      sessionforce sessions list --status active --json
    """
    from sessionforce.store import ConversationStatus

    if status not in (None, "active", "idle"):
        raise typer.BadParameter("use 'active' or 'idle'", param_hint="--status")
    wanted = ConversationStatus(status) if status else None
    records = _with_store(store, profile, lambda s: s.list_conversations(status=wanted, limit=limit))
    if as_json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return
    from rich.table import Table

    console = out_console()
    if not records:
        console.print("[dim]No conversations in the store.[/dim]")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("conversation", "status", "session", "agent", "turns", "seq", "sessions", "last activity"):
        table.add_column(column, no_wrap=column != "conversation")
    for r in records:
        state = "[green]active[/green]" if r.status is ConversationStatus.ACTIVE else "[dim]idle[/dim]"
        table.add_row(r.conversation_id, state, (r.session_id or "-")[:8], r.agent_id, str(r.turns),
                      str(r.last_sequence_id), str(len(r.sessions)), _ago(r.last_activity_at))
    console.print(table)


@sessions_app.command("show")
@guard
def show(
    conversation_id: Annotated[str, typer.Argument(metavar="ID", help="Conversation id.")],
    as_json: JsonOption = False,
    store: StoreOption = None,
    profile: ProfileOption = None,
) -> None:
    """Show one conversation: its keys, every session it had, and its transcript.

    Example:

      sessionforce sessions show chat-5d1c...
    """
    async def work(s: Store) -> tuple[ConversationRecord, list[TranscriptEntry]]:
        record = await _load(s, conversation_id)
        return record, await s.transcript(conversation_id)

    record, entries = _with_store(store, profile, work)
    if as_json:
        print(json.dumps({"record": record.to_dict(),
                          "transcript": [e.to_dict() for e in entries]}, indent=2))
        return
    from sessionforce.cli.render import Renderer

    console = out_console()
    renderer = Renderer(console, rich=console.is_terminal)
    console.print(f"[bold]{record.conversation_id}[/bold]  agent {record.agent_id}  {record.status.value}  "
                  f"{record.turns} turn(s), last sequenceId {record.last_sequence_id}, "
                  f"last activity {_ago(record.last_activity_at)}")
    for info in record.sessions:
        ended = f"{info.state.value} ({info.end_reason})" if info.end_reason else info.state.value
        console.print(f"  session {info.session_id}  key {info.external_session_key}  {ended}")
    if record.pending is not None:
        console.print(f"  [yellow]pending turn {record.pending.sequence_id} (sent by {record.pending.owner})[/yellow]")
    renderer.transcript(entries)


@sessions_app.command("end")
@guard
def end(
    conversation_id: Annotated[str, typer.Argument(metavar="ID", help="Conversation id.")],
    store: StoreOption = None,
    profile: ProfileOption = None,
) -> None:
    """End the live server session of a conversation (the conversation itself stays in the store).

    Needs the org (or a running emulator) that the session lives on.

    Example:

      sessionforce sessions end ticket-42 --profile prod
    """
    from sessionforce.agent_api import AsyncAgentClient
    from sessionforce.lifecycle import Conversations
    from sessionforce.store import open_store

    with open_target(profile, store=store, allow_emulator=False) as target:
        async def run() -> bool:
            the_store = open_store(target.store_url)
            try:
                await _load(the_store, conversation_id)
                async with AsyncAgentClient(settings=target.settings) as client:
                    return await Conversations(client, store=the_store).get(conversation_id).end()
            finally:
                await the_store.aclose()

        ended = asyncio.run(run())
    if ended:
        out_console().print(f"Ended the session of {conversation_id}.")
    else:
        out_console().print(f"[dim]{conversation_id} had no live session; nothing to end.[/dim]")


@sessions_app.command("reap")
@guard
def reap(
    idle: Annotated[str, typer.Option("--idle", help="End sessions idle at least this long: 90s, 15m, 2h.")] = "15m",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be reaped; reach no server.")] = False,
    store: StoreOption = None,
    profile: ProfileOption = None,
) -> None:
    """End the live sessions of conversations idle for at least --idle.

    Examples:

      sessionforce sessions reap --idle 15m --dry-run

      sessionforce sessions reap --idle 2h --profile prod
    """
    idle_for = parse_duration(idle)
    console = out_console()
    if dry_run:
        from sessionforce.store import ConversationStatus

        records = _with_store(store, profile, lambda s: s.list_conversations(
            status=ConversationStatus.ACTIVE, idle_for=idle_for, now=time.time()))
        for r in records:
            console.print(f"would end {r.conversation_id} (session {r.session_id}, idle {_ago(r.last_activity_at)})")
        console.print(f"[dim]{len(records)} conversation(s) idle for {idle} or more.[/dim]")
        return
    from sessionforce.agent_api import AsyncAgentClient
    from sessionforce.lifecycle import Conversations, reap_idle
    from sessionforce.store import open_store

    with open_target(profile, store=store, allow_emulator=False) as target:
        async def run() -> list[str]:
            the_store = open_store(target.store_url)
            try:
                async with AsyncAgentClient(settings=target.settings) as client:
                    return await reap_idle(Conversations(client, store=the_store), idle_for=idle_for)
            finally:
                await the_store.aclose()

        reaped = asyncio.run(run())
    for conversation_id in reaped:
        console.print(f"ended {conversation_id}")
    console.print(f"[dim]Reaped {len(reaped)} idle session(s).[/dim]")


@sessions_app.command("export")
@guard
def export(
    conversation_id: Annotated[str, typer.Argument(metavar="ID", help="Conversation id.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    store: StoreOption = None,
    profile: ProfileOption = None,
) -> None:
    """Export a conversation's transcript as JSON Lines (one entry per line; never holds secrets).

    Examples:

      sessionforce sessions export ticket-42 > ticket-42.jsonl

      sessionforce sessions export ticket-42 -o ticket-42.jsonl
    """
    async def work(s: Store) -> list[str]:
        await _load(s, conversation_id)
        return [entry.to_json() for entry in await s.transcript(conversation_id)]

    lines = _with_store(store, profile, work)
    text = "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        err_console().print(f"[dim]Wrote {len(lines)} line(s) to {output}.[/dim]")


def register(app: typer.Typer) -> None:
    """Add the ``sessions`` command group to ``app``."""
    app.add_typer(sessions_app)
