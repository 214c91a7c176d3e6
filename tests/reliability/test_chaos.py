"""Chaos: many conversations under injected faults; nothing lost, nothing twice, nothing left open.

Faults (emulator rules, seeded): on both turn routes 10% 503, 5% 429 with ``Retry-After``, 1% reset before
the turn is processed and 1% after (2% connection resets in all), 2% session expiries; 2% of streams
dropped after one text chunk. Token expiry "every 30 s of emulator time": the emulator runs with
``token_ttl=30`` and a background task moves its clock forward 10 s every quarter second through the
admin route, so every token dies a few times per run while turns are in flight (a fault rule firing
``expire_token`` every Nth request would also work, but ties expiry to request counts, not to time).

The proof compares three independent records: what the application saw (each turn answered, or an
exception), each conversation's transcript, and the emulator's counters (every accepted turn with its
session and sequenceId, requests by route and status, 423 count, sessions open/ended/expired).

Size: ``SESSIONFORCE_CHAOS_SCALE`` = ``small`` (CI: 40 conversations x 6 turns, the default) or ``full``
(200 x 10), or ``NxT`` (e.g. ``100x8``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

from sessionforce import AsyncAgentClient, Conversation, Conversations
from sessionforce.agent_api import RetryPolicy
from sessionforce.emulator import run_emulator
from sessionforce.errors import DeliveryUnknown, SessionforceError, SessionLocked, StreamInterrupted
from sessionforce.store import MemoryStore
from tests.support import Admin, client_kwargs

TURN_ROUTES = ("send_message", "stream_message")


def chaos_size() -> tuple[int, int]:
    """(conversations, turns each) from SESSIONFORCE_CHAOS_SCALE."""
    scale = os.environ.get("SESSIONFORCE_CHAOS_SCALE", "small").strip().lower()
    if scale == "full":
        return 200, 10
    if scale in ("", "small"):
        return 40, 6
    conversations, _, turns = scale.partition("x")
    return int(conversations), int(turns)


def fault_rules() -> list[dict[str, Any]]:
    """The chaos mix, on both turn routes."""
    rules: list[dict[str, Any]] = []
    for route in TURN_ROUTES:
        rules += [
            {"route": route, "status": 503, "probability": 0.10},
            {"route": route, "status": 429, "retry_after": 0.05, "probability": 0.05},
            {"route": route, "reset": "before", "probability": 0.01},
            {"route": route, "reset": "after", "probability": 0.01},
            {"route": route, "expire_session": True, "probability": 0.02},
        ]
    rules.append({"route": "stream_message", "drop_after_chunks": 1, "probability": 0.02})
    return rules


@dataclass
class Outcome:
    """What the application saw for one turn."""

    conversation: str
    text: str
    streamed: bool
    result: str  # answered | failed | unknown | interrupted
    error: str = ""


@dataclass
class Run:
    """Everything one chaos run observed."""

    outcomes: list[Outcome] = field(default_factory=list)
    transcripts: dict[str, list[Any]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)


async def _turn(conversation: Conversation, text: str, streamed: bool) -> None:
    if streamed:
        async with conversation.stream(text) as stream:
            await stream.final_reply()
    else:
        await conversation.send(text)


async def _conversation(manager: Conversations, n: int, turns: int, run: Run) -> None:
    conversation = manager.get(f"chaos-{n}", lock_wait=60)
    for k in range(turns):
        text = f"chaos {n}-{k} {uuid.uuid4().hex}"
        streamed = k % 3 == 2
        outcome = Outcome(conversation.conversation_id, text, streamed, "answered")
        try:
            await _turn(conversation, text, streamed)
        except StreamInterrupted as exc:
            outcome.result, outcome.error = "interrupted", type(exc).__name__
        except DeliveryUnknown as exc:
            outcome.result, outcome.error = "unknown", type(exc).__name__
        except SessionLocked as exc:  # must never happen: the client keeps one request per session
            run.unexpected.append(f"{text}: {exc!r}")
            outcome.result, outcome.error = "failed", type(exc).__name__
        except SessionforceError as exc:
            outcome.result, outcome.error = "failed", type(exc).__name__
        run.outcomes.append(outcome)
    for attempt in range(5):  # ending is retried by the client itself; bounded here for the record
        try:
            await conversation.end()
            break
        except SessionforceError as exc:
            if attempt == 4:
                run.unexpected.append(f"end of {conversation.conversation_id}: {exc!r}")
    run.transcripts[conversation.conversation_id] = await conversation.transcript()


async def _advance_clock(admin: Admin, stop: asyncio.Event) -> int:
    advances = 0
    while not stop.is_set():
        await asyncio.to_thread(admin.advance, 10)
        advances += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.25)
    return advances


async def chaos_run(conversations: int, turns: int) -> tuple[Run, dict[str, Any], dict[str, Any], int, int]:
    """Run the chaos; returns (run, emulator counters, fault rule counts, token fetches, clock advances)."""
    with run_emulator(token_ttl=30, idle_timeout=10**7, seed=7, record_transcripts=False) as emu:
        admin = Admin(emu.url)
        admin.faults(*fault_rules(), seed=7)
        retry = RetryPolicy(max_retries=4, backoff_initial=0.02, backoff_max=0.2, total_timeout=10)
        run = Run()
        stop = asyncio.Event()
        async with AsyncAgentClient(**client_kwargs(emu), retry=retry, max_connections=100) as client:
            manager = Conversations(client, store=MemoryStore())
            ticker = asyncio.create_task(_advance_clock(admin, stop))
            try:
                await asyncio.gather(*(_conversation(manager, n, turns, run) for n in range(conversations)))
            finally:
                stop.set()
                advances = await ticker
            fetches = getattr(client.transport.token_provider, "fetches", 0)
        counters = admin.counters()
        faults = admin.http.get("/faults").json()
        admin.http.close()
    return run, counters, faults, fetches, advances


def verify(run: Run, counters: dict[str, Any]) -> dict[str, int]:
    """Every assertion of the chaos proof; returns a summary of the outcomes."""
    assert not run.unexpected, run.unexpected
    accepted = Counter(t["text"] for t in counters["turns"])
    assert counters["turnsDropped"] == 0
    ours = {o.text: o for o in run.outcomes}
    # Nothing accepted that we did not send (preambles are off), and nothing accepted twice.
    assert set(accepted) <= set(ours), set(accepted) - set(ours)
    twice = {text: n for text, n in accepted.items() if n > 1}
    assert not twice, f"delivered more than once: {twice}"
    for o in run.outcomes:
        seen = accepted.get(o.text, 0)
        if o.result == "answered":
            assert seen == 1, f"{o.result} turn accepted {seen} times: {o}"
        elif o.result == "failed":
            assert seen == 0, f"turn reported failed but the agent accepted it: {o}"
        elif o.result == "interrupted":
            # A StreamInterrupted says the turn was delivered: the agent accepted it, exactly once.
            assert seen == 1, f"stream reported delivered but accepted {seen} times: {o}"
        else:
            # Delivery unknown: it may or may not have arrived, but never twice.
            assert seen <= 1, o
    # Per session, sequenceIds strictly increase in the order the emulator accepted them.
    last: dict[str, int] = {}
    for t in counters["turns"]:
        assert t["sequenceId"] > last.get(t["sessionId"], 0), f"sequenceId went backwards: {t}"
        last[t["sessionId"]] = t["sequenceId"]
    # The transcripts say the same as the application: one entry per turn, of the matching kind.
    kind_for = {"answered": "turn", "failed": "error", "unknown": "delivery_unknown", "interrupted": "delivery_unknown"}
    by_text: dict[str, list[str]] = defaultdict(list)
    for entries in run.transcripts.values():
        for entry in entries:
            if entry.kind in ("turn", "error", "delivery_unknown"):
                by_text[entry.text].append(entry.kind)
    for o in run.outcomes:
        assert by_text.get(o.text) == [kind_for[o.result]], f"transcript {by_text.get(o.text)} for {o}"
    # No 423s, and every session ended or expired.
    assert counters["locked"] == 0
    assert not any(key.endswith(" 423") for key in counters["requests"])
    sessions = counters["sessions"]
    assert sessions["open"] == 0, sessions
    assert sessions["started"] == sessions["ended"] + sessions["expired"], sessions
    summary = dict(Counter(o.result for o in run.outcomes))
    summary["interrupted but not accepted"] = sum(
        1 for o in run.outcomes if o.result == "interrupted" and not accepted.get(o.text))
    summary["unknown and accepted"] = sum(1 for o in run.outcomes if o.result == "unknown" and accepted.get(o.text))
    return summary


@pytest.mark.timeout(600)
async def test_chaos_nothing_lost_nothing_twice() -> None:
    conversations, turns = chaos_size()
    run, counters, faults, fetches, advances = await chaos_run(conversations, turns)
    summary = verify(run, counters)
    assert len(run.outcomes) == conversations * turns
    fired: Counter[str] = Counter()
    for rule in faults["rules"]:
        action = next(k for k in ("status", "reset", "expire_session", "drop_after_chunks") if k in rule)
        fired[f"{action}={rule[action]}"] += rule["fired"]
    requests = counters["requests"]
    unauthorized = sum(n for key, n in requests.items() if key.endswith(" 401"))
    # The faults really happened (else the proof proves little).
    assert fired["status=503"] > 0
    assert fired["status=429"] > 0
    assert fired["expire_session=True"] > 0
    assert unauthorized > 0, "no token expired during the run"
    assert fetches > 1, "no token was refreshed during the run"
    print(f"\nchaos {conversations}x{turns}: outcomes {summary}; faults fired {dict(fired)}; "
          f"401s {unauthorized}; token fetches {fetches}; clock advances {advances} x 10 s; "
          f"sessions {counters['sessions']}; requests {dict(sorted(requests.items()))}")
