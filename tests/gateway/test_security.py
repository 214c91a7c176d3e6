"""Each security rule of the gateway, with a test that tries to break it."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from sessionforce.emulator import RunningEmulator
from sessionforce.gateway import RunningGateway, mint_token, run_gateway
from tests.gateway.support import API_KEY, SIGNING_KEY, Browser, gateway_env, make_config, serve_process
from tests.support import Admin

OTHER_KEY = "another-signing-key-that-is-long-enough-0123456789"
INVALID = {"code": "invalid_token", "message": "Missing or invalid credentials. What to do: send 'Authorization: "
           "Bearer <token>' with a token from your application."}


def _routes(conversation: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/v1/conversations/{conversation}"
    return [
        ("POST", base + "/messages", {"id": "x-1", "text": "hello"}),
        ("GET", base + "/transcript", None),
        ("POST", base + "/start", None),
        ("POST", base + "/feedback", {"feedback_id": "f", "feedback": "GOOD"}),
        ("DELETE", base, None),
        ("GET", base + "/events?after=0", None),
    ]


def test_a_token_for_one_conversation_cannot_touch_another(gateway: RunningGateway, emu: RunningEmulator) -> None:
    owner = Browser.signed_in(gateway.url, user="alice", conversations=["conv-a"])
    intruder = Browser.signed_in(gateway.url, user="mallory", conversations=["conv-b"])
    owner.send("m-1", "my secret order 42")
    sessions_before = Admin(emu.url).counters()["sessions"]["started"]
    for method, path, body in _routes("conv-a"):
        answer = intruder.http.request(method, path, json=body, headers=intruder.auth)
        assert answer.status_code == 403, (method, path)
        assert answer.json()["error"]["code"] == "forbidden"
        assert "secret order" not in answer.text
    # Not through the query token either, nor with a path trick.
    assert intruder.http.get("/v1/conversations/conv-a/events", params={"access_token": intruder.token}
                             ).status_code == 403
    assert intruder.http.get("/v1/conversations/conv-b%2F..%2Fconv-a/transcript", headers=intruder.auth
                             ).status_code in (403, 404)
    assert Admin(emu.url).counters()["sessions"]["started"] == sessions_before
    assert [t["text"] for t in Admin(emu.url).turns()] == ["my secret order 42"]


def _forge(claims: dict[str, Any], key: str = SIGNING_KEY, **header: Any) -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers=header or None)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "sessionforce-gateway", "aud": "sessionforce-gateway", "sub": "u", "conv": ["c-1"],
            "iat": now, "exp": now + 600, "jti": "j", **changes}


def _kid(key: str) -> str:
    from pydantic import SecretStr

    from sessionforce.gateway import SigningKey

    return SigningKey(SecretStr(key)).kid


def _bad_tokens() -> dict[str, str]:
    good = mint_token(SIGNING_KEY, user="u", conversations=["c-1"])
    head, payload, signature = good.split(".")
    widened = json.loads(base64.urlsafe_b64decode(payload + "=="))
    widened["conv"] = ["c-1", "c-2"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(widened).encode()).rstrip(b"=").decode()
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT","kid":"%s"}' % _kid(SIGNING_KEY).encode())
    return {
        "tampered payload": f"{head}.{forged_payload}.{signature}",
        "tampered signature": f"{head}.{payload}.{signature[:-2]}AA",
        "alg none": none_header.rstrip(b"=").decode() + "." + forged_payload + ".",
        "wrong audience": _forge(_claims(aud="someone-else"), kid=_kid(SIGNING_KEY)),
        "wrong issuer": _forge(_claims(iss="evil"), kid=_kid(SIGNING_KEY)),
        "other key, our kid": _forge(_claims(), OTHER_KEY, kid=_kid(SIGNING_KEY)),
        "unknown kid": _forge(_claims(), OTHER_KEY, kid=_kid(OTHER_KEY)),
        "no kid": _forge(_claims()),
        "no jti": _forge({k: v for k, v in _claims().items() if k != "jti"}, kid=_kid(SIGNING_KEY)),
        "conv not a list": _forge(_claims(conv="c-1"), kid=_kid(SIGNING_KEY)),
        "not before its time": _forge(_claims(iat=int(time.time()) + 3600), kid=_kid(SIGNING_KEY)),
        "garbage": "not.a.token",
        "the API key": API_KEY,
    }


@pytest.mark.parametrize("case", list(_bad_tokens()))
def test_bad_tokens_get_401_and_nothing_more(gateway: RunningGateway, case: str) -> None:
    token = _bad_tokens()[case]
    http = httpx.Client(base_url=gateway.url)
    for method, path, body in _routes("c-1"):
        answer = http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, (case, path)
        assert answer.json() == {"error": INVALID}
    assert http.post("/v1/tokens/refresh", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_an_expired_token_says_expired_and_nothing_else(gateway: RunningGateway) -> None:
    old = mint_token(SIGNING_KEY, user="u", conversations=["c-1"], ttl=60, now=time.time() - 3600)
    answer = httpx.get(gateway.url + "/v1/conversations/c-1/transcript", headers={"Authorization": f"Bearer {old}"})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_token"
    assert answer.json()["error"]["expired"] is True
    assert set(answer.json()["error"]) == {"code", "message", "expired"}
    assert httpx.post(gateway.url + "/v1/tokens/refresh", headers={"Authorization": f"Bearer {old}"}
                      ).status_code == 401  # refresh needs a token still valid


def test_keys_rotate_without_downtime(emu: RunningEmulator) -> None:
    old_token = mint_token(SIGNING_KEY, user="u", conversations=["c-1"])
    with run_gateway(make_config(emu, signing_key=[OTHER_KEY, SIGNING_KEY])) as gateway:  # new key first
        browser = Browser(gateway.url, old_token, "c-1")
        assert browser.send("m-1", "hello").status_code == 200  # tokens of the old key still verify
        fresh = browser.http.post("/v1/tokens/refresh", headers=browser.auth).json()["token"]
        assert jwt.get_unverified_header(fresh)["kid"] == _kid(OTHER_KEY)  # new tokens use the new key
    with run_gateway(make_config(emu, signing_key=[OTHER_KEY])) as gateway:  # old key dropped
        assert Browser(gateway.url, old_token, "c-1").send("m-2", "hi").status_code == 401
        assert Browser(gateway.url, fresh, "c-1").send("m-2", "hi").status_code == 200


def test_query_tokens_only_open_event_streams(browser: Browser) -> None:
    query = {"access_token": browser.token}
    base = f"/v1/conversations/{browser.conversation}"
    assert browser.http.post(base + "/messages", params=query, json={"id": "m", "text": "x"}).status_code == 401
    assert browser.http.get(base + "/transcript", params=query).status_code == 401
    assert browser.http.delete(base, params=query).status_code == 401
    with browser.http.stream("GET", base + "/events", params=query) as stream:
        assert stream.status_code == 200


def test_api_keys(gateway: RunningGateway) -> None:
    http = httpx.Client(base_url=gateway.url)
    assert http.post("/v1/tokens", json={"user": "u"}).status_code == 401
    assert http.post("/v1/tokens", json={"user": "u"}, headers={"Authorization": "Bearer wrong-key-0123456789"}
                     ).json() == {"error": INVALID}
    user_token = mint_token(SIGNING_KEY, user="u", conversations=["c"])
    assert http.post("/v1/tokens", json={"user": "u"}, headers={"Authorization": f"Bearer {user_token}"}
                     ).status_code == 401
    assert http.post("/v1/tokens", json={"user": "u", "ttl": 10**9}, headers={"Authorization": f"Bearer {API_KEY}"}
                     ).status_code == 400
    assert http.post("/v1/tokens", json={"user": "u", "conversations": ["../etc"]},
                     headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 400


def test_per_user_and_per_address_rate_limits(emu: RunningEmulator) -> None:
    with run_gateway(make_config(emu, user_rate=4, ip_rate=9)) as gateway:
        alice = Browser.signed_in(gateway.url, user="alice")
        bob = Browser.signed_in(gateway.url, user="bob")
        transcript = f"/v1/conversations/{alice.conversation}/transcript"
        codes = [alice.http.get(transcript, headers=alice.auth).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 200, 429]
        limited = alice.http.get(transcript, headers=alice.auth)
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        bob_transcript = f"/v1/conversations/{bob.conversation}/transcript"
        codes = [bob.http.get(bob_transcript, headers=bob.auth).status_code for _ in range(4)]
        assert codes[0] == 200  # another user has a budget of its own...
        assert 429 in codes  # ...until the address's runs out (9 a minute, tokens included)
        guesser = httpx.Client(base_url=gateway.url)
        answer = guesser.get(transcript, headers={"Authorization": "Bearer guess"})
        assert answer.status_code == 429  # guessing tokens counts against the address too


def test_body_and_text_limits(emu: RunningEmulator) -> None:
    with run_gateway(make_config(emu, max_body_bytes=2000, max_text_chars=100)) as gateway:
        browser = Browser.signed_in(gateway.url)
        url = f"/v1/conversations/{browser.conversation}/messages"
        too_big = browser.http.post(url, content=b'{"id":"m","text":"' + b"x" * 3000 + b'"}',
                                    headers={**browser.auth, "Content-Type": "application/json"})
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "body_too_large"

        def chunked() -> Any:
            yield b'{"id":"m","text":"'
            for _ in range(30):
                yield b"y" * 100
            yield b'"}'

        streamed = browser.http.post(url, content=chunked(), headers={**browser.auth,
                                                                      "Content-Type": "application/json"})
        assert streamed.status_code == 413  # no Content-Length to trust: counted while read
        long_text = browser.send("m", "z" * 101)
        assert long_text.status_code == 413
        assert long_text.json()["error"]["code"] == "text_too_large"
        assert browser.http.post(url, content=b"id=m", headers={**browser.auth, "Content-Type": "text/plain"}
                                 ).status_code == 415
        assert browser.http.post(url, content=b"{nope", headers={**browser.auth, "Content-Type": "application/json"}
                                 ).status_code == 400
        assert browser.http.post(url, json=["a"], headers=browser.auth).status_code == 400
        assert browser.send("m" * 101, "hello").status_code == 400
        assert browser.send("m\n1", "hello").status_code == 400
        assert browser.send("m", "").status_code == 400
        assert browser.send("m", "hi", type="Cancel").status_code == 400
        surrogate = b'{"id":"m","text":"\\ud800"}'
        assert browser.http.post(url, content=surrogate, headers={**browser.auth, "Content-Type": "application/json"}
                                 ).status_code == 400
    assert Admin(emu.url).turns() == []


def test_cors_is_closed_unless_an_origin_is_listed(emu: RunningEmulator) -> None:
    preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    with run_gateway(make_config(emu)) as gateway:
        answer = httpx.options(gateway.url + "/v1/conversations/c/messages", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
        plain = httpx.get(gateway.url + "/healthz", headers={"Origin": "https://shop.example"})
        assert "access-control-allow-origin" not in plain.headers
    with run_gateway(make_config(emu, cors_origin=["https://shop.example"])) as gateway:
        allowed = httpx.options(gateway.url + "/v1/conversations/c/messages", headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        evil = httpx.options(gateway.url + "/v1/conversations/c/messages",
                             headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in evil.headers
        plain = httpx.get(gateway.url + "/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in plain.headers


def test_no_secret_in_any_response_or_log(emu: RunningEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    admin = Admin(emu.url)
    seen: list[str] = []
    tokens: list[str] = []
    with run_gateway(make_config(emu)) as gateway:
        browser = Browser.signed_in(gateway.url)
        tokens.append(browser.token)

        def record(answer: httpx.Response) -> None:
            seen.append(answer.text + json.dumps(dict(answer.headers)))

        record(browser.send("m-1", "hello"))
        admin.expire_tokens()  # the org token is refused once: refreshed behind the scenes
        record(browser.send("m-2", "hello again"))
        admin.faults({"route": "stream_message", "status": 500, "times": 1})
        record(browser.send("m-3", "this one fails"))
        admin.faults({"route": "stream_message", "drop_after_chunks": 1, "times": 1})
        record(browser.send("m-4", "this one breaks"))
        admin.faults({"route": "token", "status": 401, "times": 5})
        admin.expire_tokens()
        record(browser.send("m-5", "bad credentials"))
        for token in _bad_tokens().values():
            record(browser.http.get(f"/v1/conversations/{browser.conversation}/transcript",
                                    headers={"Authorization": f"Bearer {token}"}))
        record(browser.http.post("/v1/tokens", json={"user": "u"}, headers={"Authorization": "Bearer nope"}))
        record(browser.http.get("/readyz"))
        with browser.events("0", header=False) as lines:
            seen.append("\n".join(line for _, line in zip(range(60), lines, strict=False)))
        org_tokens = list(emu.state.tokens)
    secrets = [API_KEY, SIGNING_KEY, emu.client_secret, *org_tokens]
    logs = "\n".join(r.getMessage() + " " + str(r.__dict__) + (r.exc_text or "") for r in caplog.records)
    assert logs  # the gateway and the library did log
    for secret in secrets:
        for text in seen:
            assert secret not in text
        assert secret not in logs
    for token in tokens:  # end-user tokens: in the answer that minted them, never in a log
        assert token not in logs


def test_no_password_of_the_store_in_output(emu: RunningEmulator, tmp_path: Path) -> None:
    env = gateway_env(emu, tmp_path)
    log = tmp_path / "serve.log"
    with serve_process(["--store", "redis://:hunter2-store-secret@127.0.0.1:1/0"], env, log, ready=False) as running:
        ready = httpx.get(running.url + "/readyz", timeout=10)  # nothing listens on port 1: not ready, and says so
        assert ready.status_code == 503
        assert "hunter2" not in ready.text
        token = mint_token(SIGNING_KEY, user="u", conversations=["c-1"])
        answer = httpx.post(running.url + "/v1/conversations/c-1/messages", json={"id": "m", "text": "hi"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 503
        assert "hunter2" not in answer.text
    output = log.read_text()
    assert "gateway on http://" in output
    assert "redis://:***@127.0.0.1:1/0" in output
    assert "hunter2-store-secret" not in output
