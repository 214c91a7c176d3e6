"""What the browser tests need: Playwright's Python package and Debian's Chromium. Outside CI a missing
piece skips them with the reason; in CI (CI=true) it fails them, because CI must run them."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

CHROMIUM = os.environ.get("SESSIONFORCE_CHROMIUM", "/usr/bin/chromium")

#: As the machine's own probe starts it: no sandbox as root, and none of the background traffic that
#: this closed network would refuse.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SESSIONFORCE_CHROMIUM)"
    return None


def require_browser() -> None:
    """Call at the top of a browser test module, before importing playwright."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests must run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}", allow_module_level=True)
