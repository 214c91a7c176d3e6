"""The chat survives the network: offline in the middle of a streamed reply, a connection cut under it,
a message typed offline, a session that expired, a token that runs out, a reload. After each, every
message is on screen exactly once and every turn reached the agent exactly once (emulator counters)."""

from __future__ import annotations

from tests.webchat.requirements import require_browser

require_browser()

import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import jwt  # noqa: E402
import pytest  # noqa: E402
from playwright.sync_api import BrowserContext, Page, Request, expect  # noqa: E402

from tests.gateway.support import read_sse  # noqa: E402
from tests.webchat.gateway import ChatGateway  # noqa: E402
from tests.webchat.support import (  # noqa: E402
    RECORDER,
    CutProxy,
    agent_texts,
    recorded,
    send,
    user_texts,
    wait_answered,
    wait_online,
)

# An agent whose replies stream in several chunks; slow_down_next_turn makes one of its turns slow.
SLOW_AGENT: dict[str, Any] = {
    "name": "Slow Bot",
    "greeting": "Hello, I am slow.",
    "fallback": "Slowly, I answer: {text}. This reply streams in several chunks.",
}


def slow_down_next_turn(gateway: ChatGateway) -> None:
    """The agent's next turn takes 1.5 s after its progress indicator, so the network can fail mid-reply
    (only that turn: the others answer at once)."""
    gateway.admin.faults({"route": "stream_message", "latency_ms": 1500, "times": 1})


class Requests:
    """The requests a page made to the gateway, with what they carried."""

    def __init__(self, page: Page) -> None:
        self.items: list[Request] = []
        page.on("request", lambda request: self.items.append(request))

    def posts(self) -> list[dict[str, Any]]:
        return [json.loads(r.post_data or "{}") for r in self.items
                if r.method == "POST" and r.url.endswith("/messages")]

    def attaches(self) -> list[dict[str, str]]:
        return [r.headers for r in self.items if r.method == "GET" and "/events" in r.url]


def open_chat(context: BrowserContext, url: str) -> tuple[Page, Requests]:
    context.add_init_script(RECORDER)
    page = context.new_page()
    requests = Requests(page)
    page.goto(url if "#" in url else url + "/")
    wait_online(page)
    return page, requests


def assert_each_event_once(page: Page) -> None:
    ids = [e["id"] for e in recorded(page)["events"]]
    assert len(ids) == len(set(ids)), f"an event was applied twice: {ids}"


@pytest.fixture
def slow(start_gateway: Callable[..., ChatGateway]) -> ChatGateway:
    return start_gateway(agents=[SLOW_AGENT])


@pytest.fixture
def proxy(slow: ChatGateway) -> Iterator[CutProxy]:
    p = CutProxy(slow.port)
    yield p
    p.close()


def test_offline_in_the_middle_of_a_streamed_reply(context: BrowserContext, slow: ChatGateway) -> None:
    page, _ = open_chat(context, slow.url)
    send(page, "first")
    wait_answered(page, 2)
    slow_down_next_turn(slow)
    send(page, "second")
    expect(page.locator(".sf-typing")).to_be_visible()  # the turn runs: the agent is "working"
    context.set_offline(True)
    expect(page.locator(".sf-status")).to_have_attribute("data-state", "offline")
    # The agent finishes while the browser is away: the conversation's log holds the turn's end.
    finished_turns(slow, page.locator(".sf-chat").get_attribute("data-conversation"), 2)
    context.set_offline(False)
    wait_answered(page, 3)
    assert agent_texts(page) == [
        "Hello, I am slow.",
        "Slowly, I answer: first. This reply streams in several chunks.",
        "Slowly, I answer: second. This reply streams in several chunks.",
    ]
    assert user_texts(page) == ["first", "second"]
    assert [t["text"] for t in slow.admin.turns()] == ["first", "second"]
    assert_each_event_once(page)


def finished_turns(gateway: ChatGateway, conversation: str | None, count: int) -> None:
    """Until the conversation's event log holds ``count`` ends of turns (read apart from the page)."""
    assert conversation
    token = gateway.mint([conversation])["token"]
    with httpx.stream("GET", f"{gateway.url}/v1/conversations/{conversation}/events", params={"after": "0"},
                      headers={"Authorization": f"Bearer {token}"}, timeout=20) as response:
        lines = response.iter_lines()
        ends = [e for _ in range(count) for e in read_sse(lines, until={"turn.end"}) if e.event == "turn.end"]
    assert len(ends) == count


def test_a_connection_cut_under_a_streamed_reply(context: BrowserContext, slow: ChatGateway,
                                                 proxy: CutProxy) -> None:
    page, requests = open_chat(context, proxy.url)
    send(page, "first")
    wait_answered(page, 2)
    slow_down_next_turn(slow)
    send(page, "second")
    expect(page.locator(".sf-typing")).to_be_visible()
    # Both the events stream and the POST die; the browser is not told it is offline.
    proxy.cut()
    wait_answered(page, 3)
    assert agent_texts(page)[1:] == [
        "Slowly, I answer: first. This reply streams in several chunks.",
        "Slowly, I answer: second. This reply streams in several chunks.",
    ]
    assert user_texts(page) == ["first", "second"]
    assert [t["text"] for t in slow.admin.turns()] == ["first", "second"], "the retried POST reached the agent once"
    seconds = [p for p in requests.posts() if p["text"] == "second"]
    assert len({p["id"] for p in seconds}) == 1, "every attempt carried the same client message id"
    # The stream re-attached where it left off.
    assert any("last-event-id" in headers for headers in requests.attaches()[1:])
    assert_each_event_once(page)


def test_a_message_typed_offline_is_sent_once_when_back(context: BrowserContext, gateway: ChatGateway) -> None:
    page, requests = open_chat(context, gateway.url)
    send(page, "What are your opening hours?")
    wait_answered(page, 2)
    context.set_offline(True)
    send(page, "Where is my order 42?")
    bubble = page.locator(".sf-log .sf-user").last
    expect(bubble.locator(".sf-meta")).to_have_text("Waiting for the network…")
    # The network flaps before it comes back for good: still one delivery.
    context.set_offline(False)
    context.set_offline(True)
    time.sleep(0.5)
    assert len(gateway.admin.turns()) <= 2
    context.set_offline(False)
    wait_answered(page, 3)
    assert agent_texts(page)[-1] == "Order 42 is ready for pickup."
    turns = [t["text"] for t in gateway.admin.turns()]
    assert turns == ["What are your opening hours?", "Where is my order 42?"]
    ids = {p["id"] for p in requests.posts() if p["text"] == "Where is my order 42?"}
    assert len(ids) == 1
    expect(bubble.locator(".sf-meta")).to_be_empty()
    assert_each_event_once(page)


def test_a_message_whose_answer_was_lost_is_retried_with_its_id(
    context: BrowserContext, slow: ChatGateway, proxy: CutProxy
) -> None:
    page, requests = open_chat(context, proxy.url)
    send(page, "first")
    wait_answered(page, 2)
    slow_down_next_turn(slow)
    send(page, "once only")
    # The POST reached the gateway (the turn is being answered) when the connection dies.
    deadline = time.monotonic() + 10
    while len(slow.admin.turns()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Cut, and refuse new connections for a while: the browser's own silent retry fails too, so the
    # chat has to send the message again itself.
    proxy.refuse = True
    proxy.cut()
    expect(page.locator(".sf-log .sf-user").last).to_have_attribute("data-state", "waiting")
    proxy.refuse = False
    wait_answered(page, 3)
    assert [t["text"] for t in slow.admin.turns()] == ["first", "once only"]
    posts = [p for p in requests.posts() if p["text"] == "once only"]
    assert len(posts) >= 2
    assert len({p["id"] for p in posts}) == 1
    assert user_texts(page) == ["first", "once only"]


def test_an_expired_session_is_resumed_with_a_quiet_notice(context: BrowserContext, gateway: ChatGateway) -> None:
    page, _ = open_chat(context, gateway.url)
    send(page, "my name is Ada")
    wait_answered(page, 2)
    (session,) = gateway.admin.sessions()
    gateway.admin.expire(session["sessionId"])
    send(page, "What are your opening hours?")
    wait_answered(page, 3)
    notice = page.locator(".sf-log .sf-notice-quiet")
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("Reconnected")
    assert agent_texts(page)[-1].startswith("We're open Tuesday to Saturday")
    assert len(gateway.admin.sessions()) == 2
    assert [t["text"] for t in gateway.admin.turns()] == ["my name is Ada", "What are your opening hours?"]


def test_the_token_is_refreshed_before_it_expires(context: BrowserContext, gateway: ChatGateway) -> None:
    grant = gateway.mint(ttl=4)
    expires = jwt.decode(grant["token"], options={"verify_signature": False})["exp"]
    page, requests = open_chat(context, f"{gateway.url}/#token={grant['token']}")
    assert "token=" not in page.url, "the token left the address bar"
    send(page, "What are your opening hours?")
    wait_answered(page, 2)
    time.sleep(max(0.0, expires + 0.25 - time.time()))  # past the first token's expiry (whole seconds)
    send(page, "Is there a warranty?")
    wait_answered(page, 3)
    refreshes = [r for r in requests.items if r.url.endswith("/v1/tokens/refresh")]
    assert refreshes, "the chat refreshed its token"
    assert page.locator(".sf-status").get_attribute("data-state") == "online"


def test_a_reload_shows_the_conversation_again_once(context: BrowserContext, gateway: ChatGateway) -> None:
    page, _ = open_chat(context, gateway.url)
    send(page, "What are your opening hours?")
    wait_answered(page, 2)
    send(page, "Where is my order 42?")
    wait_answered(page, 3)
    before = (agent_texts(page), user_texts(page))
    conversation = page.locator(".sf-chat").get_attribute("data-conversation")
    page.reload()
    wait_online(page)
    wait_answered(page, 3)
    assert (agent_texts(page), user_texts(page)) == before
    assert page.locator(".sf-chat").get_attribute("data-conversation") == conversation
