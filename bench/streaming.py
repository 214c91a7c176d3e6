"""Streaming latency: from the first SSE byte on the socket to the first text event delivered to the caller.

Against the emulator (a separate process, no injected latency), each streamed turn records, with
``time.perf_counter_ns``:

* ``first byte``: when aiohttp hands the response body's first bytes to the reader (``iter_any``);
* ``text bytes``: when the bytes that complete the first ``TextChunk`` event arrive;
* ``delivered``: when ``async for event in client.stream_message(...)`` yields the first
  :class:`~sessionforce.agent_api.TextChunkEvent` to the caller.

Reported (medians, microseconds): first byte → delivered (what users feel; includes the emulator's gap
between its progress event and its first text chunk) and text bytes → delivered (our parser and event
building alone). The baseline, same run: a bare aiohttp streaming POST that scans the raw bytes for the
first ``TextChunk`` (no parsing at all).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

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
from sessionforce import AsyncAgentClient
from sessionforce.agent_api import TextChunkEvent

MARK = b'"type":"TextChunk"'
TEXT = "tell me something nice about bikes please"


class _TimedContent:
    """Wraps a response's content reader: notes when the first bytes and the first TextChunk bytes arrive."""

    def __init__(self, inner: aiohttp.StreamReader, marks: dict[str, int]) -> None:
        self._inner = inner
        self._marks = marks
        self._seen = b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def iter_any(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner.iter_any():
            now = time.perf_counter_ns()
            self._marks.setdefault("first_byte", now)
            if "text_bytes" not in self._marks:
                self._seen += chunk
                start = self._seen.find(MARK)
                if start != -1 and self._seen.find(b"\n\n", start) != -1:
                    self._marks["text_bytes"] = now
            yield chunk


async def sessionforce_turns(url: str, turns: int) -> tuple[list[float], list[float]]:
    """Stream ``turns`` turns through AsyncAgentClient; the two intervals per turn, in seconds."""
    first: list[float] = []
    own: list[float] = []
    async with AsyncAgentClient(my_domain=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                agent_id=DEMO_AGENT_ID) as client:
        transport = client.transport
        original = transport.open_stream
        marks: dict[str, int] = {}

        async def open_stream(path: str, *, body: bytes) -> aiohttp.ClientResponse:
            response = await original(path, body=body)
            response.content = _TimedContent(response.content, marks)  # type: ignore[assignment]
            return response

        transport.open_stream = open_stream  # type: ignore[method-assign]
        session = await client.start_session()
        for i in range(turns + 1):
            marks.clear()
            delivered = 0
            async for event in client.stream_message(session.session_id, TEXT, sequence_id=i + 1):
                if isinstance(event, TextChunkEvent) and not delivered:
                    delivered = time.perf_counter_ns()
            if i == 0:
                continue  # warm-up
            first.append((delivered - marks["first_byte"]) / 1e9)
            own.append((delivered - marks["text_bytes"]) / 1e9)
        await client.end_session(session.session_id)
    return first, own


async def bare_turns(url: str, turns: int) -> tuple[list[float], list[float]]:
    """The baseline: a bare aiohttp streaming POST, scanning raw bytes for the first TextChunk."""
    first: list[float] = []
    own: list[float] = []
    async with aiohttp.ClientSession() as http:
        token = await fetch_token(http, url)
        session_id = await start_bare_session(http, url, token, streaming=True)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                   "Accept": "text/event-stream"}
        target = f"{url}{API}/sessions/{session_id}/messages/stream"
        for i in range(turns + 1):
            first_byte = text_bytes = delivered = 0
            seen = b""
            async with http.post(target, data=send_body(TEXT, i + 1), headers=headers) as response:
                async for chunk in response.content.iter_any():
                    now = time.perf_counter_ns()
                    first_byte = first_byte or now
                    if not delivered:
                        seen += chunk
                        start = seen.find(MARK)
                        if start != -1 and seen.find(b"\n\n", start) != -1:
                            text_bytes = now
                            delivered = time.perf_counter_ns()
            if i and delivered:
                first.append((delivered - first_byte) / 1e9)
                own.append((delivered - text_bytes) / 1e9)
    return first, own


def main(argv: list[str] | None = None) -> None:
    """Run both, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.smoke:
        args.turns, args.repeats = 20, 1
    header("Streaming: first SSE byte to first text event")
    with server_process("emulator") as server:
        ours_first: list[float] = []
        ours_own: list[float] = []
        bare_first: list[float] = []
        bare_own: list[float] = []
        for _ in range(args.repeats):
            f, o = asyncio.run(sessionforce_turns(server.url, args.turns))
            ours_first.append(median(f))
            ours_own.append(median(o))
            f, o = asyncio.run(bare_turns(server.url, args.turns))
            bare_first.append(median(f))
            bare_own.append(median(o))
    print(f"turns per repeat: {args.turns}; repeats: {args.repeats}; medians of per-repeat medians")
    print(f"{'':<44} {'first byte -> text':>20} {'text bytes -> text':>20}")
    print(f"{'client.stream_message (TextChunkEvent)':<44} {median(ours_first) * 1e6:>17,.0f} us "
          f"{median(ours_own) * 1e6:>17,.0f} us")
    print(f"{'bare aiohttp (byte scan, no parsing)':<44} {median(bare_first) * 1e6:>17,.0f} us "
          f"{median(bare_own) * 1e6:>17,.0f} us")
    if median(bare_first):
        print(f"RATIO streaming first byte -> first text | sessionforce vs bare: "
              f"{median(ours_first) / median(bare_first):.2f}x")
    print(f"ADDED streaming | text bytes -> TextChunkEvent: {median(ours_own) * 1e6:,.0f} us "
          f"(bare: {median(bare_own) * 1e6:,.0f} us)")


if __name__ == "__main__":
    main()
