"""Many workers on one Redis (issue 5): 4 processes share 50 conversations and take turns at random.
Proven from the emulator's counters. (The SIGKILL takeover, on Redis and SQLite: test_multiprocess.py.)"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sessionforce import AsyncAgentClient, Conversations
from sessionforce.emulator import RunningEmulator
from sessionforce.store import ConversationStatus, open_store
from tests.support import Admin, client_kwargs

ROOT = Path(__file__).resolve().parents[2]


def worker_args(emu: RunningEmulator, store: str) -> list[str]:
    return [emu.url, emu.client_id, emu.client_secret, emu.default_agent_id, store]


@pytest.mark.timeout(120)
async def test_four_workers_share_fifty_conversations(
    emu: RunningEmulator, admin: Admin, redis_url: str, redis_prefix: str
) -> None:
    store_url = f"{redis_url}?prefix={redis_prefix}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.conversation.random_worker", *worker_args(emu, store_url),
             f"w{n}", "50", "40", str(n)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(4)
    ]
    outputs = [w.communicate(timeout=90) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    answered = [line.split(maxsplit=2) for out, _ in outputs for line in out.splitlines()]
    assert len(answered) == 160

    # Every session's sequenceIds strictly increase, no 423, each turn delivered exactly once.
    counters = admin.counters()
    assert counters["locked"] == 0
    turns = admin.turns()
    texts = Counter(t["text"] for t in turns)
    assert texts == Counter(f"w{n} turn {i}" for n in range(4) for i in range(40))
    by_session: dict[str, list[int]] = {}
    for t in turns:
        by_session.setdefault(t["sessionId"], []).append(t["sequenceId"])
    for seqs in by_session.values():
        assert seqs == sorted(set(seqs))
    # Per conversation, the sequence ids the workers saw are unique (allocated under the shared lease).
    per_conversation = Counter((conv, seq) for conv, seq, _ in answered)
    assert max(per_conversation.values()) == 1

    # End every conversation, as a deployment's shutdown or reaper would; then nothing is left open.
    store = open_store(store_url)
    try:
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            for record in await store.list_conversations(status=ConversationStatus.ACTIVE):
                assert await Conversations(client, store=store).get(record.conversation_id).end()
    finally:
        await store.aclose()
    assert {s["state"] for s in admin.sessions()} == {"ended"}
    assert counters["sessions"]["open"] == len(by_session)
