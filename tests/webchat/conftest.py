"""Fixtures for the browser tests: one Chromium per test session, a fresh browser context per test, and a
real gateway (uvicorn on a free loopback port) on the built-in emulator."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.webchat.gateway import ChatGateway, run_gateway
from tests.webchat.requirements import CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

ROOT = Path(__file__).resolve().parents[2]

# Console messages a page may log without anything being wrong: the browser's own note that a request
# failed while the test had cut the network.
_EXPECTED_CONSOLE = re.compile(r"Failed to load resource|net::ERR_|ERR_INTERNET_DISCONNECTED|ERR_CONNECTION")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (not committed): $SESSIONFORCE_ARTIFACTS or tmp/artifacts, then webchat/."""
    base = Path(os.environ.get("SESSIONFORCE_ARTIFACTS", ROOT / "tmp" / "artifacts"))
    path = base / "webchat"
    path.mkdir(parents=True, exist_ok=True)
    return path


# Module-scoped, not session-scoped: Playwright's sync API runs an event loop in the main thread while it is
# open, and a worker process (pytest-xdist) that later runs an async test would find that loop running.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium (Playwright's own browser download cannot work here). Playwright gives each
    launch a fresh, empty user-data directory."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
    yield b
    b.close()


class PageProblems:
    """JavaScript errors and unexpected console errors of every page a test opened: none allowed."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda exc: self.items.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: self.items.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and not _EXPECTED_CONSOLE.search(msg.text)
            else None,
        )
        return page


@pytest.fixture
def new_context(
    browser: Browser, start_gateway: Callable[..., ChatGateway]
) -> Iterator[Callable[..., BrowserContext]]:
    """Makes browser contexts (closed after the test, before its gateways stop: no stream keeps them
    waiting); every page they open is watched for errors."""
    contexts: list[BrowserContext] = []
    problems = PageProblems()

    def make(**options: Any) -> BrowserContext:
        options.setdefault("viewport", {"width": 1100, "height": 760})
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        context.on("page", problems.watch)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert not problems.items, "the page reported problems:\n" + "\n".join(problems.items)


@pytest.fixture
def context(new_context: Callable[..., BrowserContext]) -> BrowserContext:
    return new_context()


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., ChatGateway]]:
    """Starts a gateway on its own emulator (stopped after the test); keyword arguments go to
    :func:`run_gateway` (e.g. ``agents=[...]`` for a scripted agent)."""
    running: list[Any] = []

    def start(**options: Any) -> ChatGateway:
        manager = run_gateway(**options)
        gateway = manager.__enter__()
        running.append(manager)
        return gateway

    yield start
    for manager in reversed(running):
        manager.__exit__(None, None, None)


@pytest.fixture
def gateway(start_gateway: Callable[..., ChatGateway]) -> ChatGateway:
    """A gateway on the emulator's demo agent."""
    return start_gateway()
