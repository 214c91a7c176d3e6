"""The chat page in a real Chromium against a real gateway on the emulator's demo agent: a whole
conversation (streaming, every kind of reply), phone and dark screens, reduced motion, keyboard only,
and what a screen reader is told."""

from __future__ import annotations

from tests.webchat.requirements import require_browser

require_browser()

import json  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from playwright.sync_api import BrowserContext, Page, Route, expect  # noqa: E402

from tests.webchat.gateway import ChatGateway  # noqa: E402
from tests.webchat.support import (  # noqa: E402
    AGENT_TEXTS,
    RECORDER,
    agent_texts,
    recorded,
    send,
    user_texts,
    wait_answered,
    wait_online,
)


def open_chat(context: BrowserContext, gateway: ChatGateway, fragment: str = "") -> Page:
    context.add_init_script(RECORDER)
    page = context.new_page()
    page.goto(gateway.url + "/" + fragment)
    wait_online(page)
    return page


def test_a_whole_conversation_streams_and_renders_every_kind_of_reply(
    context: BrowserContext, gateway: ChatGateway, artifacts: Path
) -> None:
    page = open_chat(context, gateway, "#title=Cog%20%26%20Chain%20Bikes&accent=%230b6e4f")
    expect(page.locator(".sf-title")).to_have_text("Cog & Chain Bikes")
    send(page, "What are your opening hours?")
    wait_answered(page, 2)  # the greeting, then the answer
    texts = agent_texts(page)
    assert texts[0].startswith("Hi, I'm the Cog & Chain Bikes assistant.")
    assert texts[1] == "We're open Tuesday to Saturday, 9:00 to 18:00, and closed on Sundays and Mondays."

    # Streamed: the text arrived in chunks shown as they came, then the final message replaced them.
    events = recorded(page)["events"]
    kinds = [e["type"] for e in events]
    assert "agent.progress" in kinds
    chunks = [e for e in events if e["type"] == "agent.text_chunk"]
    assert len(chunks) >= 2
    drafts = [c["draft"] for c in chunks]
    assert all(drafts), "every chunk was shown in the streaming bubble"
    assert len(drafts[-1]) > len(drafts[0]), "the streaming bubble grew chunk by chunk"
    assert kinds.index("agent.message") > kinds.index("agent.text_chunk")
    assert kinds[-1] == "turn.end"
    expect(page.locator(".sf-draft")).to_have_count(0)
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)), "each event applied once, in order"

    # An action result, shown as a card.
    send(page, "Where is my order 42?")
    wait_answered(page, 3)
    card = page.locator(".sf-log .sf-result").last
    expect(card).to_contain_text("GetOrderStatus")
    expect(card).to_contain_text("Ready for pickup")

    # Citations, as links that open elsewhere without access to this page.
    send(page, "Is there a warranty?")
    wait_answered(page, 4)
    link = page.locator(".sf-log .sf-cites a").last
    expect(link).to_have_attribute("href", "https://cogandchain.example/policies/warranty")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(link).to_have_text("Every repair carries a 90-day warranty")

    # Inquire answered from the composer, Confirm answered by a click: both are Reply turns.
    send(page, "I'd like to book a repair")
    wait_answered(page, 5)
    assert agent_texts(page)[-1] == "Sure. Which date would you like to bring your bike in?"
    expect(page.locator("#sf-input")).to_have_attribute("placeholder", "Write your answer…")
    send(page, "next Friday")
    wait_answered(page, 6)
    assert agent_texts(page)[-1] == "Shall I book a repair slot on next Friday?"
    yes = page.locator(".sf-log .sf-choices button", has_text="Yes")
    page.screenshot(path=str(artifacts / "desktop-confirm.png"), animations="disabled")
    yes.click()
    wait_answered(page, 7)
    assert agent_texts(page)[-1].startswith("Booked: your repair is on next Friday (booking RPR-")
    expect(yes).to_be_disabled()
    expect(yes).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".sf-log .sf-result").last).to_contain_text("Booked")
    turns = gateway.admin.turns()
    answers = {t["text"]: t["type"] for t in turns}
    assert answers["next Friday"] == "Reply"
    assert answers["Yes"] == "Reply"

    # Escalation: a notice, and the chat goes on.
    send(page, "Can I talk to a human?")
    expect(page.locator(".sf-log .sf-notice-escalate")).to_have_count(1)
    wait_answered(page, 8)
    page.screenshot(path=str(artifacts / "desktop.png"), animations="disabled")

    # The agent ends the session: a notice, and no more input.
    send(page, "goodbye")
    expect(page.locator(".sf-log .sf-notice-ended")).to_have_count(1)
    expect(page.locator("#sf-input")).to_be_disabled()
    expect(page.get_by_role("button", name="Start a new chat")).to_be_visible()

    # However long the chat, the page itself never scrolls: only the message list does.
    assert page.evaluate("() => document.documentElement.scrollHeight") == 760
    # Every user message shown once, every turn reached the agent once.
    assert user_texts(page) == [
        "What are your opening hours?", "Where is my order 42?", "Is there a warranty?",
        "I'd like to book a repair", "next Friday", "Yes", "Can I talk to a human?", "goodbye",
    ]
    assert [t["text"] for t in gateway.admin.turns()] == user_texts(page)


def test_a_phone_sized_screen(new_context: Callable[..., BrowserContext], gateway: ChatGateway,
                              artifacts: Path) -> None:
    context = new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                          has_touch=True)
    page = open_chat(context, gateway)
    for n, text in enumerate(["Where is my order 42?", "Is there a warranty?", "book a repair"], start=2):
        send(page, text)
        wait_answered(page, n)
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], "nothing sticks out sideways"
    chat = page.locator(".sf-chat").bounding_box()
    assert chat is not None
    assert chat["width"] == 390, "the chat takes the whole width"
    composer = page.locator(".sf-composer").bounding_box()
    assert composer is not None
    assert composer["y"] + composer["height"] <= 844, "the composer is on screen"
    font = page.locator("#sf-input").evaluate("el => getComputedStyle(el).fontSize")
    assert font == "16px", "16 px input text: phones do not zoom into the field"
    for bubble in page.locator(".sf-log .sf-bubble").all():
        box = bubble.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 390
    page.screenshot(path=str(artifacts / "phone.png"), animations="disabled")


def test_dark_mode_and_reduced_motion(new_context: Callable[..., BrowserContext], gateway: ChatGateway,
                                      artifacts: Path) -> None:
    context = new_context(color_scheme="dark", reduced_motion="reduce")
    page = open_chat(context, gateway)
    send(page, "Where is my order 42?")
    wait_answered(page, 2)
    send(page, "Is there a warranty?")
    wait_answered(page, 3)
    background = page.locator(".sf-chat").evaluate("el => getComputedStyle(el).backgroundColor")
    red, green, blue = (int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3])
    assert max(red, green, blue) < 60, f"a dark surface, got {background}"
    text = page.locator(".sf-log .sf-agent .sf-text").first.evaluate("el => getComputedStyle(el).color")
    assert min(int(v) for v in text[text.index("(") + 1 : -1].split(",")[:3]) > 180, f"light text, got {text}"
    page.screenshot(path=str(artifacts / "dark.png"), animations="disabled")
    # Reduced motion: nothing animates (the typing dots, new messages sliding in).
    send(page, "What are your opening hours?")
    animations = page.evaluate(
        "() => [...document.querySelectorAll('.sf-dots span, .sf-log > li')]"
        ".map(el => getComputedStyle(el).animationName)"
    )
    assert animations
    assert set(animations) == {"none"}
    wait_answered(page, 4)


def test_keyboard_only(context: BrowserContext, gateway: ChatGateway) -> None:
    page = open_chat(context, gateway)
    # The composer has the focus from the start: type and press Enter.
    page.keyboard.type("book a repair")
    page.keyboard.press("Enter")
    wait_answered(page, 2)
    page.keyboard.type("Saturday")
    page.keyboard.press("Enter")
    wait_answered(page, 3)
    # Shift+Tab walks back from the composer to the Confirm buttons (No, then Yes).
    page.keyboard.press("Shift+Tab")
    focused = page.evaluate("() => document.activeElement.textContent")
    assert focused == "No"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Yes"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused button shows where the focus is"
    page.keyboard.press("Enter")
    wait_answered(page, 4)
    assert agent_texts(page)[-1].startswith("Booked: your repair is on Saturday")
    # Shift+Enter writes a new line; Enter sends.
    page.locator("#sf-input").focus()
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    page.keyboard.press("Enter")
    wait_answered(page, 5)
    assert user_texts(page)[-1] == "first line\nsecond line"
    # Tab reaches every control in order: header buttons, then the composer.
    page.locator(".sf-restart").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "End chat"


def test_what_a_screen_reader_is_told(context: BrowserContext, gateway: ChatGateway) -> None:
    page = open_chat(context, gateway)
    log = page.get_by_role("log")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(page.get_by_role("status")).to_have_text("Online")
    expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    send(page, "What are your opening hours?")
    wait_answered(page, 2)
    # Streaming bubbles stay out of the live log: the final message is added to it once, with who spoke.
    assert page.locator(".sf-drafts").get_attribute("aria-hidden") == "true"
    expect(log.locator("li.sf-agent")).to_have_count(2)
    expect(log.locator("li.sf-agent").last).to_contain_text("Assistant: We're open Tuesday to Saturday")
    expect(log.locator("li.sf-user").last).to_contain_text("You: What are your opening hours?")


def _frames(*events: tuple[int, str, dict[str, object]]) -> str:
    return "".join(f"id: {i}\nevent: {kind}\ndata: {json.dumps(data)}\n\n" for i, kind, data in events)


def test_a_validation_failure_discards_the_streamed_text(context: BrowserContext, gateway: ChatGateway) -> None:
    """The emulator never fails validation, so the gateway's events stream is replaced for this page by a
    turn that does (the wire format of the contract), with one event delivered twice."""
    turn = _frames(
        (1, "session.started", {"session_id": "s", "resumed": False, "reason": None,
                                "greeting": [{"type": "Inform", "id": "g1", "message": "Hello."}]}),
        (2, "user.message", {"message_id": "m1", "text": "tell me", "type": "Text"}),
        (3, "agent.progress", {"message": "Working on it", "indicator": "ACTION"}),
        (4, "agent.text_chunk", {"message_id": "a1", "offset": 0, "text": "UNCHECKED "}),
        (5, "agent.text_chunk", {"message_id": "a1", "offset": 10, "text": "draft"}),
        (6, "agent.validation_failure", {"offset": 15, "reason": "content check"}),
        (7, "agent.message", {"message": {"type": "Inform", "id": "a1", "message": "The checked answer."}}),
        (7, "agent.message", {"message": {"type": "Inform", "id": "a1", "message": "The checked answer."}}),
        (8, "turn.end", {"message_id": "m1", "awaiting": "message", "resumed": False}),
    )
    served: list[str] = []

    def events(route: Route) -> None:
        served.append(route.request.headers.get("last-event-id", ""))
        body = "retry: 1000\n\n" + (turn if len(served) == 1 else "")
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    context.route("**/v1/conversations/*/events*", events)
    context.add_init_script(RECORDER)
    page = context.new_page()
    page.goto(gateway.url + "/")  # (each canned stream ends at once: the status never settles "online")
    expect(page.locator(AGENT_TEXTS)).to_have_count(2)
    assert agent_texts(page) == ["Hello.", "The checked answer."]
    log = {e["id"]: e for e in recorded(page)["events"]}
    assert sorted(log) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert log[5]["draft"].strip() == "UNCHECKED draft", "the chunks were shown while they streamed"
    assert log[6]["draft"] is None, "the validation failure took them away"
    assert "UNCHECKED" not in page.locator(".sf-chat").inner_text()
    expect(page.locator(".sf-typing")).to_be_hidden()
    for _ in range(50):
        if len(served) > 1:
            break
        page.wait_for_timeout(100)
    assert served[1] == "8", "the stream re-attached after the last event it saw"


def test_feedback_ending_and_a_new_chat(context: BrowserContext, gateway: ChatGateway) -> None:
    page = open_chat(context, gateway)
    send(page, "What are your opening hours?")
    wait_answered(page, 2)
    helpful = page.get_by_role("button", name="Helpful").last
    helpful.click()
    expect(helpful).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("button", name="Not helpful").last).to_be_disabled()
    page.wait_for_timeout(300)
    assert gateway.admin.requests("feedback", 201) == 1, "the rating reached the agent"

    first = page.locator(".sf-chat").get_attribute("data-conversation")
    page.get_by_role("button", name="End chat").click()
    expect(page.locator(".sf-log .sf-notice-ended")).to_have_text("You ended the conversation.")
    expect(page.locator("#sf-input")).to_be_disabled()
    assert gateway.admin.requests("end_session", 200) == 1
    page.get_by_role("button", name="Start a new chat").click()
    expect(page.locator(".sf-chat")).not_to_have_attribute("data-conversation", first or "")
    expect(page.locator(AGENT_TEXTS)).to_have_count(1)  # the new conversation's greeting, before any message
    expect(page.locator("#sf-input")).to_be_enabled()
    assert user_texts(page) == []
