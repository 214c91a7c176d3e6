"""The browser of the multi-host test, run inside its own network namespace (``python -m``).

Usage: ``python -m tests.gateway.netns_client GW1_URL GW2_URL EMULATOR_URL``. It talks to gateway 1, says
``CUT`` on stdout once a turn is in flight there, waits for ``GO`` on stdin (the test has cut gateway 1's
link), then carries the conversation on through gateway 2, and prints one JSON line with what it saw.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from typing import Any

import httpx

from tests.gateway.support import API_KEY, SSE, read_sse
from tests.support import Admin


def main(gw1: str, gw2: str, emulator: str) -> dict[str, Any]:
    timeout = httpx.Timeout(30, connect=3, read=3)
    one = httpx.Client(base_url=gw1, timeout=timeout)
    two = httpx.Client(base_url=gw2, timeout=httpx.Timeout(30, connect=3))
    token = one.post("/v1/tokens", json={"user": "u-net"}, headers={"Authorization": f"Bearer {API_KEY}"}).json()
    conversation = token["conversations"][0]
    auth = {"Authorization": f"Bearer {token['token']}"}
    path = f"/v1/conversations/{conversation}"
    statuses: dict[str, Any] = {"m-0": one.post(path + "/messages", json={"id": "m-0", "text": "hello"},
                                                headers=auth).status_code}
    before: list[SSE] = []
    stream_error: list[str] = []

    def listen() -> None:  # the page's event stream, on gateway 1 until its link goes
        try:
            with one.stream("GET", path + "/events", headers={**auth, "Last-Event-ID": "0"}) as response:
                read_sse(response.iter_lines(), into=before)
        except httpx.HTTPError as exc:
            stream_error.append(type(exc).__name__)

    def collect(lines: Any, into: list[SSE]) -> None:
        with contextlib.suppress(httpx.HTTPError):
            read_sse(lines, into=into)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    posting: dict[str, Any] = {}

    def post_m1() -> None:
        try:
            posting["m-1"] = one.post(path + "/messages", json={"id": "m-1", "text": "cut me off"}, headers=auth)
        except httpx.HTTPError as exc:
            posting["m-1"] = type(exc).__name__

    # Only this turn is slow (the agent still working on it when the link goes); the others answer at once.
    Admin(emulator).faults({"route": "stream_message", "latency_ms": 1500, "times": 1})
    poster = threading.Thread(target=post_m1, daemon=True)
    poster.start()
    deadline = time.monotonic() + 10
    while not any(t["text"] == "cut me off" for t in httpx.get(emulator + "/__emulator/counters").json()["turns"]):
        if time.monotonic() > deadline:
            raise RuntimeError("the agent never got the turn")
        time.sleep(0.05)
    print("CUT", flush=True)
    assert sys.stdin.readline().strip() == "GO"
    listener.join(10)  # its read times out: the browser notices the dead connection
    poster.join(10)
    statuses["m-1 on gw1"] = posting.get("m-1")
    if not isinstance(statuses["m-1 on gw1"], str):
        statuses["m-1 on gw1"] = statuses["m-1 on gw1"].status_code
    last_seen = next((e.id for e in reversed(before) if e.id is not None), "0")
    # Re-attach through gateway 2, from the last event seen, and carry on.
    after: list[SSE] = []
    with two.stream("GET", path + "/events", headers={**auth, "Last-Event-ID": last_seen}) as response:
        reader = threading.Thread(target=collect, args=(response.iter_lines(), after), daemon=True)
        reader.start()
        retried = two.post(path + "/messages", json={"id": "m-1", "text": "cut me off"}, headers=auth)
        statuses["m-1 retried on gw2"] = retried.status_code
        statuses["m-1 outcome"] = retried.json().get("error", {}).get("delivery", "answered")
        statuses["m-2"] = two.post(path + "/messages", json={"id": "m-2", "text": "still here?"},
                                   headers=auth).status_code
        deadline = time.monotonic() + 10
        while not any(e.event == "turn.end" and e.data.get("message_id") == "m-2" for e in after):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    everything: list[SSE] = []
    with two.stream("GET", path + "/events", headers={**auth, "Last-Event-ID": "0"}) as response:
        lines = response.iter_lines()
        while not everything or everything[-1].data.get("message_id") != "m-2":
            read_sse(lines, until={"turn.end"}, into=everything)
    return {
        "statuses": statuses, "stream_error": stream_error,
        "before": [(e.id, e.event) for e in before], "after": [(e.id, e.event) for e in after],
        "everything": [(e.id, e.event) for e in everything],
        "outcomes": [(e.event, e.data.get("message_id")) for e in before + after
                     if e.event in ("turn.end", "turn.error")],
        "turns": [t["text"] for t in httpx.get(emulator + "/__emulator/counters").json()["turns"]],
        "locked": httpx.get(emulator + "/__emulator/counters").json()["locked"],
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])), flush=True)
