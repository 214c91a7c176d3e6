"""The lifecycle's own CPU per turn: ``Conversation.send`` with the HTTP calls replaced by canned replies.

``python -m bench.lifecycle_cost [--store memory|sqlite] [--turns N] [--repeats R]`` runs one conversation's
turns through a client whose ``start_session`` and ``send_message`` return at once (the reply is parsed
from a canned body, as the real call would), so what is timed is the lifecycle alone: the turn lock, the
store lease, the record load, the pending-turn write-ahead, the final save with its transcript entry, and
the reply object. Printed: the median CPU microseconds per turn over the repeats, minus the canned send's
own cost. Warm caches and no I/O: the real per-turn cost, one turn at a time against a server, is
higher (see docs/benchmarks.md); use this to compare changes to the lifecycle with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import header
from sessionforce import AsyncAgentClient, Conversations
from sessionforce.agent_api._client import Session, parse_response
from sessionforce.agent_api._models import MessagesResponse, VariableInput
from sessionforce.agent_api._reply import Reply, construct_validated
from sessionforce.store import MemoryStore, SQLiteStore

BODY = (
    b'{"messages":[{"type":"Inform","id":"m1","feedbackId":"f1","isContentSafe":true,"message":"pong",'
    b'"result":[],"citedReferences":[]}],"_links":{}}'
)


class CannedClient(AsyncAgentClient):
    """A client whose session starts and sends answer at once with a canned reply (no HTTP)."""

    async def start_session(
        self,
        agent_id: str | None = None,
        *,
        external_session_key: str | None = None,
        variables: Iterable[VariableInput] = (),
        bypass_user: bool = True,
        tz: str | None = None,
        streaming: bool = True,
    ) -> Session:
        return Session(session_id="canned-session", external_session_key=external_session_key or "key",
                       agent_id=agent_id or "agent", greeting=Reply(messages=[]))

    async def send_message(self, session_id: str, text: str, *, sequence_id: int, **_: Any) -> Reply:
        parsed = parse_response(MessagesResponse, BODY, 200)
        return construct_validated(
            Reply, {"messages": parsed.messages, "session_id": session_id, "sequence_id": sequence_id}
        )


async def measure(store_kind: str, turns: int, repeats: int) -> tuple[float, float]:
    """(median lifecycle CPU seconds per turn, the canned send's own CPU seconds per call)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = MemoryStore() if store_kind == "memory" else SQLiteStore(Path(tmp) / "lifecycle.db")
        client = CannedClient(my_domain="http://127.0.0.1:9", client_id="id", client_secret="secret",
                              agent_id="0XxCANNED")
        conversation = Conversations(client, store=store).get("lifecycle")
        await conversation.send("warm up")
        started = time.process_time()
        for seq in range(turns):
            await client.send_message("canned-session", "ping", sequence_id=seq + 1)
        canned = (time.process_time() - started) / turns
        per_turn = []
        for _ in range(repeats):
            gc.collect()
            started = time.process_time()
            for _ in range(turns):
                await conversation.send("ping")
            per_turn.append((time.process_time() - started) / turns - canned)
        await store.aclose()
        await client.aclose()
    return statistics.median(per_turn), canned


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.turns, args.repeats = 200, 1
    header("Lifecycle CPU per turn, HTTP replaced by canned replies")
    per_turn, canned = asyncio.run(measure(args.store, args.turns, args.repeats))
    print(f"store: {args.store}; turns per repeat: {args.turns}; repeats: {args.repeats}")
    print(f"lifecycle CPU per turn (median): {per_turn * 1e6:.1f} us (the canned send itself: {canned * 1e6:.1f} us)")


if __name__ == "__main__":
    main()
