"""Re-attach after a connection cut mid-stream: every missed event exactly once, on the same worker or on
another one (two gateway processes sharing a Redis store); a worker killed mid-turn."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionforce.emulator import RunningEmulator, run_emulator
from sessionforce.emulator.pytest_plugin import emulator_strict
from sessionforce.gateway import run_gateway
from tests.gateway.support import SSE, Browser, ServeProcess, gateway_env, make_config, read_sse, serve_processes
from tests.redis_server import delete_prefix, unique_prefix
from tests.support import Admin


def _send_in_background(browser: Browser, message_id: str, text: str, answers: dict[str, Any]) -> threading.Thread:
    def send() -> None:
        try:
            answers[message_id] = browser.send(message_id, text)
        except httpx.HTTPError as exc:
            answers[message_id] = exc

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def _cut_then_reattach(first: Browser, second: Browser, message_id: str, text: str) -> tuple[list[SSE], list[SSE]]:
    """Open the stream on ``first``, send a slow turn, cut the stream after its first events, re-attach on
    ``second`` (same conversation and token) from the last id seen; the events before and after the cut."""
    answers: dict[str, Any] = {}
    with first.events("0") as lines:
        thread = _send_in_background(first, message_id, text, answers)
        before = read_sse(lines, until={"agent.progress"})
    # The connection is closed here, mid-turn: the agent is still working (the text comes later).
    time.sleep(0.4)
    with second.events(before[-1].id) as lines:
        after = read_sse(lines, until={"turn.end"})
    thread.join(15)
    assert answers[message_id].status_code == 200
    return before, after


def _assert_exactly_once(before: list[SSE], after: list[SSE], everything: list[SSE]) -> None:
    ids = [int(e.id) for e in before + after if e.id is not None]
    assert ids == list(range(1, len(ids) + 1)), ids  # nothing missed, nothing twice, in order
    assert [(e.id, e.event, e.data) for e in before + after] == [(e.id, e.event, e.data) for e in everything]
    assert after[0].event == "agent.text_chunk" or after[0].event == "agent.message"
    assert after[-1].event == "turn.end"


def test_reattach_on_the_same_worker(emu: RunningEmulator) -> None:
    Admin(emu.url).faults({"route": "stream_message", "latency_ms": 1200})
    with run_gateway(make_config(emu)) as gateway:
        browser = Browser.signed_in(gateway.url)
        before, after = _cut_then_reattach(browser, browser, "m-1", "what are your opening hours?")
        with browser.events("0") as lines:
            everything = read_sse(lines, until={"turn.end"})
    _assert_exactly_once(before, after, everything)


@contextlib.contextmanager
def _two_hosts(emu: RunningEmulator, tmp_path: Path, redis_url: str, prefix: str
               ) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """Two `sessionforce serve` processes (hosts, as far as they know) sharing one Redis."""
    env = gateway_env(emu, tmp_path, SESSIONFORCE_GATEWAY_LEASE_TTL="3")
    store = f"{redis_url}?prefix={prefix}"
    argv = [sys.executable, "-m", "sessionforce.cli", "serve", "--port", "0", "--store", store]
    with serve_processes([(argv, tmp_path / "a.log"), (argv, tmp_path / "b.log")], env) as (a, b):
        yield a, b


@pytest.fixture
def two_gateways(emu: RunningEmulator, tmp_path: Path, redis_url: str, redis_prefix: str
                 ) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """Two hosts of this test's own (for a test that kills one)."""
    with _two_hosts(emu, tmp_path, redis_url, redis_prefix) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def shared_hosts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str
                 ) -> Iterator[tuple[RunningEmulator, ServeProcess, ServeProcess]]:
    """An emulator and two hosts shared by the tests that leave both running (each in a conversation of
    its own, counting only the turns the agent got during it): booting hosts is most of such a test."""
    prefix = unique_prefix()
    try:
        with run_emulator(strict=emulator_strict(request)) as emu, \
                _two_hosts(emu, tmp_path_factory.mktemp("hosts"), redis_url, prefix) as (a, b):
            yield emu, a, b
    finally:
        delete_prefix(redis_url, prefix)


def test_reattach_on_another_worker_mid_turn(shared_hosts: tuple[RunningEmulator, ServeProcess, ServeProcess]
                                             ) -> None:
    emu, a, b = shared_hosts
    earlier = len(Admin(emu.url).turns())
    Admin(emu.url).faults({"route": "stream_message", "latency_ms": 1200})
    on_a = Browser.signed_in(a.url)
    on_b = Browser(b.url, on_a.token, on_a.conversation)
    # The turn runs on A; the stream is cut there and picked up on B while A is still answering.
    before, after = _cut_then_reattach(on_a, on_b, "m-1", "what are your opening hours?")
    with on_b.events("0") as lines:
        everything = read_sse(lines, until={"turn.end"})
    _assert_exactly_once(before, after, everything)
    # A retry of the same message on B is answered with A's outcome, and never reaches the agent again.
    retried = on_b.send("m-1", "what are your opening hours?")
    assert retried.status_code == 200
    assert retried.json()["last_event_id"] == everything[-1].id
    assert [t["text"] for t in Admin(emu.url).turns()[earlier:]] == ["what are your opening hours?"]
    assert Admin(emu.url).counters()["locked"] == 0


def test_a_turn_sent_to_both_workers_at_once_runs_once(
        shared_hosts: tuple[RunningEmulator, ServeProcess, ServeProcess]) -> None:
    emu, a, b = shared_hosts
    earlier = len(Admin(emu.url).turns())
    Admin(emu.url).faults({"route": "stream_message", "latency_ms": 500})
    on_a = Browser.signed_in(a.url)
    on_b = Browser(b.url, on_a.token, on_a.conversation)
    answers: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda w=w, name=n: answers.setdefault(name, w.send("m-1", "twice?")))
               for n, w in (("a", on_a), ("b", on_b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert answers["a"].status_code == answers["b"].status_code == 200
    assert answers["a"].json() == answers["b"].json()
    # And two different messages at once, one per worker: one turn at a time, never a 423.
    threads = [threading.Thread(target=lambda w=w, name=n: answers.setdefault(name, w.send(name, f"msg {name}")))
               for n, w in (("x", on_a), ("y", on_b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert answers["x"].status_code == answers["y"].status_code == 200
    assert {answers["x"].json()["turn"]["sequence_id"], answers["y"].json()["turn"]["sequence_id"]} == {2, 3}
    texts = [t["text"] for t in Admin(emu.url).turns()[earlier:]]
    assert sorted(texts) == ["msg x", "msg y", "twice?"]
    assert Admin(emu.url).counters()["locked"] == 0


def test_a_worker_killed_mid_turn(emu: RunningEmulator, two_gateways: tuple[ServeProcess, ServeProcess]) -> None:
    a, b = two_gateways
    admin = Admin(emu.url)
    on_a = Browser.signed_in(a.url)
    on_b = Browser(b.url, on_a.token, on_a.conversation)
    assert on_a.send("m-0", "hello").status_code == 200
    admin.faults({"route": "stream_message", "latency_ms": 2000, "times": 1})
    answers: dict[str, Any] = {}
    thread = _send_in_background(on_a, "m-1", "are you there?", answers)
    deadline = time.monotonic() + 10
    while not any(t["text"] == "are you there?" for t in admin.turns()):  # the agent has it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    a.stop(signal.SIGKILL)
    thread.join(10)
    assert isinstance(answers["m-1"], httpx.HTTPError)  # the browser lost its connection: it retries on B
    retried = on_b.send("m-1", "are you there?")
    assert retried.status_code == 504
    assert retried.json()["error"]["code"] == "delivery_unknown"
    assert retried.json()["error"]["delivery"] == "maybe_delivered"
    assert on_b.send("m-1", "are you there?").json() == retried.json()  # the same outcome from now on
    carried_on = on_b.send("m-2", "and now?")
    assert carried_on.status_code == 200
    texts = [t["text"] for t in admin.turns()]
    assert texts.count("are you there?") == 1
    assert texts.count("and now?") == 1
    with on_b.events("0") as lines:
        events = [e for _ in range(3) for e in read_sse(lines, until={"turn.end", "turn.error"})]
    outcomes = [(e.event, e.data["message_id"]) for e in events if e.event in ("turn.end", "turn.error")]
    assert outcomes == [("turn.end", "m-0"), ("turn.error", "m-1"), ("turn.end", "m-2")]
