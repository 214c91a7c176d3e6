"""The shell examples of docs/gateway.md that serve until Ctrl-C (tests/test_docs.py cannot run those, and
runs the rest): the curl walk-through against a `sessionforce serve` with no org configured (the built-in
emulator and its demo tokens), and the production start with its generated keys and CORS origin."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sessionforce.emulator import RunningEmulator
from sessionforce.gateway import mint_token
from tests.gateway.support import ROOT, serve_process

DOC = (ROOT / "docs" / "gateway.md").read_text()
BASH = re.findall(r"```bash\n(.*?)```", DOC, re.DOTALL)
BIN = Path(sys.executable).parent


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "SESSIONFORCE_"))}
    env.update(SESSIONFORCE_CONFIG=str(tmp_path / "none.toml"), HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path),
               PYTHONPATH=str(ROOT / "src"), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return env


def test_the_curl_walkthrough_talks_to_the_demo_agent(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    walkthrough = next(block for block in BASH if "/v1/demo/token" in block)
    with serve_process([], _clean_env(tmp_path), tmp_path / "serve.log") as gateway:
        script = walkthrough.replace("http://127.0.0.1:8000", gateway.url)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Tuesday to Saturday" in done.stdout


def test_the_production_start_takes_its_keys_and_origin(emu: RunningEmulator, tmp_path: Path) -> None:
    block = next(block for block in BASH if "--cors-origin https://shop.example" in block)
    # As written but on loopback and a free port (tests never listen beyond loopback); `exec`, so that the
    # signals reach the server and its environment is the one the block exported.
    shown = "sessionforce serve --host 0.0.0.0"
    assert block.count(shown) == 1
    script = block.replace(shown, "exec sessionforce serve --host 127.0.0.1 --port 0")
    env = {**_clean_env(tmp_path), "SF_MY_DOMAIN": emu.url, "SF_CLIENT_ID": emu.client_id,
           "SF_CLIENT_SECRET": emu.client_secret, "SF_AGENT_ID": emu.default_agent_id}
    with serve_process([], env, tmp_path / "serve.log", command=["bash", "-euo", "pipefail", "-c", script]
                       ) as gateway:
        exported = dict(item.split("=", 1) for item in
                        Path(f"/proc/{gateway.process.pid}/environ").read_text().split("\0") if "=" in item)
        api_key, signing_key = exported["SESSIONFORCE_GATEWAY_API_KEY"], exported["SESSIONFORCE_GATEWAY_SIGNING_KEY"]
        assert len(api_key) >= 32
        assert len(signing_key) >= 64
        http = httpx.Client(base_url=gateway.url, timeout=30)
        grant = http.post("/v1/tokens", json={"user": "customer-42"}, headers={"Authorization": f"Bearer {api_key}"})
        assert grant.status_code == 200  # the generated API key opens /v1/tokens
        assert http.post("/v1/tokens", json={"user": "customer-42"},
                         headers={"Authorization": "Bearer another-key"}).status_code == 401
        mine = mint_token(signing_key, user="customer-42", conversations=["order-1234"])  # the generated signing key
        answer = http.post("/v1/conversations/order-1234/messages", headers={"Authorization": f"Bearer {mine}"},
                           json={"id": "m-1", "text": "What are your opening hours?"})
        assert answer.status_code == 200
        assert "Tuesday" in answer.json()["messages"][0]["message"]
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        shop = http.options("/v1/conversations/order-1234/messages", headers={**preflight, "Origin": "https://shop.example"})
        assert shop.headers["access-control-allow-origin"] == "https://shop.example"
        other = http.options("/v1/conversations/order-1234/messages",
                             headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        http.close()
        assert gateway.stop() == 0
    output = gateway.output()
    assert "No signing key configured" not in output
    assert api_key not in output
    assert signing_key not in output
