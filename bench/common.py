"""Pieces the benchmarks share: an emulator in a separate process, timing helpers, machine facts.

The emulator (or the minimal baseline app) always runs in its own process, so its CPU never counts
against the client's: client CPU is measured with :func:`time.process_time` in the benchmark process.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
API = "/einstein/ai-agent/v1"
CLIENT_ID = "sessionforce-emulator"
CLIENT_SECRET = "emulator-secret"
DEMO_AGENT_ID = "0XxSF0000000DEMOAA"


@dataclass
class Server:
    """A server process (the emulator or the minimal app) on a loopback port."""

    url: str
    process: subprocess.Popen[str]

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (from /proc; 0.0 where unavailable)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


@contextlib.contextmanager
def server_process(kind: str = "emulator", *, faults: dict[str, Any] | None = None,
                   timeout: float = 20.0) -> Iterator[Server]:
    """Start ``python -m bench.servers KIND`` on a free loopback port; stop it when the block exits."""
    args = [sys.executable, "-m", "bench.servers", kind]
    if faults is not None:
        args += ["--faults", json.dumps(faults)]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("LISTENING ") or not line:
                break
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"the {kind} server did not start (got {line!r})")
        yield Server(url=line.split()[1], process=process)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def fetch_token(http: aiohttp.ClientSession, url: str) -> str:
    """A bearer token from the emulator's token endpoint (fetched once, outside any timed section)."""
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    async with http.post(f"{url}/services/oauth2/token", data=form) as response:
        response.raise_for_status()
        token: str = (await response.json())["access_token"]
        return token


async def start_bare_session(http: aiohttp.ClientSession, url: str, token: str, *, streaming: bool = False) -> str:
    """Start a session with a bare aiohttp POST (asking for text chunks when ``streaming``); return its id."""
    body: dict[str, Any] = {"externalSessionKey": os.urandom(8).hex(), "instanceConfig": {"endpoint": url},
                            "bypassUser": True}
    if streaming:
        body.update(featureSupport="Streaming", streamingCapabilities={"chunkTypes": ["Text"]})
    async with http.post(f"{url}{API}/agents/{DEMO_AGENT_ID}/sessions", json=body,
                         headers={"Authorization": f"Bearer {token}"}) as response:
        response.raise_for_status()
        session_id: str = (await response.json())["sessionId"]
        return session_id


def send_body(text: str, sequence_id: int) -> bytes:
    """The send-message body the client sends (same keys, same compact encoding)."""
    return json.dumps({"message": {"sequenceId": sequence_id, "type": "Text", "text": text}, "variables": []},
                      separators=(",", ":")).encode()


def median(values: Sequence[float]) -> float:
    """The median (0.0 for no values)."""
    return statistics.median(values) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[index]


@dataclass
class GCPauses:
    """The garbage collector's pauses recorded by :func:`gc_pauses`: full (generation 2) collections and
    the longest pause of any generation, in seconds."""

    full: int = 0
    longest: float = 0.0
    total: float = 0.0
    tracked: int = 0
    """Objects the collector tracked when the block began (what a full collection walks)."""


@contextlib.contextmanager
def gc_pauses() -> Iterator[GCPauses]:
    """Record every collection's duration (``gc.callbacks``) while the block runs."""
    pauses = GCPauses(tracked=len(gc.get_objects()))
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        pause = time.perf_counter() - started[0]
        pauses.total += pause
        pauses.longest = max(pauses.longest, pause)
        pauses.full += info["generation"] == 2

    gc.callbacks.append(callback)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(callback)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    """Current resident set size of this process (from /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> str:
    """One line naming the machine: date, cores, CPU, Python, and library versions."""
    import pydantic

    today = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{today}; {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}; "
            f"Python {platform.python_version()}; aiohttp {aiohttp.__version__}; pydantic {pydantic.VERSION}; "
            f"{platform.system()} {platform.release()}")


def header(title: str, argv: Sequence[str] | None = None) -> None:
    """Print the benchmark's title, the command that ran it and the machine."""
    command = " ".join(["python -m", _module_name(), *(argv if argv is not None else sys.argv[1:])])
    print(f"# {title}")
    print(f"command: {command}")
    print(f"machine: {machine()}")


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else Path(sys.argv[0]).stem


def us(seconds: float) -> str:
    """Seconds as microseconds, rounded."""
    return f"{seconds * 1e6:,.0f} us"
