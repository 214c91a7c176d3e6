"""Scale: 10,000 concurrent conversations in one process, 200 ms injected latency, 3 turns each.

The emulator runs in a separate process with the fault rule ``{route: send_message, latency_ms: 200}``
(session starts get no injected latency: they are set-up, not measured). One
:class:`AsyncAgentClient` with the in-memory store and a pool of ``--max-connections`` connections holds
``--conversations`` detached conversations; each starts its session, then:

* **burst**: every conversation sends its turns back to back, all at once: turns per second is the
  capacity of client + emulator on this machine; latency is mostly queueing for the pool and the emulator;
* **paced**: turns arrive on a fixed schedule at ``--rate`` turns per second (each conversation's turns
  ``conversations / rate`` seconds apart), the steady load of a busy chat service: added latency is
  measured from each turn's scheduled time to its reply, minus the injected 200 ms.

Each phase also runs with bare aiohttp POSTs (one session per conversation) in the same run, the
baseline for the added latency. Memory: peak RSS, and bytes per live idle conversation, two ways:
(1) RSS growth of this process across holding all the conversations (includes the pool's buffers and
the allocator's slack), and (2) tracemalloc, the marginal cost of ``--traced`` more idle conversations
on a client that already holds as many: the Conversation object, its record in the MemoryStore and its
transcript (3 turns + the session start), with and without the transcript. "Idle" = detached, its
session open, no turn running. Each phase gets a fresh emulator process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable

import aiohttp

from bench.common import (
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    DEMO_AGENT_ID,
    GCPauses,
    current_rss_bytes,
    fetch_token,
    gc_pauses,
    header,
    peak_rss_bytes,
    percentile,
    send_body,
    server_process,
    start_bare_session,
)
from sessionforce import AsyncAgentClient
from sessionforce.lifecycle import Conversation, Conversations
from sessionforce.store import MemoryStore

LATENCY = 0.2
Send = Callable[[int, int], Awaitable[None]]


async def _gather_bounded(count: int, limit: int, make: Callable[[int], Awaitable[None]]) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(n: int) -> None:
        async with semaphore:
            await make(n)

    await asyncio.gather(*(one(n) for n in range(count)))


async def burst(count: int, turns: int, send: Send) -> tuple[float, list[float]]:
    """All conversations send their turns back to back at once; (turns/s, added latencies)."""
    added: list[float] = []

    async def lane(n: int) -> None:
        for k in range(turns):
            t0 = time.perf_counter()
            await send(n, k)
            added.append(time.perf_counter() - t0 - LATENCY)

    started = time.perf_counter()
    await asyncio.gather(*(lane(n) for n in range(count)))
    return count * turns / (time.perf_counter() - started), added


async def paced(count: int, turns: int, rate: float, send: Send) -> tuple[float, list[float], GCPauses]:
    """Turns on a fixed schedule at ``rate``/s; (achieved turns/s, added latency from the scheduled time,
    the garbage collector's pauses meanwhile)."""
    added: list[float] = []
    t0 = time.perf_counter() + 0.5

    async def lane(n: int) -> None:
        for k in range(turns):
            slot = t0 + (k * count + n) / rate
            delay = slot - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(n, k)
            added.append(time.perf_counter() - slot - LATENCY)

    with gc_pauses() as pauses:
        await asyncio.gather(*(lane(n) for n in range(count)))
    return count * turns / (time.perf_counter() - t0), added, pauses


def line(label: str, rate: float, added: list[float], pauses: GCPauses | None = None) -> str:
    """One result row (with the collector's full collections and longest pause, for paced phases)."""
    p50, p99, worst = percentile(added, 50) * 1e3, percentile(added, 99) * 1e3, max(added) * 1e3
    row = f"{label:<38} {rate:>10,.0f} {p50:>10.1f} ms {p99:>10.1f} ms {worst:>10.1f} ms"
    if pauses is not None:
        row += f" {pauses.full:>9} {pauses.longest * 1e3:>10.1f} ms {pauses.tracked:>9,}"
    return row


async def run_bare(url: str, count: int, turns: int, pool: int, rate: float) -> list[str]:
    """The baseline: bare aiohttp POSTs on ``count`` sessions, burst then paced."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pool, limit_per_host=0)) as http:
        token = await fetch_token(http, url)
        sessions: list[str] = [""] * count

        async def start(n: int) -> None:
            sessions[n] = await start_bare_session(http, url, token)

        await _gather_bounded(count, 200, start)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        seq = [0] * count

        async def send(n: int, k: int) -> None:
            seq[n] += 1
            target = f"{url}{API}/sessions/{sessions[n]}/messages"
            async with http.post(target, data=send_body(f"t {n}-{seq[n]}", seq[n]), headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"bare POST answered {response.status}")

        rows = [line("bare aiohttp, burst", *await burst(count, turns, send))]
        rows.append(line(f"bare aiohttp, paced at {rate:,.0f}/s", *await paced(count, turns, rate, send)))
        return rows


async def run_sessionforce(
    url: str, count: int, turns: int, pool: int, rate: float, gc_mode: str = "default"
) -> tuple[list[str], float]:
    """sessionforce: ``count`` detached conversations, burst then paced; also the RSS per idle conversation.

    ``gc_mode``: ``default``; ``freeze`` (``gc.freeze()`` once the conversations exist, after the burst, as
    an application holding many long-lived objects may do); ``off`` (collector disabled: a diagnostic).
    """
    if gc_mode == "off":
        gc.disable()
    gc.collect()
    rss0 = current_rss_bytes()
    async with AsyncAgentClient(my_domain=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                agent_id=DEMO_AGENT_ID, max_connections=pool) as client:
        manager = Conversations(client, store=MemoryStore())
        conversations = [manager.get(f"scale-{n}") for n in range(count)]

        async def start(n: int) -> None:
            await conversations[n].start()

        await _gather_bounded(count, 200, start)

        async def send(n: int, k: int) -> None:
            await conversations[n].send(f"turn {n}-{k}-{time.perf_counter_ns()}")

        rows = [line("sessionforce Conversation.send, burst", *await burst(count, turns, send))]
        gc.collect()
        per_conversation = (current_rss_bytes() - rss0) / count
        if gc_mode == "freeze":
            gc.freeze()
        rows.append(line(f"sessionforce, paced at {rate:,.0f}/s", *await paced(count, turns, rate, send)))
        await _gather_bounded(count, 200, lambda n: _end(conversations[n]))
    gc.unfreeze()
    gc.enable()
    return rows, per_conversation


async def _end(conversation: Conversation) -> None:
    await conversation.end()


async def traced_bytes(url: str, count: int, turns: int) -> tuple[float, float]:
    """tracemalloc bytes per idle conversation: (everything, everything but the transcript).

    Marginal cost: ``count`` conversations are made idle (each ran ``turns`` turns), then ``count`` more,
    and only the second batch's growth is divided by ``count``. What every client holds once, whatever
    its number of conversations (the token, the connection pool and its buffers, pydantic's caches), is
    in the first batch and does not count; an idle conversation holds no connection.
    """
    async with AsyncAgentClient(my_domain=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                agent_id=DEMO_AGENT_ID, max_connections=200) as client:
        store = MemoryStore()
        manager = Conversations(client, store=store)

        async def make_idle(prefix: str) -> list[Conversation]:
            conversations = [manager.get(f"{prefix}-{n}") for n in range(count)]

            async def lane(n: int) -> None:
                for k in range(turns):
                    await conversations[n].send(f"turn {n}-{k}")

            await asyncio.gather(*(lane(n) for n in range(count)))
            return conversations

        tracemalloc.start()
        first = await make_idle("traced-a")
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        second = await make_idle("traced-b")
        gc.collect()
        total = tracemalloc.get_traced_memory()[0] - before
        for n in range(count):  # what the second batch's transcripts held (a private look, for the report)
            store._transcripts.pop(f"traced-b-{n}", None)
        gc.collect()
        without = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        await asyncio.gather(*(c.end() for c in [*first, *second]))
        return total / count, without / count


def main(argv: list[str] | None = None) -> None:
    """Run the phases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--max-connections", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="turns per second in the paced phase")
    parser.add_argument("--traced", type=int, default=1000, help="conversations measured with tracemalloc")
    parser.add_argument("--gc", choices=["default", "freeze", "off"], default="default",
                        help="garbage collector in the sessionforce phases: as is, frozen once the conversations "
                             "exist, or off (a diagnostic)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.conversations, args.rate, args.traced, args.max_connections = 200, 400.0, 50, 200
    header("Scale: concurrent conversations with 200 ms injected latency")
    faults = {"seed": 1, "rules": [{"route": "send_message", "latency_ms": LATENCY * 1000}]}
    print(f"conversations: {args.conversations:,}; turns each: {args.turns}; pool: {args.max_connections} "
          f"connections; injected latency: send_message {LATENCY * 1000:.0f} ms; store: memory; gc: {args.gc}")
    # A fresh emulator per phase: the emulator keeps every session it served, so a phase run after another
    # would face a heavier server (and its garbage collector) than the one before it.
    with server_process("emulator", faults=faults) as server:
        bare = asyncio.run(run_bare(server.url, args.conversations, args.turns, args.max_connections, args.rate))
    with server_process("emulator", faults=faults) as server:
        ours, rss_per = asyncio.run(run_sessionforce(server.url, args.conversations, args.turns,
                                                     args.max_connections, args.rate, args.gc))
    with server_process("emulator") as server:
        traced, traced_no_transcript = asyncio.run(traced_bytes(server.url, args.traced, args.turns))
    print(f"{'mode':<38} {'turns/s':>10} {'added p50':>13} {'added p99':>13} {'added max':>13} {'full GCs':>9} "
          f"{'longest GC':>13} {'objects':>9}")
    for row in bare + ours:
        print(row)
    print(f"peak RSS: {peak_rss_bytes() / 2**20:,.0f} MiB")
    print(f"RSS growth per live idle conversation: {rss_per:,.0f} bytes")
    print(f"tracemalloc per idle conversation ({args.traced} conversations, {args.turns} turns each): "
          f"{traced:,.0f} bytes with its transcript, {traced_no_transcript:,.0f} bytes without")
    print(f"RATIO scale | bytes per idle conversation (tracemalloc, without transcript) vs 4 KiB target: "
          f"{traced_no_transcript / 4096:.2f}x")


if __name__ == "__main__":
    main()
