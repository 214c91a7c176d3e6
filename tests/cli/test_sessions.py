"""``sessionforce sessions``: list, show, export, end and reap, on a store the chat filled."""

from __future__ import annotations

import json

import httpx
import pytest

from sessionforce.cli.sessions_cmd import parse_duration
from sessionforce.emulator import RunningEmulator
from tests.cli.conftest import Cli


def _active_conversation(cli: Cli, emu: RunningEmulator) -> str:
    """A conversation left with a live session, as a detached app (a web worker) leaves one."""
    # A piped chat ends its session at EOF; to get one left open we use the library directly on the same store.
    import asyncio

    from sessionforce import AsyncAgentClient, Conversations

    async def run() -> None:
        async with (
            AsyncAgentClient(my_domain=emu.url, client_id=emu.client_id, client_secret=emu.client_secret,
                             agent_id=emu.default_agent_id) as client,
            Conversations(client, store=cli.store_url) as conversations,
        ):
            await conversations.get("ticket-42").send("what are your opening hours?")

    asyncio.run(run())
    return "ticket-42"


def test_list_show_export_end_and_reap(cli: Cli, emu: RunningEmulator) -> None:
    conversation = _active_conversation(cli, emu)
    listed = cli.run("sessions", "list")
    assert listed.returncode == 0, listed.stderr
    assert "ticket-42" in listed.stdout
    assert "active" in listed.stdout
    active = json.loads(cli.run("sessions", "list", "--status", "active", "--json").stdout)
    assert [r["conversation_id"] for r in active] == [conversation]

    shown = cli.run("sessions", "show", conversation)
    assert "you: what are your opening hours?" in shown.stdout
    exported = cli.run("sessions", "export", conversation).stdout.splitlines()
    assert [json.loads(line)["kind"] for line in exported] == ["session_started", "turn"]

    # With no org configured there is nothing to reach: a clear message and exit 3.
    unreachable = cli.run("sessions", "end", conversation)
    assert unreachable.returncode == 3
    assert "no org configured" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

    dry = cli.run("sessions", "reap", "--idle", "0s", "--dry-run")
    assert f"would end {conversation}" in dry.stdout
    cli.with_org(emu)
    reaped = cli.run("sessions", "reap", "--idle", "0s")
    assert reaped.returncode == 0, reaped.stderr
    assert f"ended {conversation}" in reaped.stdout
    sessions = httpx.get(f"{emu.url}/__emulator/sessions").json()["sessions"]
    assert [s["state"] for s in sessions] == ["ended"]
    again = cli.run("sessions", "end", conversation)
    assert again.returncode == 0
    assert "no live session" in again.stdout


def test_end_ends_the_live_session_and_unknown_ids_are_usage_errors(cli: Cli, emu: RunningEmulator) -> None:
    conversation = _active_conversation(cli, emu)
    cli.with_org(emu)
    ended = cli.run("sessions", "end", conversation)
    assert ended.returncode == 0, ended.stderr
    assert httpx.get(f"{emu.url}/__emulator/sessions").json()["sessions"][0]["state"] == "ended"
    missing = cli.run("sessions", "show", "nope")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "error: no conversation 'nope' in the store. What to do: `sessionforce sessions list`.")
    bad = cli.run("sessions", "reap", "--idle", "soon")
    assert bad.returncode == 2
    assert "not a duration" in bad.stderr


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("30", 30)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
