"""Finding 4: secrets leak through error messages, transcripts and store URLs.

(a) aiohttp cannot parse an answer (a ``2OO`` status line, broken chunked encoding): the message carries
``repr(ClientResponseError)``, request headers and bearer token included, and the transcript (so
``sessions export``) keeps it. (b) A server echoing the token (or the client secret) in an error body puts
it in ``str(exc)``. (c) Malformed store URLs echo the Redis password, or escape as a raw ``ValueError``.
The client knows its token and secret: every message it builds, and every exception it hands over
(with its chain and raw body), must be free of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionforce.errors import ConfigError, SessionforceError
from tests.adversarial import _harness
from tests.adversarial._assertions import failure_of, outcome_within, stream_outcome
from tests.adversarial._canary import exception_texts, hits
from tests.adversarial._cli import CliRun
from tests.adversarial._hostile import (
    Behaviour,
    HostileServer,
    bad_chunked,
    bad_status_line,
    echo_secret,
    echo_token,
    sse_error_echo,
)

_ANSWERS: dict[str, Behaviour] = {
    "status-line-2OO": bad_status_line(),
    "broken-chunked-encoding": bad_chunked(),
    "500-echoing-the-token": echo_token(500),
    "400-echoing-the-token": echo_token(400),
    "401-echoing-the-token": echo_token(401),
    "sse-error-event-echoing-the-token": sse_error_echo(),
}


async def _turn_error(server: HostileServer, route: str) -> BaseException:
    async with _harness.client(server.url, retry=_harness.no_retries(),
                               timeouts=_harness.timeouts(read=5, stream_read=5)) as owner:
        session = await owner.start_session()
        if route == "send":
            outcome = await outcome_within(owner.send_message(session.session_id, "hello", sequence_id=1), 15,
                                           "a send to a hostile server")
        else:
            outcome = await stream_outcome(lambda: owner.stream_message(session.session_id, "hello", sequence_id=1),
                                           15, "a stream from a hostile server")
    return failure_of(outcome, f"a {route} answered by a hostile server")


@pytest.mark.parametrize("route", ["send", "stream"])
@pytest.mark.parametrize("answer", list(_ANSWERS))
async def test_a_hostile_answer_never_puts_the_token_in_the_error(
    hostile: HostileServer, route: str, answer: str
) -> None:
    hostile.script(route, _ANSWERS[answer])
    error = await _turn_error(hostile, route)
    assert hostile.wait_for(route).bearer == hostile.token, "the request did not carry the token"
    assert isinstance(error, SessionforceError), f"not our error: {type(error).__name__}: {error}"
    leaked = hits([hostile.token], exception_texts(error))
    assert not leaked, f"the bearer token leaked through {type(error).__name__}: {leaked[:2]}"


async def test_the_transcript_and_sessions_export_never_hold_the_token(
    hostile: HostileServer, tmp_path: Path, cli: CliRun
) -> None:
    db = tmp_path / "sessions.db"
    store = _harness.sqlite_store(db)
    hostile.script("send", bad_status_line())
    try:
        async with _harness.client(hostile.url, store=store, retry=_harness.no_retries()) as owner:
            conv = _harness.conversation(owner, "leaky")
            outcome = await outcome_within(conv.send("hello"), 15, "a turn answered with a 2OO status line")
            entries = [entry.to_json() for entry in await conv.transcript()]
    finally:
        await store.aclose()
    failure_of(outcome, "a turn answered with a 2OO status line")
    assert hostile.wait_for("send").bearer == hostile.token, "the request did not carry the token"
    assert any('"hello"' in entry for entry in entries), "the turn has no transcript entry to check"
    exported = cli.run("sessions", "export", "leaky", "--store", f"sqlite:///{db}")
    assert exported.returncode == 0, exported.stderr
    leaked = hits([hostile.token], [*entries, exported.stdout, exported.stderr])
    assert not leaked, f"the bearer token is in the transcript / export: {leaked[:2]}"


@pytest.mark.parametrize("status", [400, 401, 500])
async def test_a_token_endpoint_echoing_the_secret_never_puts_it_in_the_error(
    hostile: HostileServer, status: int
) -> None:
    secret = "cs-never-print-me-4b1d"
    hostile.script("token", echo_secret(status))
    async with _harness.client(hostile.url, secret=secret, retry=_harness.no_retries()) as owner:
        outcome = await outcome_within(owner.start_session(), 15, "a start whose token request is refused")
    error = failure_of(outcome, "a start whose token request is refused")
    assert hostile.requests[0].route == "token"
    assert secret in hostile.requests[0].body.decode(), "the planted secret was not sent"
    assert isinstance(error, SessionforceError), f"not our error: {type(error).__name__}: {error}"
    leaked = hits([secret], exception_texts(error))
    assert not leaked, f"the client secret leaked through {type(error).__name__}: {leaked[:2]}"


_PASSWORD = "pw-never-print-me-7c3e"


@pytest.mark.parametrize("url", [
    pytest.param(f"reddis://:{_PASSWORD}@127.0.0.1:6379/0", id="misspelt-scheme"),
    pytest.param(f"redis//:{_PASSWORD}@127.0.0.1:6379/0", id="no-scheme"),
    pytest.param(f"redis://:{_PASSWORD}@[::1/0", id="unclosed-ipv6-bracket"),
    pytest.param(f"sqlite://:{_PASSWORD}@db.example/sessions.db", id="sqlite-with-credentials"),
    pytest.param(f"redis://:{_PASSWORD}@127.0.0.1:99999999/0", id="port-out-of-range"),
    pytest.param(f"redis://:{_PASSWORD}@127.0.0.1:port/0", id="port-not-a-number"),
    pytest.param(f"redis://:{_PASSWORD}@127.0.0.1:6379/0?socket_timeout=abc", id="bad-query-value"),
])
def test_a_malformed_store_url_is_our_config_error_without_the_password(url: str) -> None:
    try:
        store = _harness.open_store(url)
    except Exception as exc:
        error: BaseException = exc
    else:
        raise AssertionError(f"{type(store).__name__} opened a malformed URL")
    if not isinstance(error, ConfigError):
        raise AssertionError(f"expected our ConfigError, got {type(error).__name__}: {error}")
    assert "store" in str(error).lower(), f"the message does not say it is about the store URL: {error}"
    leaked = hits([_PASSWORD], exception_texts(error))
    assert not leaked, f"the password leaked: {leaked[:2]}"
