"""Operations: the reaper (from every worker at once), readiness, structured logs, the CLI's refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sessionforce.config import ClientSettings
from sessionforce.emulator import RunningEmulator
from sessionforce.gateway import GatewayConfig, run_gateway
from tests.gateway.support import ROOT, Browser, gateway_env, make_config, read_sse, serve_process
from tests.support import Admin


def test_the_reaper_ends_idle_sessions_once_from_every_worker(emu: RunningEmulator, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/s.db"
    reaping = {"idle_timeout": 1.0, "reap_interval": 0.2}
    with run_gateway(make_config(emu, store, **reaping)) as one, run_gateway(make_config(emu, store, **reaping)):
        browsers = [Browser.signed_in(one.url, user=f"u{n}") for n in range(3)]
        for n, browser in enumerate(browsers):
            assert browser.send(f"m-{n}", "hello").status_code == 200
        admin = Admin(emu.url)
        deadline = time.monotonic() + 15
        while admin.counters()["sessions"]["open"]:
            assert time.monotonic() < deadline, "the reaper did not end the idle sessions"
            time.sleep(0.1)
        time.sleep(0.5)
        assert admin.requests("end_session") == 3  # each once, though two workers reap
        with browsers[0].events("0") as lines:
            events = read_sse(lines, until={"session.ended"})
        assert events[-1].data["by"] == "gateway"
        assert events[-1].data["reason"] == "Expiration"
        back = browsers[0].send("m-9", "back").json()["turn"]  # carries on in a new session (lifecycle policy)
        assert back["resumed"] is True
        assert back["resume_reason"] == "ended"


def test_readiness_names_what_is_missing(emu: RunningEmulator) -> None:
    org = ClientSettings.load(my_domain=emu.url, client_id=emu.client_id, client_secret="wrong-secret",
                              agent_id=emu.default_agent_id)
    config = make_config(emu)
    with run_gateway(GatewayConfig(org=org, store_url="memory://", settings=config.settings)) as gateway:
        ready = httpx.get(gateway.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "failed": "org"}
        assert ready.headers["Retry-After"] == "5"
        assert "wrong-secret" not in ready.text
        assert httpx.get(gateway.url + "/healthz").status_code == 200  # up, though not ready


def test_json_logs_carry_the_correlation_keys(emu: RunningEmulator, tmp_path: Path) -> None:
    env = gateway_env(emu, tmp_path, SESSIONFORCE_GATEWAY_LOG_FORMAT="json")
    with serve_process(["--store", "memory://"], env, tmp_path / "serve.log") as gateway:
        browser = Browser.signed_in(gateway.url)
        reply = browser.send("m-1", "hello").json()
        Admin(emu.url).faults({"route": "stream_message", "status": 500, "times": 1})
        browser.send("m-2", "fails")
        gateway.stop()
        lines = [line for line in gateway.output().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    answered = next(r for r in records if r["message"].startswith("message m-1 answered"))
    assert answered["conversation_id"] == browser.conversation
    assert answered["message_id"] == "m-1"
    assert answered["session_id"] == reply["turn"]["session_id"]
    assert answered["sequence_id"] == 1
    assert answered["external_session_key"]
    failed = next(r for r in records if r["message"].startswith("message m-2 failed"))
    assert failed["level"] == "warning"
    assert failed["sequence_id"] == 2
    started = next(r for r in records if r["message"] == "session started")  # the library's own record
    assert started["external_session_key"] == answered["external_session_key"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--workers", "0"], "--workers must be 1 or more"),
    (["--workers", "2", "--store", "memory://"], "memory:// cannot be shared by several workers"),
    (["--signing-key", "short"], "signing_key (SESSIONFORCE_GATEWAY_SIGNING_KEY): Value error, every signing key"),
    (["--cors-origin", "shop.example"], "is not an origin"),
])
def test_serve_refuses_bad_settings(emu: RunningEmulator, tmp_path: Path, args: list[str], expected: str) -> None:
    env = gateway_env(emu, tmp_path)
    result = subprocess.run([sys.executable, "-m", "sessionforce.cli", "serve", "--port", "0", *args], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "short" not in result.stderr.replace("--signing-key", "")  # a bad key is never echoed


def test_serve_with_no_org_runs_the_demo(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SF_", "SESSIONFORCE_"))}
    env.update(SESSIONFORCE_CONFIG=str(tmp_path / "none.toml"), HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path),
               PYTHONPATH=str(ROOT / "src"))
    with serve_process([], env, tmp_path / "serve.log") as gateway:
        token = httpx.post(gateway.url + "/v1/demo/token").json()
        browser = Browser(gateway.url, token["token"], token["conversations"][0])
        reply = browser.send("m-1", "what are your opening hours?").json()
        assert "Tuesday" in reply["messages"][0]["message"]
        assert httpx.get(gateway.url + "/").status_code == 200
        output = gateway.output()
    assert "No org configured: serving the built-in emulator" in output
    assert "web chat:" in output
