"""``sessionforce chat``: through a pseudo-terminal (as a person types) and with piped stdin (as a script)."""

from __future__ import annotations

import json
import re

import httpx
import pexpect

from sessionforce.emulator import RunningEmulator
from tests.cli.conftest import COMMAND, Cli

PROMPT = r"(you|answer) ›"


def _spawn(cli: Cli, *args: str) -> pexpect.spawn:
    return pexpect.spawn(COMMAND[0], [*COMMAND[1:], "chat", *args], env=cli.env, encoding="utf-8",
                          timeout=10, dimensions=(40, 100))


def _say(child: pexpect.spawn, line: str, *expected: str) -> str:
    """Type a line, wait for each expected pattern in order and for the next prompt; return what came."""
    child.sendline(line)
    seen = []
    for pattern in expected:
        child.expect(pattern)
        seen.append(child.before + child.after)
    child.expect(PROMPT)
    seen.append(child.before)
    return "".join(seen)


def test_full_chat_in_a_terminal_with_expiry_resume_end_feedback_and_ctrl_d(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    child = _spawn(cli)
    try:
        child.expect("session .* started")
        child.expect("How can I help")
        child.expect(PROMPT)
        _say(child, "what are your opening hours?", "agent ›", "Tuesday to Saturday")
        _say(child, "book a repair", "Which date", "asks for date")
        _say(child, "2026-12-01", "Shall I book a repair slot on 2026-12-01", "answer yes/no")
        booked = _say(child, "yes", "BookRepair", "bookingId")
        assert "RPR-" in booked
        _say(child, "/feedback good great", "feedback GOOD sent")
        first = list(emu.call(lambda s: list(s.sessions)))
        _say(child, "/expire", "expire session")
        resumed = _say(child, "warranty?", "expired", "resumed on new session", r"\[1\]")
        assert "the last one expired" in resumed
        assert "https://cogandchain.example/policies/warranty" in resumed
        info = _say(child, "/info", "last sequenceId")
        assert "sessions so far" in info
        # Ending on purpose is followed by a fresh session (with its greeting), not a "resume".
        fresh = _say(child, "/end", r"ended \(UserRequest\)", "session .* started", "How can I help")
        assert "resumed" not in fresh
        transcript = _say(child, "/transcript", "warranty")
        assert "session_ended" in transcript
        _say(child, "/help", "/feedback good")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    sessions = httpx.get(f"{emu.url}/__emulator/sessions").json()["sessions"]
    assert len(sessions) == 3  # first, resumed after expiry, new after /end
    assert [s for s in sessions if s["state"] == "active"] == []
    assert first[0] in {s["sessionId"] for s in sessions if s["state"] == "expired"}
    counters = httpx.get(f"{emu.url}/__emulator/counters").json()
    assert counters["requests"].get("feedback 201") == 1


def test_ctrl_c_at_the_prompt_ends_the_session_and_exits_0(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    child = _spawn(cli, "--no-stream")
    try:
        child.expect(PROMPT)
        _say(child, "hello", "You said: hello")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert all(s["state"] != "active" for s in httpx.get(f"{emu.url}/__emulator/sessions").json()["sessions"])


def test_ctrl_c_during_a_reply_cancels_that_turn_and_the_chat_goes_on(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    child = _spawn(cli)
    try:
        child.expect(PROMPT)
        # The next reply takes 3 s: long enough to interrupt it while it is on its way.
        faults = {"rules": [{"route": "stream_message", "latency_ms": 3000, "times": 1}]}
        httpx.put(f"{emu.url}/__emulator/faults", json=faults).raise_for_status()
        child.sendline("this one is slow")
        child.expect("Working on it")  # the agent's progress spinner: the reply is on its way
        child.sendintr()
        child.expect("turn cancelled")
        child.expect(PROMPT)
        _say(child, "and this one is not", "You said: and this one is not")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    sessions = httpx.get(f"{emu.url}/__emulator/sessions").json()["sessions"]
    assert [s["state"] for s in sessions] == ["ended"]  # one session, carried on after the cancel, then ended
    counters = httpx.get(f"{emu.url}/__emulator/counters").json()
    # The cancelled turn had reached the agent, which finished it (as a real server does): each turn was
    # accepted exactly once, and the next one waited out the 423s while the first was still running.
    assert [t["text"] for t in counters["turns"]] == ["this one is slow", "and this one is not"]
    assert counters["locked"] >= 1


def test_piped_stdin_one_turn_per_line_on_the_built_in_emulator(cli: Cli) -> None:
    result = cli.run("chat", input="what are your opening hours?\nbook a repair\n2026-12-01\nyes\n/info\n")
    assert result.returncode == 0, result.stderr
    assert re.search(r"No org configured: chatting with the built-in emulator \(demo agent 0Xx\w+\) at "
                     r"http://127\.0\.0\.1:\d+", result.stderr)
    out = result.stdout
    assert "\x1b[" not in out  # plain output for scripts
    assert "agent: Hi, I'm the Cog & Chain Bikes assistant" in out
    assert "you: book a repair" in out
    assert "agent: We're open Tuesday to Saturday" in out
    assert "agent: Booked: your repair is on 2026-12-01" in out
    assert "BookRepair" in out
    conversation = re.search(r"conversation\s+(chat-\S+)", out)
    assert conversation
    # The conversation is in the store the user can inspect, and its session was ended at end of input.
    listed = cli.run("sessions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    records = {r["conversation_id"]: r for r in json.loads(listed.stdout)}
    assert records[conversation.group(1)]["status"] == "idle"
