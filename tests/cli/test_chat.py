"""``sessionforce chat``: through a pseudo-terminal (as a person types) and with piped stdin (as a script)."""

from __future__ import annotations

import json
import re
import subprocess

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
        _say(child, "first words", "You said: first words")
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


def _sessions(emu: RunningEmulator) -> list[dict[str, object]]:
    return list(httpx.get(f"{emu.url}/__emulator/sessions").json()["sessions"])


def test_feedback_after_end_says_there_is_nothing_to_rate_yet(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    done = cli.run("chat", "--no-stream", input="what are your opening hours?\n/end\n/feedback good\n")
    assert done.returncode == 0, done.stderr
    assert "no reply to rate in this session yet" in done.stderr  # a warning: on stderr when piped
    assert "error" not in done.stdout
    counters = httpx.get(f"{emu.url}/__emulator/counters").json()
    assert not any(key.startswith("feedback") for key in counters["requests"])  # nothing sent, so no 404


def test_a_broken_stream_is_one_line_after_the_partial_reply(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    emu.set_faults({"rules": [{"route": "stream_message", "drop_after_chunks": 2, "times": 1}]})
    done = cli.run("chat", input="what are your opening hours?\nwarranty?\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    partial = next(n for n, line in enumerate(lines) if line.startswith("agent: We're open"))
    assert lines[partial].rstrip() == "agent: We're open"  # nothing glued to the partial reply
    assert not [line for line in lines if "error" in line.lower() or "delivery" in line.lower()]
    # Piped, the error is a diagnostic: one line on stderr, said once.
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower() or "delivery" in line.lower()]
    assert errors == ["error: the reply broke off: the agent got your message, so it is not resent (ask it to go "
                      "on, or see /transcript)"]
    assert "90-day warranty" in done.stdout  # the chat went on


def test_input_that_is_not_utf8_is_not_sent_and_exits_2(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    done = subprocess.run([*COMMAND, "chat"], input=b"first words\ncaf\xe9\nnot sent\n", capture_output=True,
                          env=cli.env, timeout=30, check=False)
    assert done.returncode == 2
    out = done.stdout.decode()
    assert "You said: first words" in out
    assert "error: line 2 of the input is not UTF-8 text (byte 0xe9 at position 4); it was not sent" in (
        done.stderr.decode()
    )
    assert "you: not sent" not in out
    assert b"Traceback" not in done.stderr
    turns = httpx.get(f"{emu.url}/__emulator/counters").json()["turns"]
    assert [t["text"] for t in turns] == ["first words"]
    assert [s["state"] for s in _sessions(emu)] == ["ended"]


def test_conversation_ids_are_carried_on_or_created_on_purpose(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    missing = cli.run("chat", "-c", "ticket-9", input="hi\n")
    assert missing.returncode == 2
    assert missing.stderr.strip() == ("error: no conversation 'ticket-9' in the store. What to do: `sessionforce "
                                      "sessions list`, or add --new to start one with this id.")
    assert _sessions(emu) == []  # nothing was started
    assert cli.run("chat", "-c", "ticket-9", "--new", input="my name is Ada\n").returncode == 0
    again = cli.run("chat", "-c", "ticket-9", input="what are your opening hours?\n")
    assert again.returncode == 0, again.stderr
    shown = cli.run("sessions", "show", "ticket-9").stdout
    assert "my name is Ada" in shown
    assert "opening hours" in shown


def test_a_chat_whose_first_session_cannot_start_leaves_no_record(cli: Cli) -> None:
    done = cli.run("chat", "--agent", "0XxNOPE00000000001", input="hi\n")
    assert done.returncode == 2
    assert "Agent not found" in done.stderr
    listed = cli.run("sessions", "list")
    assert "No conversations in the store" in listed.stdout


def test_expiry_says_what_the_agent_knows_and_replay_carries_context(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    expire = "/expire\n"
    plain = cli.run("chat", "--no-stream", input=f"my name is Ada\n{expire}what are your opening hours?\n"
                    "/transcript\n")
    assert plain.returncode == 0, plain.stderr
    out = plain.stdout
    assert "resumed on new session" in out
    assert "the agent does not remember earlier turns" in out
    after = out.split("resumed on new session", 1)[1]
    # The new session's greeting is not shown mid-conversation: the next agent line is the reply.
    assert next(line for line in after.splitlines() if line.startswith("agent:")).startswith("agent: We're open")
    assert "#2: refused (404) by a session that had expired" in out

    replay = cli.run("chat", "--no-stream", "--resume", "replay",
                     input=f"my name is Ada\n{expire}what is my name?\n")
    assert replay.returncode == 0, replay.stderr
    assert "the last turns were replayed to it" in replay.stdout
    assert "agent: Your name is Ada." in replay.stdout


def test_history_file_and_store_are_private(cli: Cli, emu: RunningEmulator) -> None:
    import os
    import stat

    cli.with_org(emu)
    child = _spawn(cli, "--no-stream")
    try:
        child.expect(PROMPT)
        _say(child, "what are your opening hours?", "Tuesday")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    history = cli.home / "state" / "sessionforce" / "chat_history"
    assert stat.S_IMODE(os.stat(history).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(history.parent).st_mode) == 0o700
    assert "opening hours" in history.read_text()


def test_one_ctrl_c_during_a_reply_is_one_line_and_typing_waits_for_the_prompt(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    child = _spawn(cli)
    try:
        child.expect(PROMPT)
        emu.set_faults({"rules": [{"route": "stream_message", "latency_ms": 1500}]})
        child.sendline("slow one")
        child.expect("Working on it")
        child.send("typed ahead")  # while the reply is on its way
        child.expect("You said: slow one")
        during = child.before
        child.expect(PROMPT)
        assert "typed ahead" not in during + child.before  # not echoed into the spinner or the reply
        child.expect("typed ahead")  # ...but waiting at the next prompt
        child.sendline("")
        child.expect("You said: typed ahead")
        child.expect(PROMPT)
        child.sendline("slow two")
        child.expect("Working on it")
        child.sendintr()
        child.expect(PROMPT)
        lines = [line for line in child.before.splitlines() if line.strip(" \r\x1b[0123456789;?hlmKGAJ")]
        said = [line for line in lines if "cancelled" in line or "delivery" in line or "error" in line]
        assert len(said) == 1, child.before
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_quitting_after_expire_says_the_session_was_already_gone(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    done = cli.run("chat", input="hello\n/expire\n")
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert "had already expired or ended on the server: nothing to end" in last
    assert "UserRequest" not in last


def test_replay_carries_context_without_re_asking(cli: Cli, emu: RunningEmulator) -> None:
    cli.with_org(emu)
    done = cli.run("chat", "--no-stream", "--resume", "replay",
                   input="my name is Ada\nwhat is my name?\nbook a repair\n/expire\nwhat is my name?\nwarranty?\n")
    assert done.returncode == 0, done.stderr
    after = done.stdout.split("resumed on new session", 1)[1]
    assert "agent: Your name is Ada." in after  # the replayed question did not wipe the replayed fact
    assert "90-day warranty" in after  # and the replayed "book a repair" did not swallow the next turn
