"""Store URLs in messages and logs: one redaction point for every store (issue 11, finding 4c)."""

from __future__ import annotations

import re

__all__ = ["redact_text", "redact_url"]

# ``password=...`` in a query string or a libpq conninfo string (``password=secret`` or ``password='se cret'``).
_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, also when the URL is malformed.

    Takes the userinfo up to the *last* ``@`` (as URL parsers do), so a password holding ``@``, ``/`` or
    ``[`` is still hidden; on a malformed URL this may hide more than the password, never less. A
    ``password=`` query parameter (which libpq accepts) is hidden too.
    """
    head, sep, tail = url.partition("://")
    if sep:
        userinfo, at, rest = tail.rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            tail = f"{user}:***@{rest}"
        url = f"{head}{sep}{tail}"
    return _PASSWORD_PARAM.sub(r"\1***", url)


def redact_text(text: str, *secrets: str | None) -> str:
    """``text`` with each non-empty secret replaced by ``***`` (for a lower library's error message)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _PASSWORD_PARAM.sub(r"\1***", text)
