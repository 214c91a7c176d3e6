"""Graceful shutdown with real signals: running turns finish or are recorded honestly, event streams are
told to re-attach; several workers start, serve and stop together."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from sessionforce.emulator import RunningEmulator
from tests.gateway.support import Browser, gateway_env, read_sse, serve_process, wait_for_turn
from tests.support import Admin


def test_sigterm_lets_the_running_turn_finish_and_sends_streams_away(emu: RunningEmulator, tmp_path: Path) -> None:
    admin = Admin(emu.url)
    admin.faults({"route": "stream_message", "latency_ms": 1500})
    env = gateway_env(emu, tmp_path)
    with serve_process(["--store", f"sqlite:///{tmp_path}/s.db"], env, tmp_path / "serve.log") as gateway:
        browser = Browser.signed_in(gateway.url)
        answers: dict[str, Any] = {}
        streamed: list[Any] = []

        def listen() -> None:
            with browser.events("0") as lines:
                streamed.extend(read_sse(lines, until={"reconnect"}))

        listener = threading.Thread(target=listen)
        listener.start()
        sender = threading.Thread(target=lambda: answers.setdefault("m", browser.send("m-1", "finish me")))
        sender.start()
        wait_for_turn(admin, "finish me")
        gateway.process.send_signal(signal.SIGTERM)
        listener.join(10)
        sender.join(10)
        status = gateway.process.wait(20)
        output = gateway.output()
    assert status == 0, output
    assert answers["m"].status_code == 200  # the turn in flight finished and was answered
    assert answers["m"].json()["messages"][0]["message"] == "You said: finish me"
    assert streamed[-1].event == "reconnect"  # the stream was told to go elsewhere...
    assert streamed[-1].id is None  # ...without an id, so the browser re-attaches from the last real event
    assert "draining" in output


def test_a_turn_cut_short_by_shutdown_is_recorded_as_maybe_delivered(emu: RunningEmulator, tmp_path: Path) -> None:
    admin = Admin(emu.url)
    admin.faults({"route": "stream_message", "latency_ms": 5000, "times": 1})
    env = gateway_env(emu, tmp_path, SESSIONFORCE_GATEWAY_SHUTDOWN_TIMEOUT="1")
    store = f"sqlite:///{tmp_path}/s.db"
    with serve_process(["--store", store], env, tmp_path / "first.log") as gateway:
        browser = Browser.signed_in(gateway.url)
        thread = threading.Thread(target=lambda: _ignore(lambda: browser.send("m-1", "too slow")))
        thread.start()
        wait_for_turn(admin, "too slow")
        started = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(20) == 0
        assert time.monotonic() - started < 10  # bounded by the shutdown timeout, not by the agent
        thread.join(10)
    with serve_process(["--store", store], env, tmp_path / "second.log") as gateway:
        browser.http = httpx.Client(base_url=gateway.url, timeout=30)
        retried = browser.send("m-1", "too slow")  # the browser retries: the recorded outcome answers
        assert retried.status_code == 503
        assert retried.json()["error"]["code"] == "shutdown"
        assert retried.json()["error"]["delivery"] == "maybe_delivered"
        assert browser.send("m-2", "next").status_code == 200
        transcript = browser.http.get(f"/v1/conversations/{browser.conversation}/transcript",
                                      headers=browser.auth).json()["entries"]
    assert [e["kind"] for e in transcript] == ["session_started", "delivery_unknown", "turn"]
    assert [t["text"] for t in admin.turns()] == ["too slow", "next"]


def _ignore(call: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()


def test_several_workers_share_the_port_and_stop_together(emu: RunningEmulator, tmp_path: Path) -> None:
    env = gateway_env(emu, tmp_path)
    with serve_process(["--workers", "2", "--store", f"sqlite:///{tmp_path}/s.db"], env,
                       tmp_path / "serve.log") as gateway:
        # Serving means one worker answers; the other may still be importing on a loaded machine (a stop
        # then ends it before it starts). Both must be up for "serve and stop together" to be tested.
        deadline = time.monotonic() + 30
        while gateway.output().count("Started server process") < 2:
            assert time.monotonic() < deadline, gateway.output()
            time.sleep(0.1)
        browsers = [Browser.signed_in(gateway.url, user=f"u{n}") for n in range(6)]
        for n, browser in enumerate(browsers):
            answer = browser.send(f"m-{n}", f"hello {n}")
            assert answer.status_code == 200
            # Each request on a new connection: the kernel spreads them over both workers.
            browser.http.close()
        assert gateway.stop() == 0
        output = gateway.output()
    assert output.count("Started server process") == 2
    assert output.count("Finished server process") == 2
    assert sorted(t["text"] for t in Admin(emu.url).turns()) == [f"hello {n}" for n in range(6)]
