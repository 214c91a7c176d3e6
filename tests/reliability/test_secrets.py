"""Secrets never leak: a full chat with DEBUG logging on, then every log record (with its ``extra``
fields), every transcript line and the text of every exception is scanned for the client secret and
every access token the client used. Zero hits."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator

import pytest

from sessionforce import AsyncAgentClient, Conversations
from sessionforce.emulator import run_emulator
from sessionforce.errors import SessionforceError
from sessionforce.store import MemoryStore
from tests.support import Admin, client_kwargs


class Everything(logging.Handler):
    """Keeps each record formatted with its message, its exception and every attribute (``extra`` too)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{text} {record.__dict__!r}")


@pytest.fixture
def captured() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


async def test_no_secret_or_token_in_logs_transcripts_or_errors(captured: Everything) -> None:
    secret = f"cs-{uuid.uuid4().hex}"
    texts: list[str] = []
    tokens: set[str] = set()
    with run_emulator(client_secret=secret) as emu:
        admin = Admin(emu.url)
        kwargs = client_kwargs(emu)
        async with AsyncAgentClient(**kwargs) as client:
            provider = client.transport.token_provider
            texts += [repr(client), repr(provider), repr(client.settings), str(client.settings)]

            async def remember_token() -> None:
                tokens.add((await provider.get_token(client.transport.post_form)).value)

            async with Conversations(client, store=MemoryStore()).get("secrets") as conversation:
                await conversation.send("my name is Ada")
                await remember_token()
                admin.expire_tokens()  # the next turn refreshes the token after a 401
                await conversation.send("what is my name?")
                await remember_token()
                async with conversation.stream("what are your opening hours?") as stream:
                    await stream.final_reply()
                # Errors, each with the token and the secret in play: 503 exhausted, a cut answer, a dropped stream.
                for rules in ([{"route": "send_message", "status": 503}],
                              [{"route": "send_message", "reset": "after"}],
                              [{"route": "stream_message", "drop_after_chunks": 1}]):
                    admin.faults(*rules)
                    try:
                        if rules[0]["route"] == "stream_message":
                            async with conversation.stream("tell me about bikes") as stream:
                                await stream.final_reply()
                        else:
                            await conversation.send("is anyone there?")
                    except SessionforceError as exc:
                        texts += [str(exc), repr(exc), repr(exc.__cause__), repr(getattr(exc, "body", None))]
                    else:
                        pytest.fail(f"{rules} raised nothing")
                admin.faults()
                buffer = io.StringIO()
                await conversation.export_jsonl(buffer)
                texts.append(buffer.getvalue())
        # A wrong secret: the AuthError must not echo what was sent either.
        wrong = f"wrong-{uuid.uuid4().hex}"
        async with AsyncAgentClient(**{**kwargs, "client_secret": wrong}) as bad:
            with pytest.raises(SessionforceError) as info:
                await bad.start_session()
            texts += [str(info.value), repr(info.value), repr(getattr(info.value, "body", None))]
        admin.http.close()
    assert len(tokens) == 2, "the token was not refreshed during the chat"
    haystack = [*captured.lines, *texts]
    assert any("sessionforce" in line for line in captured.lines), "debug logging captured nothing"
    for needle in (secret, wrong, *tokens):
        hits = [line for line in haystack if needle in line]
        assert not hits, f"{needle[:6]}... leaked in: {hits[:3]}"
