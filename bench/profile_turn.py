"""Profile the client's hot path: many ``Conversation.send`` turns against the emulator (separate process).

``python -m bench.profile_turn [--store memory|sqlite] [--turns N] [--in-flight K]`` prints the top
functions by own time from :mod:`cProfile` (standard library; no extra package). For a call tree, run it
under pyinstrument or py-spy instead (``pyinstrument -m bench.profile_turn``), which are not
dependencies of the project.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from bench.common import CLIENT_ID, CLIENT_SECRET, DEMO_AGENT_ID, header, server_process
from sessionforce import AsyncAgentClient, Conversations
from sessionforce.store import MemoryStore, SQLiteStore


async def turns(url: str, store_kind: str, count: int, in_flight: int, profiler: cProfile.Profile | None) -> None:
    """Warm up one turn per conversation, then profile ``count`` turns per conversation."""
    with tempfile.TemporaryDirectory() as tmp:
        store = MemoryStore() if store_kind == "memory" else SQLiteStore(Path(tmp) / "profile.db")
        async with AsyncAgentClient(my_domain=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                    agent_id=DEMO_AGENT_ID) as client:
            manager = Conversations(client, store=store)
            conversations = [manager.get(f"profile-{n}") for n in range(in_flight)]
            await asyncio.gather(*(c.send("warm up") for c in conversations))

            async def lane(n: int) -> None:
                for i in range(count):
                    await conversations[n].send(f"ping {n}-{i}")

            if profiler is not None:
                profiler.enable()
            await asyncio.gather(*(lane(n) for n in range(in_flight)))
            if profiler is not None:
                profiler.disable()
        await store.aclose()


def main(argv: list[str] | None = None) -> None:
    """Run and print the profile."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-cprofile", action="store_true", help="run without cProfile (for an outside profiler)")
    args = parser.parse_args(argv)
    header("Profile of Conversation.send")
    profiler = None if args.no_cprofile else cProfile.Profile(time.process_time)  # CPU, not wall
    with server_process("emulator") as server:
        asyncio.run(turns(server.url, args.store, args.turns, args.in_flight, profiler))
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
