"""Gateway load: simulated browsers against ``sessionforce serve --workers 4`` on Redis and the emulator.

Every process is separate: the emulator (``bench.servers``, 1 s agent latency on every turn), a throwaway
``redis-server``, the gateway (``sessionforce serve``: a supervisor and its workers) and this process, whose
asyncio tasks are the browsers. Each browser, like the web chat: gets a token (``POST /v1/tokens``), holds
its own conversation's event stream open (``GET .../events``, re-attaching with ``Last-Event-ID`` when it
drops; each browser's stream is cut once on purpose after its first turn), and sends ``--turns`` messages
with its own ids (JSON POST, retried with the same id on a network error), ``--think`` seconds apart.

Checked, not just measured: zero 423s at the emulator, every message reached the agent exactly once
(emulator counters), every browser saw each of its turns end exactly once on its stream and its event ids
without a gap or a repeat across re-attaches.

Reported: turns/s; the latency the gateway adds (POST answered minus the 1 s agent latency), p50/p99;
CPU per turn of the gateway workers, as a ratio to ``Conversation.send`` alone (in this process, same
Redis store, same emulator, measured in the same run) and to ``Conversation.stream`` (what the gateway
runs, since it streams every turn for the event stream). ``--profile`` samples the workers with py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import CLIENT_ID, CLIENT_SECRET, DEMO_AGENT_ID, ROOT, header, percentile, server_process

API_KEY = "bench-api-key-0123456789"
SIGNING_KEY = "bench-signing-key-0123456789-0123456789-0123456789"


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A throwaway redis-server on a free loopback port (never the shared one): its URL and pid."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                with socket.socket() as sock, contextlib.suppress(OSError):
                    sock.connect(("127.0.0.1", port))
                    break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0", process.pid
        finally:
            process.terminate()
            process.wait(10)


@contextlib.contextmanager
def gateway(emulator: str, redis: str, workers: int) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``sessionforce serve`` on a free port; its URL and process (workers are its children)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "SESSIONFORCE_"))}
    env.update(SF_MY_DOMAIN=emulator, SF_CLIENT_ID=CLIENT_ID, SF_CLIENT_SECRET=CLIENT_SECRET, SF_AGENT_ID=DEMO_AGENT_ID,
               SESSIONFORCE_GATEWAY_API_KEY=API_KEY, SESSIONFORCE_GATEWAY_SIGNING_KEY=SIGNING_KEY,
               SESSIONFORCE_GATEWAY_USER_RATE="0", SESSIONFORCE_GATEWAY_IP_RATE="0",
               SESSIONFORCE_GATEWAY_IDLE_TIMEOUT="0", SESSIONFORCE_CONFIG="/nonexistent",
               PYTHONPATH=str(ROOT / "src"))
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115 - read after the run
    process = subprocess.Popen([sys.executable, "-m", "sessionforce.cli", "serve", "--port", "0", "--workers",
                                str(workers), "--store", f"{redis}?prefix=bench:", "--log-level", "warning"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        url = ""
        for _ in range(600):
            match = re.search(r"gateway on (http://\S+)", Path(log.name).read_text())
            if match and len(_children(process.pid)) >= workers:
                url = match.group(1)
                with contextlib.suppress(OSError):
                    import urllib.request

                    if urllib.request.urlopen(url + "/readyz", timeout=2).status == 200:
                        break
            if process.poll() is not None:
                raise RuntimeError("the gateway did not start:\n" + Path(log.name).read_text())
            time.sleep(0.1)
        time.sleep(1.0)  # every worker up (readyz answered by one of them)
        yield url, process
    finally:
        process.terminate()
        process.wait(60)
        problems = [line for line in Path(log.name).read_text().splitlines() if "ERROR" in line]
        for line in problems[:10]:
            print("gateway log:", line)
        os.unlink(log.name)


@dataclass
class Browser:
    """One simulated browser: its conversation, what its stream delivered, what its POSTs took."""

    number: int
    token: str = ""
    conversation: str = ""
    last_id: int = 0
    ids: list[int] = field(default_factory=list)
    ends: collections.Counter[str] = field(default_factory=collections.Counter)
    waiting: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    reattached: int = 0
    retried: int = 0
    failed: list[str] = field(default_factory=list)
    response: aiohttp.ClientResponse | None = None

    def cut(self) -> None:
        """Drop the stream's connection mid-stream (as a flaky network would)."""
        if self.response is not None:
            self.response.close()

    async def follow(self, http: aiohttp.ClientSession, url: str, opened: asyncio.Event) -> None:
        """The event stream, re-attached from the last id whenever it drops (or is cut on purpose)."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        while True:
            try:
                attach = {**headers, "Last-Event-ID": str(self.last_id)}
                async with http.get(f"{url}/v1/conversations/{self.conversation}/events", headers=attach,
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=40)) as response:
                    self.response = response
                    opened.set()
                    await self._read(response)
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.reattached += 1
            await asyncio.sleep(0.05)

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        event_id, kind, data = None, "", ""
        while True:
            raw = await response.content.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            if line.startswith("id:"):
                event_id = int(line[3:].strip())
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and data:
                if event_id is not None:
                    self.ids.append(event_id)
                    self.last_id = event_id
                if kind in ("turn.end", "turn.error"):
                    message_id = json.loads(data)["message_id"]
                    self.ends[message_id] += 1
                    future = self.waiting.get(message_id)
                    if future is not None and not future.done():
                        future.set_result(None)
                event_id, kind, data = None, "", ""

    async def send(self, http: aiohttp.ClientSession, url: str, message_id: str, text: str, latency: float) -> None:
        """One message, retried with the same id on a network error; then wait for its end on the stream."""
        self.waiting[message_id] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        for _ in range(5):
            try:
                async with http.post(f"{url}/v1/conversations/{self.conversation}/messages",
                                     json={"id": message_id, "text": text},
                                     headers={"Authorization": f"Bearer {self.token}"}) as response:
                    body = await response.json()
                    if response.status != 200:
                        self.failed.append(f"{response.status} {body.get('error', {}).get('code')}")
                    break
            except (aiohttp.ClientError, TimeoutError):
                self.retried += 1
                await asyncio.sleep(0.2)
        self.latencies.append(time.perf_counter() - started - latency)
        try:
            await asyncio.wait_for(self.waiting[message_id], 30)
        except TimeoutError:
            self.failed.append(f"no end of {message_id} on the stream")


async def run_browsers(url: str, count: int, turns: int, think: float, latency: float, ramp: float
                       ) -> tuple[list[Browser], float]:
    """Every browser's life; the seconds from the first turn sent to the last answered."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        browsers = [Browser(n) for n in range(count)]
        window: list[float] = []

        async def life(browser: Browser) -> None:
            await asyncio.sleep(random.random() * ramp)
            async with http.post(f"{url}/v1/tokens", json={"user": f"b{browser.number}"},
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as response:
                minted = await response.json()
            browser.token, browser.conversation = minted["token"], minted["conversations"][0]
            opened = asyncio.Event()
            stream = asyncio.ensure_future(browser.follow(http, url, opened))
            await opened.wait()
            for k in range(turns):
                await asyncio.sleep(think * (0.5 + random.random()))
                window.append(time.perf_counter())
                await browser.send(http, url, f"b{browser.number}-t{k}", f"browser {browser.number} turn {k}",
                                   latency)
                window.append(time.perf_counter())
                if k == 0:
                    browser.cut()  # the connection drops once: the stream re-attaches
            stream.cancel()

        await asyncio.gather(*(life(b) for b in browsers))
        return browsers, max(window) - min(window)


async def baseline(emulator: str, redis: str, conversations: int, turns: int, streamed: bool) -> float:
    """CPU seconds per turn of Conversation.send (or .stream) alone, in this process, same store and agent."""
    from sessionforce.agent_api import AsyncAgentClient
    from sessionforce.lifecycle import Conversations
    from sessionforce.store import open_store

    # The pool sized as the gateway sizes its own (redis-py refuses commands past 100 connections by default).
    store = open_store(f"{redis}?prefix=bench-baseline-{int(streamed)}:&max_connections=1000")
    client = AsyncAgentClient(my_domain=emulator, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                              agent_id=DEMO_AGENT_ID, max_connections=conversations)
    async with client, Conversations(client, store=store) as manager:
        await client.fetch_token()

        async def lane(n: int) -> None:
            conversation = manager.get(f"base-{streamed}-{n}")
            await conversation.start()
            for k in range(turns):
                if streamed:
                    async with conversation.stream(f"base {n} {k}") as stream:
                        await stream.final_reply()
                else:
                    await conversation.send(f"base {n} {k}")

        started = time.process_time()
        await asyncio.gather(*(lane(n) for n in range(conversations)))
        spent = time.process_time() - started
    await store.aclose()
    return spent / (conversations * turns)


def profile(parent: int, seconds: int, out: Path) -> None:
    """Sample every worker with py-spy for ``seconds``; print where the time goes."""
    if shutil.which("py-spy") is None:
        print("profile: py-spy is not installed (pip install py-spy)")
        return
    subprocess.run(["py-spy", "record", "--pid", str(parent), "--subprocesses", "--duration", str(seconds),
                    "--format", "raw", "--output", str(out), "--nonblocking", "--rate", "200"],
                   capture_output=True, timeout=seconds + 60, check=False)
    groups = {
        "gateway (sessionforce/gateway)": "sessionforce/gateway/", "lifecycle (sessionforce/lifecycle)":
        "sessionforce/lifecycle/", "Agent API client (sessionforce/agent_api)": "sessionforce/agent_api/",
        "store (sessionforce/store)": "sessionforce/store/", "redis-py": "redis/", "aiohttp": "aiohttp/",
        "starlette": "starlette/", "uvicorn / httptools / h11": "uvicorn/", "pydantic": "pydantic",
        "json": "json/", "asyncio event loop": "asyncio/",
    }
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames or "idle" in frames[-1] or "select (selectors.py" in frames[-1]:
            continue  # waiting, not working
        total += count
        for name, needle in groups.items():
            if any(needle in frame for frame in frames):
                inclusive[name] += count
        leaf[frames[-1].split(" (")[0] + " (" + frames[-1].rsplit("/", 1)[-1]] += count
    print(f"profile: {total} busy samples over {seconds} s across the workers; share of busy time (inclusive):")
    for name, count in inclusive.most_common():
        print(f"  {count / max(1, total):6.1%}  {name}")
    print("  hottest functions (self):")
    for name, count in leaf.most_common(12):
        print(f"  {count / max(1, total):6.1%}  {name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--browsers", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=3, help="messages per browser")
    parser.add_argument("--think", type=float, default=3.0, help="mean seconds between a browser's messages")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency", type=float, default=1.0, help="agent latency, seconds")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which browsers arrive")
    parser.add_argument("--baseline", type=int, default=200, help="conversations in the baseline")
    parser.add_argument("--profile", type=int, default=0, help="seconds of py-spy sampling of the workers")
    parser.add_argument("--smoke", action="store_true", help="a few browsers, a few seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.browsers, args.turns, args.think, args.workers, args.ramp, args.baseline = 12, 2, 0.2, 2, 0.5, 8
        args.latency = 0.2
    header("Gateway load: browsers -> sessionforce serve (Redis) -> emulator", argv)
    latency_ms = int(args.latency * 1000)
    faults = {"rules": [{"route": "stream_message", "latency_ms": latency_ms},
                        {"route": "send_message", "latency_ms": latency_ms}]}
    with redis_server() as (redis, redis_pid), server_process("emulator", faults=faults) as emulator:
        base_send = asyncio.run(baseline(emulator.url, redis, args.baseline, args.turns, streamed=False))
        base_stream = asyncio.run(baseline(emulator.url, redis, args.baseline, args.turns, streamed=True))
        counters_before = _counters(emulator.url)
        with gateway(emulator.url, redis, args.workers) as (url, process):
            workers = _children(process.pid)
            cpu0 = sum(_cpu(p) for p in workers)
            redis0, emu0, own0 = _cpu(redis_pid), emulator.cpu_seconds(), time.process_time()
            profiler = None
            if args.profile:  # sampled from a thread, once the browsers are all in
                out = Path(tempfile.gettempdir()) / "gateway-profile.txt"
                delay = args.ramp + args.think
                profiler = threading.Thread(target=lambda: (time.sleep(delay), profile(process.pid, args.profile,
                                                                                         out)))
                profiler.start()
            browsers, window = asyncio.run(run_browsers(url, args.browsers, args.turns, args.think, args.latency,
                                                        args.ramp))
            worker_cpu = sum(_cpu(p) for p in workers) - cpu0
            redis_cpu, emu_cpu = _cpu(redis_pid) - redis0, emulator.cpu_seconds() - emu0
            own_cpu = time.process_time() - own0
            if profiler is not None:
                profiler.join()
        counters = _counters(emulator.url)
    turns = args.browsers * args.turns
    texts = collections.Counter(t["text"] for t in counters["turns"] if t["text"].startswith("browser "))
    lost = turns - len(texts)
    doubled = sum(n - 1 for n in texts.values() if n > 1)
    locked = counters["locked"] - counters_before["locked"]
    gaps = sum(1 for b in browsers if b.ids != list(range(b.ids[0], b.ids[0] + len(b.ids)))) if browsers else 0
    ends = sum(1 for b in browsers for n in b.ends.values() if n != 1)
    failures = [f for b in browsers for f in b.failed]
    latencies = [x for b in browsers for x in b.latencies]
    print(f"browsers: {args.browsers}, messages each: {args.turns}, think ~{args.think:g} s, agent latency "
          f"{args.latency:g} s, gateway workers: {args.workers}, store: Redis")
    print(f"checks: 423s at the emulator: {locked}; messages lost: {lost}; sent twice: {doubled}; streams with a "
          f"gap or repeat: {gaps}; turn ends seen other than once: {ends}; failed answers: {len(failures)} "
          f"{collections.Counter(failures).most_common(3)}; re-attaches: {sum(b.reattached for b in browsers)}; "
          f"POST retries: {sum(b.retried for b in browsers)}")
    print(f"throughput: {turns / window:,.1f} turns/s over {window:.1f} s")
    print(f"gateway-added latency (POST answered - agent latency): p50 {percentile(latencies, 50) * 1e3:.1f} ms, "
          f"p99 {percentile(latencies, 99) * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms")
    per_turn = worker_cpu / turns
    print(f"CPU per turn: gateway workers {per_turn * 1e3:.2f} ms; Redis {redis_cpu / turns * 1e3:.2f} ms; emulator "
          f"{emu_cpu / turns * 1e3:.2f} ms; browsers (this process) {own_cpu / turns * 1e3:.2f} ms")
    print(f"baseline CPU per turn (this process, {args.baseline} conversations, Redis store): Conversation.send "
          f"{base_send * 1e3:.2f} ms, Conversation.stream {base_stream * 1e3:.2f} ms")
    print(f"RATIO gateway CPU per turn vs Conversation.send alone: {per_turn / base_send:.2f}x "
          f"(vs Conversation.stream: {per_turn / base_stream:.2f}x)")
    if locked or lost or doubled or gaps or ends:
        print("FAILED: a promise was broken (see checks)")
        sys.exit(1)


def _counters(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url + "/__emulator/counters", timeout=30) as response:
        result: dict[str, Any] = json.load(response)
        return result


if __name__ == "__main__":
    main()
