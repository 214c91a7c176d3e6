"""Client overhead per turn: CPU in the client process per turn, sessionforce vs a bare HTTP loop.

Each mode sends the same send-message body to the same emulator (a separate process), in the same run:

* ``bare aiohttp``: ``aiohttp.ClientSession.post`` of the body, with a bearer token fetched once and one
  session per in-flight request (the emulator answers 423 to concurrent requests on one session);
* ``client.send_message``: :meth:`AsyncAgentClient.send_message` (the wire layer alone, no lifecycle);
* ``Conversation.send (memory)`` and ``Conversation.send (sqlite)``: the lifecycle manager with the
  in-memory store and the SQLite store (lock, load, pending-turn write-ahead, send, save, transcript).

With ``--in-flight 1`` one turn runs at a time; with ``--in-flight 1000`` a thousand conversations
(or bare sessions) each run their turns at once through a 100-connection pool (the client's default).
Session starts happen before the timed section: only steady-state turns are measured. The blocking
section compares :class:`AgentClient` (and a blocking conversation) with ``requests.Session`` and
``httpx.Client`` loops. Reported: median CPU microseconds per turn over the repeats, and the ratio to
the bare baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import requests

from bench.common import (
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    DEMO_AGENT_ID,
    fetch_token,
    header,
    median,
    send_body,
    server_process,
    start_bare_session,
)
from sessionforce import AgentClient, AsyncAgentClient, BlockingConversations, Conversations
from sessionforce.store import MemoryStore, SQLiteStore

POOL = 100
TARGETS = {"Conversation.send (memory)": 1.5, "Conversation.send (sqlite)": 2.5}


@dataclass
class Result:
    """CPU seconds per turn of each repeat, and wall seconds per repeat."""

    cpu_per_turn: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)


Unit = Callable[[int], Awaitable[None]]
"""One in-flight lane: ``await unit(i)`` sends its turn number ``i``."""


async def _timed(units: list[Unit], turns: int, result: Result) -> None:
    """Warm each unit up with one untimed turn, then time ``turns`` more per unit, all units at once."""
    await asyncio.gather(*(unit(0) for unit in units))

    async def lane(unit: Unit) -> None:
        for i in range(1, turns + 1):
            await unit(i)

    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane(unit) for unit in units))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    result.cpu_per_turn.append(cpu / (len(units) * turns))
    result.wall.append(wall)


async def run_bare(url: str, in_flight: int, turns: int, result: Result) -> None:
    """The baseline: bare aiohttp POSTs of the send-message body."""
    connector = aiohttp.TCPConnector(limit=POOL, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        token = await fetch_token(http, url)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        sessions = await asyncio.gather(*(start_bare_session(http, url, token) for _ in range(in_flight)))

        def unit_for(n: int, session_id: str) -> Unit:
            target = f"{url}{API}/sessions/{session_id}/messages"

            async def unit(i: int) -> None:
                async with http.post(target, data=send_body(f"ping {n}-{i}", i + 1), headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"bare POST answered {response.status}")

            return unit

        await _timed([unit_for(n, s) for n, s in enumerate(sessions)], turns, result)


def _client(url: str) -> AsyncAgentClient:
    return AsyncAgentClient(my_domain=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, agent_id=DEMO_AGENT_ID,
                            max_connections=POOL)


async def run_client(url: str, in_flight: int, turns: int, result: Result) -> None:
    """AsyncAgentClient.send_message: the wire layer without the lifecycle manager."""
    async with _client(url) as client:
        sessions = await asyncio.gather(*(client.start_session() for _ in range(in_flight)))

        def unit_for(n: int, session_id: str) -> Unit:
            async def unit(i: int) -> None:
                await client.send_message(session_id, f"ping {n}-{i}", sequence_id=i + 1)

            return unit

        await _timed([unit_for(n, s.session_id) for n, s in enumerate(sessions)], turns, result)


async def run_conversations(url: str, in_flight: int, turns: int, result: Result, store_kind: str) -> None:
    """Conversation.send with the memory or the SQLite store (the session starts in the untimed warm-up)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = MemoryStore() if store_kind == "memory" else SQLiteStore(Path(tmp) / "bench.db")
        try:
            async with _client(url) as client:
                manager = Conversations(client, store=store)
                conversations = [manager.get(f"bench-{n}") for n in range(in_flight)]

                def unit_for(n: int) -> Unit:
                    conversation = conversations[n]

                    async def unit(i: int) -> None:
                        await conversation.send(f"ping {n}-{i}")

                    return unit

                await _timed([unit_for(n) for n in range(in_flight)], turns, result)
                await asyncio.gather(*(c.end() for c in conversations))
        finally:
            await store.aclose()


# ---------------------------------------------------------------------------- blocking


def run_blocking(url: str, turns: int, results: dict[str, Result]) -> None:
    """The blocking client against requests.Session and httpx.Client loops, one turn at a time."""
    with requests.Session() as http:
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        token = http.post(f"{url}/services/oauth2/token", data=form, timeout=10).json()["access_token"]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    start = {"externalSessionKey": "bench", "instanceConfig": {"endpoint": url}, "bypassUser": True}

    def loop(name: str, post: Callable[[str, bytes], int], new_session: Callable[[], str]) -> None:
        session_id = new_session()
        target = f"{url}{API}/sessions/{session_id}/messages"
        post(target, send_body("ping 0", 1))
        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(1, turns + 1):
            if post(target, send_body(f"ping {i}", i + 1)) != 200:
                raise RuntimeError(f"{name}: non-200")
        results[name].cpu_per_turn.append((time.process_time() - cpu0) / turns)
        results[name].wall.append(time.perf_counter() - wall0)

    with requests.Session() as rs:
        def rs_post(target: str, body: bytes) -> int:
            response = rs.post(target, data=body, headers=headers, timeout=30)
            _ = response.content
            return response.status_code

        def rs_session() -> str:
            return str(rs.post(f"{url}{API}/agents/{DEMO_AGENT_ID}/sessions", json=start, headers=headers,
                               timeout=30).json()["sessionId"])

        loop("requests.Session", rs_post, rs_session)
    with httpx.Client(timeout=30) as hx:
        def hx_post(target: str, body: bytes) -> int:
            return hx.post(target, content=body, headers=headers).status_code

        def hx_session() -> str:
            return str(hx.post(f"{url}{API}/agents/{DEMO_AGENT_ID}/sessions", json=start,
                               headers=headers).json()["sessionId"])

        loop("httpx.Client", hx_post, hx_session)
    with AgentClient(my_domain=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                     agent_id=DEMO_AGENT_ID) as client:
        session = client.start_session()

        def ac_post(target: str, body: bytes) -> int:
            seq = int(body.split(b'"sequenceId":')[1].split(b",")[0])
            client.send_message(session.session_id, "ping", sequence_id=seq)
            return 200

        loop("AgentClient.send_message", ac_post, lambda: session.session_id)
        conversation = BlockingConversations(client, store=MemoryStore()).get("bench-blocking")

        def conv_post(target: str, body: bytes) -> int:
            conversation.send("ping")
            return 200

        loop("AgentClient conversation.send (memory)", conv_post, lambda: "")
        conversation.end()


# ---------------------------------------------------------------------------- main


async def run_async(url: str, in_flight: int, turns: int, repeats: int) -> dict[str, Result]:
    """Every async mode, ``repeats`` times, in a rotating order (so drift does not favour one mode)."""
    modes: dict[str, Callable[[Result], Awaitable[None]]] = {
        "bare aiohttp": lambda r: run_bare(url, in_flight, turns, r),
        "client.send_message": lambda r: run_client(url, in_flight, turns, r),
        "Conversation.send (memory)": lambda r: run_conversations(url, in_flight, turns, r, "memory"),
        "Conversation.send (sqlite)": lambda r: run_conversations(url, in_flight, turns, r, "sqlite"),
    }
    results = {name: Result() for name in modes}
    names = list(modes)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:
            await modes[name](results[name])
    return results


def report(title: str, results: dict[str, Result], baseline: str, turns_label: str) -> None:
    """Print one table: median CPU per turn, ratio to ``baseline``, target."""
    base = median(results[baseline].cpu_per_turn)
    print(f"\n## {title} ({turns_label})")
    print(f"{'mode':<40} {'CPU/turn (median)':>18} {'ratio':>7} {'wall/repeat':>12}  target")
    for name, result in results.items():
        cpu = median(result.cpu_per_turn)
        ratio = cpu / base if base else float("nan")
        target = TARGETS.get(name)
        verdict = "" if target is None else f"<= {target}x: {'met' if ratio <= target else 'MISSED'}"
        print(f"{name:<40} {cpu * 1e6:>15,.0f} us {ratio:>6.2f}x {median(result.wall):>10.2f} s  {verdict}")
    for name in results:
        if name != baseline:
            ratio = median(results[name].cpu_per_turn) / base if base else float("nan")
            print(f"RATIO {title} | {name} vs {baseline}: {ratio:.2f}x")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, start the emulator in a separate process, run every mode, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few seconds: tiny sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--turns", type=int, default=300, help="timed turns, one at a time")
    parser.add_argument("--in-flight", type=int, default=1000, help="conversations in flight at once")
    parser.add_argument("--turns-in-flight", type=int, default=3, help="timed turns per in-flight conversation")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.turns, args.in_flight, args.turns_in_flight = 1, 20, 50, 2
    header("Client overhead per turn (CPU in the client process)")
    print(f"repeats: {args.repeats}; pool: {POOL} connections; emulator: separate process, no faults")
    with server_process("emulator") as server:
        one = asyncio.run(run_async(server.url, 1, args.turns, args.repeats))
        report("one at a time", one, "bare aiohttp", f"{args.turns} turns per repeat")
        many = asyncio.run(run_async(server.url, args.in_flight, args.turns_in_flight, args.repeats))
        report(f"{args.in_flight} in flight", many, "bare aiohttp",
               f"{args.in_flight} x {args.turns_in_flight} turns per repeat")
        blocking = {name: Result() for name in ("requests.Session", "httpx.Client", "AgentClient.send_message",
                                                "AgentClient conversation.send (memory)")}
        for _ in range(args.repeats):
            run_blocking(server.url, args.turns, blocking)
        report("blocking, one at a time", blocking, "requests.Session", f"{args.turns} turns per repeat")


if __name__ == "__main__":
    main()
