"""The one redaction point: what sessionforce scrubs from every error it builds.

Two kinds of secret are scrubbed. Values the library knows (the client secret, every access token a
token provider fetched or was given, store passwords) are registered with :func:`remember_secret` and
replaced wherever they appear. Values it cannot know (a token from another process, a password in a
URL someone typed) are found by shape: URL passwords (``scheme://user:PASSWORD@host``), ``Bearer``
credentials, and ``client_secret=`` / ``"access_token": "..."`` / ``password=`` assignments.

:class:`~sessionforce.errors.SessionforceError` runs :func:`scrub` over its message, its raw body and
every other text it carries when it is built, so no error can hold a known secret, whoever built it.
Nothing here runs on the success path: only when an error is made.
"""

from __future__ import annotations

import re
import threading

__all__ = ["REDACTED", "redact_url", "remember_secret", "scrub", "scrub_body"]

REDACTED = "[REDACTED]"
_MIN_LENGTH = 8
"""Shorter values are not registered: they would scrub ordinary words out of messages."""
_KEEP = 64
"""How many known secrets are kept (the newest): tokens are refreshed for as long as a process runs."""

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_secret_bytes: tuple[bytes, ...] = ()

# scheme://user:PASSWORD@host (also without a scheme, ``//:PASSWORD@host``); greedy up to the last "@"
# of the token, so a password holding "@" or "/" is still covered (at worst a little more is hidden).
_URL_PASSWORD = re.compile(r"(?P<head>(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//[^\s/@:'\"]*:)[^\s'\"]*@")
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[^\s'\",;]+")
_ASSIGNED = re.compile(
    r"(?P<head>\b(?:client_secret|access_token|refresh_token|password)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;}]+",
    re.IGNORECASE,
)


def remember_secret(value: str | None) -> None:
    """Register a value that must never appear in an error (a token, a client secret, a password)."""
    global _secrets, _secret_bytes
    if not value or len(value) < _MIN_LENGTH or value in _secrets:
        return
    with _lock:
        if value not in _secrets:
            _secrets = (*_secrets[-(_KEEP - 1):], value)
            _secret_bytes = tuple(s.encode("utf-8", "surrogatepass") for s in _secrets)


def scrub(text: str) -> str:
    """``text`` with every known secret, URL password, ``Bearer`` credential and secret assignment
    replaced by ``[REDACTED]`` (``***`` for URL passwords, so the URL stays readable)."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "//" in text:
        text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    if "Bearer" in text:
        text = _BEARER.sub(r"\g<head>" + REDACTED, text)
    return _ASSIGNED.sub(r"\g<head>" + REDACTED, text)


def scrub_body(body: bytes | str | None) -> bytes | str | None:
    """A raw body with the same redactions as :func:`scrub`, kept as bytes when it came as bytes."""
    if body is None or isinstance(body, str):
        return None if body is None else scrub(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        for secret in _secret_bytes:
            body = body.replace(secret, REDACTED.encode())
        return body
    cleaned = scrub(text)
    return body if cleaned == text else cleaned.encode("utf-8", "surrogatepass")


def redact_url(url: str) -> str:
    """``url`` with its password (and any ``password=`` query value) replaced by ``***``; never raises,
    however malformed the URL (for the messages about a URL that could not be used)."""
    if not isinstance(url, str):
        return "<not a string>"
    head, sep, rest = url.partition("//")
    if not sep:
        head, rest = "", url
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        if colon:
            rest = f"{user}:***{rest[at:]}"
    url = f"{head}{sep}{rest}"
    return re.sub(r"(?i)([?&](?:password|secret|token)=)[^&#]*", r"\1***", url)
