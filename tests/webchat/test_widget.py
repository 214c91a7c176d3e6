"""The widget on someone else's site: one script tag, the site's own token endpoint, and a stylesheet
that tries hard to break everything on the page. The widget still renders, opens, chats, and keeps its
conversation across a reload."""

from __future__ import annotations

from tests.webchat.requirements import require_browser

require_browser()

import re  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from playwright.sync_api import BrowserContext, FrameLocator, Page, expect  # noqa: E402

from tests.webchat.gateway import ChatGateway  # noqa: E402
from tests.webchat.support import HostSite  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

HOSTILE_CSS = """
* { font: italic 40px/0.6 "Comic Sans MS", cursive !important; color: #f0f !important;
    background: #ff0 !important; margin: 13px !important; padding: 9px !important;
    border: 4px dashed red !important; box-sizing: content-box !important; letter-spacing: 6px !important; }
body > *:not(h1):not(p), div, button, iframe, span, svg, sessionforce-chat {
    display: none !important; visibility: hidden !important; opacity: 0 !important; width: 0 !important;
    height: 0 !important; transform: scale(0) !important; pointer-events: none !important;
    position: static !important; z-index: -1 !important; }
iframe { border: 30px solid red !important; }
:root { --sf-accent: red !important; }
"""


def documented_tag(gateway: ChatGateway) -> str:
    """The script tag of docs/webchat.md, as a site would paste it, pointed at this gateway."""
    doc = (ROOT / "docs" / "webchat.md").read_text(encoding="utf-8")
    (tag,) = re.findall(r"```html\n(.*?)```", doc, re.DOTALL)
    assert 'data-title="Help"' in tag  # what the assertions below expect
    assert 'data-accent="#0b5cab"' in tag
    return tag.replace("https://chat.example.com", gateway.url)


def host_page(gateway: ChatGateway) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme Bikes</title><style>{HOSTILE_CSS}</style></head>
<body><h1>Acme Bikes</h1><p>Welcome to our shop.</p>
{documented_tag(gateway)}</body></html>"""


@pytest.fixture
def site(gateway: ChatGateway) -> Iterator[HostSite]:
    host = HostSite(host_page(gateway), lambda conversation: gateway.mint([conversation] if conversation else None))
    yield host
    host.close()


def chat_frame(page: Page) -> FrameLocator:
    return page.frame_locator("sessionforce-chat iframe")


def send_in(frame: FrameLocator, text: str, answers: int) -> None:
    frame.locator("#sf-input").fill(text)
    frame.locator("#sf-input").press("Enter")
    expect(frame.locator(".sf-log .sf-agent .sf-text")).to_have_count(answers, timeout=20_000)
    expect(frame.locator(".sf-typing")).to_be_hidden()


def test_the_widget_renders_and_chats_under_hostile_css(context: BrowserContext, gateway: ChatGateway,
                                                        site: HostSite, artifacts: Path) -> None:
    page = context.new_page()
    page.goto(site.url + "/")
    launcher = page.get_by_role("button", name="Open chat: Help")
    expect(launcher).to_be_visible()
    box = launcher.bounding_box()
    assert box is not None
    assert (box["width"], box["height"]) == (56, 56)
    assert box["x"] + box["width"] == pytest.approx(1100 - 20)
    assert box["y"] + box["height"] == pytest.approx(760 - 20)
    assert launcher.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(11, 92, 171)"

    launcher.click()
    frame_box = page.locator("sessionforce-chat iframe").bounding_box()
    assert frame_box is not None
    assert frame_box["width"] == 380
    assert frame_box["height"] >= 600
    frame = chat_frame(page)
    expect(frame.locator(".sf-status")).to_have_attribute("data-state", "online")
    expect(frame.locator(".sf-title")).to_have_text("Help")
    expect(frame.locator("#sf-input")).to_be_focused()
    send_in(frame, "Where is my order 42?", 2)
    send_in(frame, "Is there a warranty?", 3)
    # The host's styles reached nothing inside: our font size, our accent, no dashed borders.
    text = frame.locator(".sf-log .sf-agent .sf-text").last
    assert text.evaluate("el => getComputedStyle(el).fontSize") == "15px"
    assert text.evaluate("el => getComputedStyle(el).fontStyle") == "normal"
    user = frame.locator(".sf-log .sf-user .sf-bubble").first
    assert user.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(11, 92, 171)"
    assert site.token_requests == [{"conversation": None}]
    page.screenshot(path=str(artifacts / "widget.png"), animations="disabled")

    # Closing gives the focus back to the launcher; the conversation outlives a reload of the site.
    frame.get_by_role("button", name="Close chat").click()
    expect(page.locator("sessionforce-chat iframe")).to_be_hidden()
    expect(page.get_by_role("button", name="Open chat: Help")).to_be_focused()
    conversation = frame.locator(".sf-chat").get_attribute("data-conversation")
    page.get_by_role("button", name="Open chat: Help").click()
    page.reload()
    frame = chat_frame(page)
    expect(frame.locator(".sf-log .sf-agent .sf-text")).to_have_count(3)
    assert frame.locator(".sf-chat").get_attribute("data-conversation") == conversation
    assert site.token_requests[-1] == {"conversation": conversation}
    assert [t.strip() for t in frame.locator(".sf-log .sf-user .sf-text").all_inner_texts()] == [
        "Where is my order 42?", "Is there a warranty?"]


def test_the_widget_fills_a_phone_screen(new_context: Callable[..., BrowserContext], site: HostSite) -> None:
    context = new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(site.url + "/")
    page.get_by_role("button", name="Open chat: Help").tap()
    frame = chat_frame(page)
    expect(frame.locator(".sf-status")).to_have_attribute("data-state", "online")
    box = page.locator("sessionforce-chat iframe").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
    send_in(frame, "What are your opening hours?", 2)
    frame.get_by_role("button", name="Close chat").tap()
    expect(page.get_by_role("button", name="Open chat: Help")).to_be_visible()
