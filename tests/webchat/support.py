"""Helpers for the browser tests: a loopback TCP proxy that can cut connections, the host site that
embeds the widget (with its own token endpoint), and small waits on the chat's DOM."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from playwright.sync_api import Page, expect

# Records every event the chat applied (its `sessionforce:event`), with the streaming draft's text at
# that moment, and anything an injected payload would do (alert, a global flag).
RECORDER = """
window.__sf = { events: [], pwned: [] };
window.alert = (...a) => window.__sf.pwned.push(['alert', String(a[0])]);
document.addEventListener('sessionforce:event', (e) => {
  const draft = document.querySelector('.sf-draft .sf-bubble');
  window.__sf.events.push({ id: e.detail.id, type: e.detail.type, draft: draft ? draft.textContent : null });
});
"""


class CutProxy:
    """A TCP proxy on 127.0.0.1 in front of the gateway. ``cut()`` resets every open connection (what a
    dropped Wi-Fi or a restarted load balancer does to a stream); ``refuse`` closes new ones at once."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.refuse = False
        self.cuts = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="cut-proxy").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refuse:
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                self._forget(s)

    def _forget(self, s: socket.socket) -> None:
        with self._lock:
            self._open.discard(s)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()

    @staticmethod
    def _reset(s: socket.socket) -> None:
        # SO_LINGER 0: the connection ends with a reset, as a cut one does. shutdown() first: a bare close()
        # would neither wake the pump thread blocked in recv() nor end the connection while it waits.
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.shutdown(socket.SHUT_RDWR)
        s.close()

    def cut(self) -> None:
        """Reset every connection now open through the proxy."""
        self.cuts += 1
        with self._lock:
            victims = list(self._open)
            self._open.clear()
        for s in victims:
            with contextlib.suppress(OSError):
                self._reset(s)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut()


class HostSite:
    """Someone's website on its own origin: a page embedding the widget with one script tag (under
    hostile CSS), and the site's token endpoint, which mints end-user tokens through the gateway's
    ``POST /v1/tokens`` with the site's API key."""

    def __init__(self, page_html: str, mint: Callable[[str | None], dict[str, Any]]) -> None:
        self.token_requests: list[dict[str, Any]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/":
                    self._send(200, page_html.encode(), "text/html; charset=utf-8")
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self) -> None:
                if self.path != "/chat-token":
                    self._send(404, b"not found", "text/plain")
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                site.token_requests.append(body)
                grant = mint(body.get("conversation"))
                self._send(200, json.dumps(grant).encode(), "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="host-site").start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- the chat's DOM -----------------------------------------------------------------------------

AGENT_TEXTS = ".sf-log .sf-agent .sf-text"
PENDING = '.sf-user[data-state="queued"], .sf-user[data-state="sending"], .sf-user[data-state="waiting"]'


def wait_online(page: Page, timeout: float = 15_000) -> None:
    expect(page.locator(".sf-status")).to_have_attribute("data-state", "online", timeout=timeout)


def send(page: Page, text: str) -> None:
    page.locator("#sf-input").fill(text)
    page.locator("#sf-input").press("Enter")


def wait_answered(page: Page, agent_messages: int, timeout: float = 20_000) -> None:
    """Until the log holds `agent_messages` agent messages, nothing waits to be sent, no turn runs."""
    expect(page.locator(AGENT_TEXTS)).to_have_count(agent_messages, timeout=timeout)
    expect(page.locator(PENDING)).to_have_count(0, timeout=timeout)
    expect(page.locator(".sf-typing")).to_be_hidden(timeout=timeout)


def agent_texts(page: Page) -> list[str]:
    return [t.strip() for t in page.locator(AGENT_TEXTS).all_inner_texts()]


def user_texts(page: Page) -> list[str]:
    return [t.strip() for t in page.locator(".sf-log .sf-user .sf-text").all_inner_texts()]


def recorded(page: Page) -> dict[str, Any]:
    return page.evaluate("() => window.__sf")  # type: ignore[no-any-return]
