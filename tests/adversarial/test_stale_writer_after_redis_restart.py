"""Finding 3: a stale worker must not overwrite a newer record after Redis restarts empty.

Worker A (this process) holds the lease (fence 1) and its turn is in flight when Redis is killed and
comes back empty. Worker B (another process) takes the lease, gets fence 1 too, starts its own session and
sends its turn. A's answer arrives first and A saves: that save must be refused (A's lease is not the
current one), and B's record (its session, its turn) must survive.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import uuid
from pathlib import Path

import httpx

from sessionforce.emulator import CallableAgent, TurnContext, run_emulator
from sessionforce.errors import ConversationError
from tests.adversarial import _harness
from tests.adversarial._assertions import outcome_within
from tests.adversarial._redis_proc import RedisProcess

_ROOT = Path(__file__).resolve().parents[2]
"""The repository root: where ``python -m tests.adversarial._worker`` finds its package."""


async def test_stale_worker_cannot_overwrite_the_record_of_the_worker_that_took_over(
    redis_proc: RedisProcess,
) -> None:
    a_in_flight, b_in_flight, a_done = threading.Event(), threading.Event(), threading.Event()

    def agent_a(ctx: TurnContext) -> str:
        redis_proc.restart_empty()  # A's turn is in flight; Redis loses everything
        a_in_flight.set()
        b_in_flight.wait(20)  # A's answer comes back only once B's turn is in flight
        return f"A heard: {ctx.text}"

    def agent_b(ctx: TurnContext) -> str:
        b_in_flight.set()
        a_done.wait(20)  # B's answer comes back only once A has tried to save
        return f"B heard: {ctx.text}"

    store_url = f"{redis_proc.url}?prefix=adv:{uuid.uuid4().hex}:"
    store = _harness.open_store(store_url)
    with run_emulator(agents=[CallableAgent(agent_a, name="A")]) as emu_a, \
            run_emulator(agents=[CallableAgent(agent_b, name="B")]) as emu_b:
        try:
            async with _harness.emulator_client(emu_a, store=store) as owner:
                conv = _harness.conversation(owner, "contended")
                turn_a = asyncio.ensure_future(outcome_within(conv.send("from A"), 25, "worker A's turn"))
                assert await asyncio.to_thread(a_in_flight.wait, 10), "worker A's turn never reached its agent"
                worker_b = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tests.adversarial._worker",
                    json.dumps({"url": emu_b.url, "client_id": emu_b.client_id, "secret": emu_b.client_secret,
                                "agent_id": emu_b.default_agent_id, "store": store_url,
                                "conversation": "contended", "text": "from B"}),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=_ROOT,
                )
                outcome_a = await turn_a
                a_done.set()
                out, err = await asyncio.wait_for(worker_b.communicate(), 20)
                result_b = json.loads(out or b"{}") if out.strip() else {"ok": False, "error": err.decode()[-800:]}
                record = await conv.record()
                transcript = await conv.transcript()
        finally:
            a_done.set()
            b_in_flight.set()
            await store.aclose()
        listed = httpx.get(f"{emu_b.url}/__emulator/sessions", timeout=5).json()["sessions"]
        sessions_b = [session["sessionId"] for session in listed]
    assert len(sessions_b) == 1, f"worker B did not start its session: {result_b}"
    assert record is not None
    assert record.session_id == sessions_b[0], (
        f"B's record was overwritten by the stale worker A: the record names session {record.session_id}, B's "
        f"session {sessions_b[0]} is open on the server and unknown to the record; worker B reported {result_b}"
    )
    assert outcome_a.error is not None, "worker A's stale save was accepted"
    assert isinstance(outcome_a.error, ConversationError), f"A was refused with {outcome_a.error!r}"
    assert result_b.get("ok"), f"worker B's turn failed: {result_b}"
    assert any(e.kind == "turn" and e.text == "from B" for e in transcript), "B's turn has no transcript entry"
