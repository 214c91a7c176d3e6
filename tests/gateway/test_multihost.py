"""Two gateway hosts and one Redis in network namespaces of their own; one gateway's link is cut mid-turn,
and the conversation carries on through the other with nothing lost or sent twice.

Topology (root only; namespaces joined by veth pairs to a bridge in the hub, nothing routed outside)::

    hub  10.231.0.1   bridge, redis-server, the emulator (the client makes the cut turn slow)
    g1   10.231.0.11  sessionforce serve          g2  10.231.0.12  sessionforce serve
    cl   10.231.0.21  the browser (tests/gateway/netns_client.py)

Each gateway reaches the emulator as http://127.0.0.1:8787, forwarded over its own link to the hub
(tests/gateway/netns_forward.py): settings accept plain http:// for an org on loopback only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.support import API_KEY, ROOT, SIGNING_KEY

pytestmark = pytest.mark.timeout(90)

NET = "10.231.0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None or shutil.which("redis-server") is None:
        return "needs iproute2 (ip) and redis-server"
    probe = f"sfprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot create network namespaces here ({exc})"
    _ip("netns", "del", probe)
    return None


@contextlib.contextmanager
def _network() -> Iterator[dict[str, str]]:
    """hub, g1, g2 and cl namespaces on one bridge in hub; deleted (with their links) however the test ends."""
    tag = secrets.token_hex(2)
    names = {role: f"sf{tag}{role}" for role in ("hub", "g1", "g2", "cl")}
    made: list[str] = []
    try:
        for name in names.values():
            _ip("netns", "add", name)
            made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        hub = names["hub"]
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "addr", "add", f"{NET}.1/24", "dev", "br0")
        _ip("-n", hub, "link", "set", "br0", "up")
        for role, host in (("g1", 11), ("g2", 12), ("cl", 21)):
            inside, outside = f"eth-{role}", f"br-{role}"
            _ip("-n", hub, "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", names[role])
            _ip("-n", hub, "link", "set", outside, "master", "br0")
            _ip("-n", hub, "link", "set", outside, "up")
            _ip("-n", names[role], "addr", "add", f"{NET}.{host}/24", "dev", inside)
            _ip("-n", names[role], "link", "set", inside, "up")
        yield names
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)


_PROBE = """
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[1])
for url in sys.argv[2:]:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{url} did not come up")
        time.sleep(0.05)
"""


def _wait_http(names: dict[str, str], role: str, urls: list[str], deadline: float,
               started: list[tuple[subprocess.Popen[str], Path]]) -> None:
    """Until every one of ``urls`` answers 200 from inside ``role``'s namespace (one probe process there);
    a process of the test that exits meanwhile fails it at once, with its log."""
    probe = subprocess.Popen(["ip", "netns", "exec", names[role], sys.executable, "-c", _PROBE,
                              str(max(0.0, deadline - time.monotonic())), *urls],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while probe.poll() is None:
        for process, log in started:
            if process.poll() is not None:
                probe.kill()
                probe.wait()
                raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    assert probe.stderr is not None
    if probe.returncode != 0:
        raise RuntimeError(probe.stderr.read())


def test_a_gateway_host_cut_off_mid_turn(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "SESSIONFORCE_"))}
    env.update(PYTHONPATH=f"{ROOT}:{ROOT / 'src'}", SESSIONFORCE_CONFIG=str(tmp_path / "none.toml"))
    processes: list[subprocess.Popen[str]] = []
    started: list[tuple[subprocess.Popen[str], Path]] = []

    def start(role: str, args: list[str], extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
        log = tmp_path / f"{role}-{len(started)}.log"
        with log.open("w") as handle:
            process = subprocess.Popen(["ip", "netns", "exec", names[role], *args], env={**env, **(extra or {})},
                                       stdout=handle, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        processes.append(process)
        started.append((process, log))
        return process

    with _network() as names:
        try:
            deadline = time.monotonic() + 40
            start("hub", ["redis-server", "--bind", f"{NET}.1", "--port", "6379", "--save", "", "--appendonly", "no",
                          "--protected-mode", "no", "--dir", str(tmp_path)])
            emulator = f"http://{NET}.1:8787"
            start("hub", [sys.executable, "-m", "sessionforce.cli", "emulator", "--host", f"{NET}.1", "--port", "8787"])
            gateway_env = {
                "SF_MY_DOMAIN": "http://127.0.0.1:8787", "SF_CLIENT_ID": "sessionforce-emulator",
                "SF_CLIENT_SECRET": "emulator-secret", "SF_AGENT_ID": "0XxSF0000000DEMOAA",
                "SESSIONFORCE_GATEWAY_API_KEY": API_KEY, "SESSIONFORCE_GATEWAY_SIGNING_KEY": SIGNING_KEY,
                "SESSIONFORCE_GATEWAY_LEASE_TTL": "3", "SESSIONFORCE_GATEWAY_IDLE_TIMEOUT": "0",
            }
            store = f"redis://{NET}.1:6379/0?prefix=netns:"
            for role in ("g1", "g2"):
                start(role, [sys.executable, "-m", "tests.gateway.netns_forward", "8787", f"{NET}.1:8787"])
            for role in ("g1", "g2"):  # the org, as each gateway host will reach it
                _wait_http(names, role, ["http://127.0.0.1:8787/__emulator/agents"], deadline, started)
            for role, host in (("g1", 11), ("g2", 12)):
                start(role, [sys.executable, "-m", "sessionforce.cli", "serve", "--host", f"{NET}.{host}", "--port",
                             "8000", "--store", store], gateway_env)
            gw1, gw2 = f"http://{NET}.11:8000", f"http://{NET}.12:8000"
            _wait_http(names, "cl", [gw1 + "/readyz", gw2 + "/readyz"], deadline, started)
            # Nothing outside the namespaces is reachable from them (no route out).
            outside = subprocess.run(["ip", "netns", "exec", names["cl"], "ip", "route", "get", "1.1.1.1"],
                                     capture_output=True, text=True, timeout=10, check=False)
            assert outside.returncode != 0
            client = subprocess.Popen(
                ["ip", "netns", "exec", names["cl"], sys.executable, "-m", "tests.gateway.netns_client", gw1, gw2,
                 emulator], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, cwd=ROOT)
            processes.append(client)
            assert client.stdout is not None
            assert client.stdin is not None
            assert client.stdout.readline().strip() == "CUT"
            _ip("-n", names["g1"], "link", "set", "eth-g1", "down")  # gateway 1's host drops off the network
            client.stdin.write("GO\n")
            client.stdin.flush()
            out, err = client.communicate(timeout=45)
            assert client.returncode == 0, err
            result = json.loads(out.strip().splitlines()[-1])
        finally:
            for process in reversed(processes):
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
    statuses = result["statuses"]
    assert statuses["m-0"] == 200
    assert statuses["m-1 on gw1"] in ("ReadTimeout", "RemoteProtocolError", "ReadError")  # no answer came
    assert result["stream_error"]  # the browser's stream on gateway 1 died with the link
    assert statuses["m-1 retried on gw2"] == 504  # gateway 2 took the message over, honestly...
    assert statuses["m-1 outcome"] == "maybe_delivered"  # ...the agent may have it (and it does)
    assert statuses["m-2"] == 200  # the conversation carries on
    # Nothing lost: what the browser saw before the cut and after re-attaching is the whole log, each once.
    seen = [tuple(e) for e in result["before"] + result["after"]]
    assert seen == [tuple(e) for e in result["everything"]]
    ids = [int(i) for i, _ in seen]
    assert ids == list(range(1, len(ids) + 1))
    assert result["outcomes"] == [["turn.end", "m-0"], ["turn.error", "m-1"], ["turn.end", "m-2"]]
    # Nothing sent twice: the agent got each message once.
    assert sorted(result["turns"]) == ["cut me off", "hello", "still here?"]
