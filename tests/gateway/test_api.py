"""The whole HTTP API over real sockets, against the emulator."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from sessionforce.emulator import RunningEmulator
from sessionforce.gateway import RunningGateway, mint_token, run_gateway
from tests.gateway.support import SIGNING_KEY, Browser, make_config, read_sse, wait_for_turn
from tests.support import Admin


def test_a_message_gets_the_agents_reply(browser: Browser) -> None:
    answer = browser.send("m-1", "what are your opening hours?")
    assert answer.status_code == 200
    body = answer.json()
    assert body["message_id"] == "m-1"
    assert body["conversation_id"] == browser.conversation
    assert body["turn"]["awaiting"] == "message"
    assert body["turn"]["sequence_id"] == 1
    assert body["turn"]["resumed"] is False
    assert [m["type"] for m in body["messages"]] == ["Inform"]
    assert "Tuesday to Saturday" in body["messages"][0]["message"]
    assert body["messages"][0]["feedbackId"]
    assert "Cog & Chain" in body["greeting"][0]["message"]  # the first turn started the session
    assert int(body["last_event_id"]) > 0
    second = browser.send("m-2", "hello again").json()
    assert second["greeting"] == []
    assert second["turn"]["sequence_id"] == 2


def test_a_streamed_message_yields_its_events_in_order(browser: Browser) -> None:
    events = browser.send_streamed("m-1", "what are your opening hours?")
    kinds = [e.event for e in events]
    assert kinds[0] == "session.started"
    assert kinds[1] == "user.message"
    assert "agent.progress" in kinds
    assert kinds.count("agent.text_chunk") > 3
    assert kinds[-2:] == ["agent.message", "turn.end"]
    ids = [int(e.id) for e in events if e.id is not None]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # consecutive: nothing skipped, nothing doubled
    assert events[1].data == {"message_id": "m-1", "text": "what are your opening hours?", "type": "Text"}
    chunks = "".join(e.data["text"] for e in events if e.event == "agent.text_chunk")
    assert chunks == events[-2].data["message"]["message"]
    assert events[-1].data["message_id"] == "m-1"


def test_the_event_stream_replays_then_follows(browser: Browser) -> None:
    first = browser.send("m-1", "hello").json()
    with browser.events("0") as lines:
        replayed = read_sse(lines, until={"turn.end"})
    assert [e.event for e in replayed][:2] == ["session.started", "user.message"]
    assert replayed[-1].id == first["last_event_id"]
    # Live: a turn sent while a stream is open arrives on it, starting right after the cursor.
    got: list[Any] = []
    attached = threading.Event()

    def listen() -> None:
        with browser.events(first["last_event_id"], header=False) as lines:
            attached.set()
            got.extend(read_sse(lines, until={"turn.end"}))

    thread = threading.Thread(target=listen)
    thread.start()
    assert attached.wait(10)
    browser.send("m-2", "and again")
    thread.join(10)
    assert got[0].event == "user.message"
    assert got[0].data["message_id"] == "m-2"
    assert int(got[0].id) == int(first["last_event_id"]) + 1
    assert got[-1].event == "turn.end"


def test_without_a_cursor_the_stream_starts_from_now(browser: Browser) -> None:
    browser.send("m-1", "hello")
    got: list[Any] = []
    attached = threading.Event()

    def listen() -> None:
        with browser.events() as lines:
            attached.set()  # (its starting point is fixed before the response's headers)
            got.extend(read_sse(lines, until={"turn.end"}))

    thread = threading.Thread(target=listen)
    thread.start()
    assert attached.wait(10)
    browser.send("m-2", "later")
    thread.join(10)
    assert {e.data.get("message_id") for e in got if e.event in ("user.message", "turn.end")} == {"m-2"}


def test_a_retried_message_reaches_the_agent_once(browser: Browser, emu: RunningEmulator) -> None:
    first = browser.send("m-1", "hello there")
    again = browser.send("m-1", "hello there")
    assert again.status_code == 200
    assert again.json() == first.json()
    streamed = browser.send_streamed("m-1", "hello there")  # a retry may ask for the events instead
    assert streamed[-1].event == "turn.end"
    assert streamed[-1].id == first.json()["last_event_id"]
    turns = [t for t in Admin(emu.url).turns() if t["text"] == "hello there"]
    assert len(turns) == 1


def test_concurrent_retries_of_a_running_message_share_its_outcome(emu: RunningEmulator) -> None:
    Admin(emu.url).faults({"route": "stream_message", "latency_ms": 800})
    with run_gateway(make_config(emu)) as gateway:
        browser = Browser.signed_in(gateway.url)
        answers: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: answers.append(browser.send("m-1", "one message")))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        assert [a.status_code for a in answers] == [200] * 4
        assert len({a.text for a in answers}) == 1
    assert len([t for t in Admin(emu.url).turns() if t["text"] == "one message"]) == 1


def test_a_reused_message_id_with_other_text_is_refused(browser: Browser) -> None:
    browser.send("m-1", "hello")
    answer = browser.send("m-1", "something else")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "message_id_reused"


def test_a_second_message_queues_behind_the_running_one(emu: RunningEmulator) -> None:
    Admin(emu.url).faults({"route": "stream_message", "latency_ms": 600})
    with run_gateway(make_config(emu)) as gateway:
        browser = Browser.signed_in(gateway.url)
        answers: dict[str, httpx.Response] = {}
        first = threading.Thread(target=lambda: answers.setdefault("a", browser.send("a", "first")))
        first.start()
        wait_for_turn(Admin(emu.url), "first")  # the agent is answering it
        answers["b"] = browser.send("b", "second")
        first.join(10)
    assert answers["a"].status_code == answers["b"].status_code == 200
    assert answers["b"].json()["turn"]["sequence_id"] == answers["a"].json()["turn"]["sequence_id"] + 1
    assert Admin(emu.url).counters()["locked"] == 0


def test_a_message_waiting_too_long_gets_409_and_can_be_retried(emu: RunningEmulator) -> None:
    admin = Admin(emu.url)
    admin.faults({"route": "stream_message", "latency_ms": 1500, "times": 1})
    with run_gateway(make_config(emu, queue_wait=0.3)) as gateway:
        browser = Browser.signed_in(gateway.url)
        slow = threading.Thread(target=lambda: browser.send("a", "slow one"))
        slow.start()
        wait_for_turn(admin, "slow one")
        busy = browser.send("b", "impatient")
        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "turn_in_progress"
        assert busy.json()["error"]["delivery"] == "not_sent"
        assert int(busy.headers["Retry-After"]) >= 1
        slow.join(10)
        retried = browser.send("b", "impatient")  # nothing was sent: the same id runs now
        assert retried.status_code == 200
    assert len([t for t in admin.turns() if t["text"] == "impatient"]) == 1
    assert admin.counters()["locked"] == 0


def test_confirm_is_answered_with_a_reply(browser: Browser) -> None:
    asked = browser.send("m-1", "I'd like to book a repair").json()
    assert asked["turn"]["awaiting"] == "input"
    dated = browser.send("m-2", "2026-12-01", type="Reply", in_reply_to=asked["messages"][0]["id"]).json()
    assert dated["turn"]["awaiting"] == "confirmation"
    booked = browser.send("m-3", "yes", type="Reply", in_reply_to=dated["messages"][0]["id"]).json()
    assert booked["turn"]["awaiting"] == "message"
    assert "Booked" in booked["messages"][-1]["message"]


def test_transcript_feedback_start_and_end(browser: Browser, emu: RunningEmulator) -> None:
    started = browser.http.post(f"/v1/conversations/{browser.conversation}/start", headers=browser.auth).json()
    assert started["started"] is True
    assert "Cog & Chain" in started["greeting"][0]["message"]
    again = browser.http.post(f"/v1/conversations/{browser.conversation}/start", headers=browser.auth).json()
    assert again == {"conversation_id": browser.conversation, "started": False,
                     "session_id": started["session_id"], "greeting": []}
    reply = browser.send("m-1", "hello").json()
    assert reply["greeting"] == []  # the session was already live
    rated = browser.http.post(f"/v1/conversations/{browser.conversation}/feedback", headers=browser.auth,
                              json={"feedback_id": reply["messages"][0]["feedbackId"], "feedback": "GOOD",
                                    "text": "quick"})
    assert rated.status_code == 204
    session = next(s for s in Admin(emu.url).sessions() if s["sessionId"] == started["session_id"])
    assert session["feedback"][0]["feedback"] == "GOOD"
    transcript = browser.http.get(f"/v1/conversations/{browser.conversation}/transcript", headers=browser.auth).json()
    assert [e["kind"] for e in transcript["entries"]] == ["session_started", "turn"]
    assert transcript["entries"][1]["text"] == "hello"
    ended = browser.http.delete(f"/v1/conversations/{browser.conversation}", headers=browser.auth)
    assert ended.json() == {"ended": True}
    assert browser.http.delete(f"/v1/conversations/{browser.conversation}", headers=browser.auth).json() == {
        "ended": False}
    with browser.events("0") as lines:
        events = read_sse(lines, until={"session.ended"})
    assert events[-1].data == {"session_id": started["session_id"], "reason": "UserRequest", "by": "user"}
    assert browser.send("m-2", "back again").json()["turn"]["session_id"] != started["session_id"]


def test_the_agent_ending_the_session_is_an_event(browser: Browser) -> None:
    body = browser.send("m-1", "goodbye").json()
    assert body["turn"]["awaiting"] == "ended"
    with browser.events("0") as lines:
        events = read_sse(lines, until={"turn.end"})
    ended = [e for e in events if e.event == "session.ended"]
    assert ended[0].data["by"] == "agent"
    refused = browser.send("m-2", "hello?")
    assert refused.status_code == 409
    assert refused.json()["error"] == {
        "code": "conversation_ended", "delivery": "not_sent", "retry_after": 2.0,
        "message": "The agent ended this conversation. What to do: start a new one."}


def test_an_expired_session_is_resumed_behind_the_api(browser: Browser, emu: RunningEmulator) -> None:
    first = browser.send("m-1", "hello").json()
    Admin(emu.url).expire(first["turn"]["session_id"])
    second = browser.send("m-2", "still there?").json()
    assert second["turn"]["resumed"] is True
    assert second["turn"]["resume_reason"] == "expired"
    assert second["turn"]["session_id"] != first["turn"]["session_id"]


def test_tokens_refresh_and_library_minting(gateway: RunningGateway) -> None:
    browser = Browser.signed_in(gateway.url, conversations=["c-7", "c-8"])
    refreshed = browser.http.post("/v1/tokens/refresh", headers=browser.auth)
    assert refreshed.status_code == 200
    assert refreshed.json()["conversations"] == ["c-7", "c-8"]
    assert refreshed.json()["expires_in"] == 900
    assert refreshed.json()["expires_at"].endswith("Z")
    browser.token = mint_token(SIGNING_KEY, user="u-2", conversations=["c-9"], ttl=60)
    browser.conversation = "c-9"
    assert browser.send("m", "hello").status_code == 200


def test_demo_tokens_only_on_the_demo_setup(emu: RunningEmulator) -> None:
    with run_gateway(make_config(emu, emulator=True, api_key=[])) as gateway:
        token = httpx.post(gateway.url + "/v1/demo/token").json()
        browser = Browser(gateway.url, token["token"], token["conversations"][0])
        assert browser.send("m", "hello").status_code == 200
    with run_gateway(make_config(emu, emulator=True)) as gateway:  # an API key is configured: off
        assert httpx.post(gateway.url + "/v1/demo/token").status_code == 404
    with run_gateway(make_config(emu, demo=True)) as gateway:  # asked for
        assert httpx.post(gateway.url + "/v1/demo/token").status_code == 200


def test_operations_routes(gateway: RunningGateway) -> None:
    http = httpx.Client(base_url=gateway.url)
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready"}
    document = http.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    routes = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = {(r.path, m) for r in gateway_routes(gateway) for m in r.methods or () if m != "HEAD"}
    assert served <= routes
    missing = http.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert http.put("/healthz").json()["error"]["code"] == "method_not_allowed"
    assert http.get("/").status_code == 200  # the web chat page (or its placeholder)


def gateway_routes(gateway: RunningGateway) -> list[Any]:
    from starlette.routing import Route

    app = gateway._server.config.app
    return [r for r in app.routes if isinstance(r, Route)]


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_the_api_on_shared_stores(emu: RunningEmulator, store: str, tmp_path: Any,
                                  request: pytest.FixtureRequest) -> None:
    if store == "sqlite":
        url = f"sqlite:///{tmp_path}/sessions.db"
    else:
        url = f"{request.getfixturevalue('redis_url')}?prefix={request.getfixturevalue('redis_prefix')}"
    with run_gateway(make_config(emu, url)) as gateway:
        browser = Browser.signed_in(gateway.url)
        first = browser.send("m-1", "hello").json()
        assert browser.send("m-1", "hello").json() == first
        events = browser.send_streamed("m-2", "opening hours?")
        assert events[-1].event == "turn.end"
        with browser.events("0") as lines:
            replayed = read_sse(lines, until={"turn.end"}, limit=100)
        assert replayed[-1].id == first["last_event_id"]
    assert len([t for t in Admin(emu.url).turns() if t["text"] == "hello"]) == 1
