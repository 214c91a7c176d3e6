"""Agent text is untrusted: a reply carrying markup that would run script shows as text and runs nothing,
with and without the page's Content-Security-Policy (the sanitiser must hold on its own). Two tabs on
two conversations never see each other's messages."""

from __future__ import annotations

from tests.webchat.requirements import require_browser

require_browser()

from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from playwright.sync_api import BrowserContext, Dialog, expect  # noqa: E402

from tests.webchat.gateway import ChatGateway  # noqa: E402
from tests.webchat.support import RECORDER, agent_texts, recorded, send, user_texts, wait_answered, wait_online  # noqa: E402

PWN = "window.__sf.pwned.push"
PAYLOAD = (
    f"Hello <img src=x onerror=\"{PWN}('img')\"> and <script>{PWN}('script')</script>\n\n"
    f"[click me](javascript:{PWN}('link')) "
    f"<a href=\"javascript:{PWN}('raw-link')\">raw link</a> "
    f"<svg onload=\"{PWN}('svg')\"></svg> <iframe src=\"javascript:{PWN}('iframe')\"></iframe>\n\n"
    f"![pic](javascript:{PWN}('image')) [data](data:text/html,<script>{PWN}('data')</script>) "
    f"<details open ontoggle=\"{PWN}('toggle')\">x</details> **bold** stays bold"
)

HOSTILE_AGENT: dict[str, Any] = {
    "name": "Hostile Bot",
    "greeting": f"Welcome <img src=x onerror=\"{PWN}('greeting')\">",
    "topics": [
        {"name": "payload", "keywords": ["payload"], "steps": [{"inform": {
            "message": PAYLOAD,
            "citations": [{"type": "link", "value": f"javascript:{PWN}('citation')",
                           "inlineMetadata": [{"claim": "<b onmouseover=x>claim</b>", "location": "x"}]}],
        }}]},
        {"name": "action", "keywords": ["action"], "steps": [{"action": {
            "name": "<img src=x onerror=alert(1)>",
            "result": {"html": f"<img src=x onerror=\"{PWN}('result')\">"},
            "message": "Done.",
        }}]},
    ],
}


@pytest.mark.parametrize("csp", ["page CSP on", "CSP bypassed"])
def test_an_agent_reply_with_script_executes_nothing(
    new_context: Callable[..., BrowserContext], start_gateway: Callable[..., ChatGateway], csp: str
) -> None:
    gateway = start_gateway(agents=[HOSTILE_AGENT])
    context = new_context(bypass_csp=csp == "CSP bypassed")
    context.add_init_script(RECORDER)
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(gateway.url + "/")
    wait_online(page)
    send(page, "payload please")
    wait_answered(page, 2)
    send(page, "action please")
    wait_answered(page, 3)

    # Click every link the agent's text produced (all of them point nowhere after sanitising: the test
    # must never open an address off this machine): none may run script or navigate this page away.
    links = page.locator(".sf-log .sf-agent a").all()
    assert links
    assert all(link.get_attribute("href") is None for link in links)
    for link in links:
        link.click()
    page.wait_for_timeout(300)

    assert recorded(page)["pwned"] == [], "agent text ran script"
    assert dialogs == []
    log = page.locator(".sf-log")
    for tag in ("script", "img", "svg", "iframe", "details", "object", "embed", "style"):
        expect(log.locator(f".sf-bubble {tag}")).to_have_count(0)
    handlers = page.evaluate(
        "() => [...document.querySelectorAll('.sf-log *')].flatMap(el => [...el.attributes]"
        ".filter(a => a.name.startsWith('on') || /^\\s*(javascript|data):/i.test(a.value)).map(a => a.name))"
    )
    assert handlers == []
    # The markup is shown as the text it is, and ordinary markdown still works.
    reply = agent_texts(page)[1]
    assert "<script>" in reply
    assert "onerror" in reply
    expect(log.locator(".sf-agent strong", has_text="bold")).to_have_count(1)
    expect(log.locator(".sf-cites a")).to_have_count(0)  # a javascript: citation is not a link
    expect(log.locator(".sf-result-name").first).to_have_text("<img src=x onerror=alert(1)>")
    assert page.url.startswith(gateway.url)


def test_two_tabs_on_two_conversations_never_see_each_other(context: BrowserContext, gateway: ChatGateway) -> None:
    context.add_init_script(RECORDER)
    first, second = context.new_page(), context.new_page()
    for page in (first, second):
        page.goto(gateway.url + "/")
        wait_online(page)
    a = first.locator(".sf-chat").get_attribute("data-conversation")
    b = second.locator(".sf-chat").get_attribute("data-conversation")
    assert a
    assert b
    assert a != b
    # Both talk at the same time.
    send(first, "my name is Alice")
    send(second, "my name is Bob")
    wait_answered(first, 2)
    wait_answered(second, 2)
    send(first, "what is my name?")
    send(second, "Where is my order 7?")
    wait_answered(first, 3)
    wait_answered(second, 3)
    assert user_texts(first) == ["my name is Alice", "what is my name?"]
    assert user_texts(second) == ["my name is Bob", "Where is my order 7?"]
    assert agent_texts(first)[1:] == ["Nice to meet you, Alice!", "Your name is Alice."]
    assert agent_texts(second)[1:] == ["Nice to meet you, Bob!", "Order 7 is ready for pickup."]
    for page, other in ((first, "Bob"), (second, "Alice")):
        assert other not in page.locator(".sf-chat").inner_text()
        texts = [str(e) for e in recorded(page)["events"]]
        assert not any(other in t for t in texts)
