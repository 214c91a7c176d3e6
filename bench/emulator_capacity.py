"""Emulator capacity: send-message requests per second on loopback, versus a minimal ASGI app.

The server (the emulator, or a one-route Starlette app returning the same JSON shape) runs in its own
process under the same uvicorn settings; this process is the load generator: ``--concurrency`` aiohttp
workers, each on its own session with increasing sequenceIds (the emulator enforces both), sending
back-to-back for ``--seconds``. Reported: requests per second (median over repeats), the ratio
emulator / minimal app, and the server's CPU per request (from /proc). The machine has 2 cores: the
load generator takes part of one, so these are lower bounds for a bigger machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp

from bench.common import API, Server, fetch_token, header, median, send_body, server_process, start_bare_session


async def load(server: Server, kind: str, concurrency: int, seconds: float) -> tuple[float, float, int]:
    """Drive ``server`` for ``seconds``; return (requests/s, server CPU seconds per request, errors)."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        url = server.url
        if kind == "emulator":
            token = await fetch_token(http, url)
            sessions = await asyncio.gather(*(start_bare_session(http, url, token) for _ in range(concurrency)))
        else:
            token, sessions = "none", [f"s{n}" for n in range(concurrency)]
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        done = 0
        errors = 0
        stop_at = 0.0
        sequence = dict.fromkeys(sessions, 0)  # per session, across the warm-up and the window

        async def worker(session_id: str) -> None:
            nonlocal done, errors
            target = f"{url}{API}/sessions/{session_id}/messages"
            while time.perf_counter() < stop_at:
                sequence[session_id] += 1
                seq = sequence[session_id]
                async with http.post(target, data=send_body(f"load {seq}", seq), headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        errors += 1

        # A short warm-up, then the measured window.
        stop_at = time.perf_counter() + min(1.0, seconds / 4)
        await asyncio.gather(*(worker(s) for s in sessions))
        done = errors = 0
        cpu0 = server.cpu_seconds()
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(worker(s) for s in sessions))
        elapsed = time.perf_counter() - started
        cpu = server.cpu_seconds() - cpu0
        return done / elapsed, cpu / max(done, 1), errors


def main(argv: list[str] | None = None) -> None:
    """Measure both servers, ``repeats`` times each (alternating), and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats, args.concurrency = 1.0, 1, 16
    header("Emulator capacity: send-message requests per second")
    results: dict[str, list[tuple[float, float, int]]] = {"emulator": [], "minimal": []}
    for _ in range(args.repeats):
        for kind in ("emulator", "minimal"):
            with server_process(kind) as server:
                results[kind].append(asyncio.run(load(server, kind, args.concurrency, args.seconds)))
    print(f"concurrency: {args.concurrency}; window: {args.seconds:.0f} s; repeats: {args.repeats}")
    print(f"{'server':<46} {'req/s (median)':>15} {'server CPU/req':>15} {'errors':>7}")
    labels = {"emulator": "sessionforce emulator (send_message)", "minimal": "minimal Starlette app (same JSON)"}
    for kind, runs in results.items():
        rps = median([r[0] for r in runs])
        cpu = median([r[1] for r in runs])
        print(f"{labels[kind]:<46} {rps:>15,.0f} {cpu * 1e6:>12,.0f} us {sum(r[2] for r in runs):>7}")
    base = median([r[0] for r in results["minimal"]])
    emu = median([r[0] for r in results["emulator"]])
    print(f"RATIO emulator capacity | emulator vs minimal app: {emu / base if base else float('nan'):.2f}x")


if __name__ == "__main__":
    main()
