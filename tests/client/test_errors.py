"""The error builders and the one redaction point: each error's class, text and delivery truth, and no
secret in anything an error carries."""

from __future__ import annotations

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from sessionforce.agent_api._boundary import describe, map_exception, scrubbed
from sessionforce.agent_api._retry import Failure
from sessionforce.errors import (
    AuthError,
    BadRequest,
    ClientClosed,
    ConfigError,
    ConnectionFailed,
    Delivery,
    DeliveryUnknown,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProtocolError,
    RateLimited,
    ServerError,
    SessionforceError,
    SessionLocked,
    SessionNotFound,
    StreamInterrupted,
    error_from_status,
)
from sessionforce.errors._build import (
    conversation_busy,
    in_stream_error,
    lease_lost,
    protocol_error,
    session_locked,
    stale_record,
    store_unavailable,
    stream_interrupted,
)
from sessionforce.errors._redact import redact_url, remember_secret, scrub

NOT_SENT, MAYBE, ANSWERED = Delivery.NOT_SENT, Delivery.MAYBE_DELIVERED, Delivery.ANSWERED


@pytest.mark.parametrize(
    ("status", "on_session", "cls", "delivery"),
    [
        (400, True, BadRequest, NOT_SENT),
        (401, True, AuthError, NOT_SENT),
        (403, True, PermissionDenied, NOT_SENT),
        (404, False, NotFound, NOT_SENT),
        (404, True, SessionNotFound, NOT_SENT),
        (409, True, BadRequest, NOT_SENT),
        (423, True, SessionLocked, NOT_SENT),
        (429, True, RateLimited, NOT_SENT),
        (500, True, ServerError, MAYBE),  # the Agent API answers 500 to a call past 120 s: it may have run
        (502, True, ServerError, MAYBE),
        (503, True, ServerError, NOT_SENT),  # the request was refused
        (504, True, ServerError, MAYBE),
    ],
)
def test_status_errors_class_and_delivery(status: int, on_session: bool, cls: type, delivery: Delivery) -> None:
    error = error_from_status(status, "said the server", on_session=on_session, request_id="r-1", body=b"{}")
    assert type(error) is cls
    assert error.delivery is delivery
    assert error.status == status
    assert "said the server" in str(error)
    assert "request id r-1" in str(error)
    assert "What to do" in str(error)


def test_a_maybe_delivered_status_on_a_turn_says_do_not_resend_and_not_on_an_idempotent_call() -> None:
    assert "not resent" in str(error_from_status(500, None))
    assert "not resent" not in str(error_from_status(500, None, idempotent=True))


@pytest.mark.parametrize(
    ("error", "delivery"),
    [
        (InvalidArgument("x"), NOT_SENT),
        (ClientClosed("x"), NOT_SENT),
        (ConfigError("x"), None),
        (ConnectionFailed("x"), NOT_SENT),
        (DeliveryUnknown("x"), MAYBE),
        (protocol_error("garbage"), MAYBE),
        (stream_interrupted("s", 1, "cut", partial_text="Hel", messages=[]), MAYBE),
        (in_stream_error(500, "the turn failed", request_id=None, raw="{}"), ANSWERED),
        (in_stream_error(None, None, request_id=None, raw="{}"), ANSWERED),
        (session_locked(SessionLocked("x", status=423), waited=30, budget=30), NOT_SENT),
        (conversation_busy("c", 3.0), NOT_SENT),
        (lease_lost("c", None), None),
        (stale_record("c", 1, 2), None),
        (store_unavailable("Redis at 127.0.0.1:6379", "saving", OSError("down")), None),
        (store_unavailable("x", "saving", "down", delivery=MAYBE), MAYBE),
    ],
)
def test_every_builder_tells_the_delivery_truth(error: SessionforceError, delivery: Delivery | None) -> None:
    assert error.delivery is delivery


def test_the_class_tree_answers_the_callers_questions() -> None:
    assert issubclass(ProtocolError, DeliveryUnknown)  # never resent blindly
    assert issubclass(StreamInterrupted, DeliveryUnknown)
    assert isinstance(in_stream_error(404, "gone", request_id=None, raw=""), SessionNotFound)
    assert isinstance(in_stream_error(7, "odd", request_id=None, raw=""), ServerError)  # not a status: 500


def test_store_texts_never_claim_nothing_was_sent_unless_told() -> None:
    unknown = store_unavailable("the SQLite store '/x.db'", "saving the turn", OSError(28, "No space left"))
    assert "nothing was sent" not in str(unknown).lower()
    assert "No space left" in str(unknown)
    told = store_unavailable("s", "saving", "down", delivery=NOT_SENT)
    assert "Nothing was sent to the agent" in str(told)
    answered = store_unavailable("s", "saving", "down", delivery=ANSWERED)
    assert "exc.reply" in str(answered)


def test_lease_and_record_texts() -> None:
    class Lease:
        owner, fence = "host:1:abc", 7

    assert "fence 7, owner host:1:abc" in str(lease_lost("ticket-1", Lease()))
    assert "version 3, this write expected 2" in str(stale_record("ticket-1", 2, 3))
    assert "a turn by w1 holds it in Redis" in str(conversation_busy("ticket-1", 2.5, holder="w1", where="Redis"))


# ------------------------------------------------------------------ redaction


def test_known_secrets_are_scrubbed_from_message_body_and_partial_text() -> None:
    token = "00DSF000000TOKEN!AQxyz.abc-123"
    remember_secret(token)
    error = error_from_status(500, f"token {token} refused", body=f'{{"t": "{token}"}}'.encode())
    assert token not in str(error)
    assert token not in repr(error)
    assert token not in repr(error.args)
    assert isinstance(error.body, bytes)
    assert token.encode() not in error.body
    assert error.body_json == {"t": "[REDACTED]"}
    interrupted = StreamInterrupted("x", partial_text=f"the agent said {token}")
    assert token not in interrupted.partial_text


def test_secrets_found_by_their_shape() -> None:
    text = scrub(
        'Authorization: Bearer abc.def-ghi {"access_token": "t0k3n"} client_secret=s3cr3t&x=1 '
        "redis://user:pw@host:6379/0 //:pw2@[::1/0 password: hunter2"
    )
    for secret in ("abc.def-ghi", "t0k3n", "s3cr3t", ":pw@", "pw2", "hunter2"):
        assert secret not in text, (secret, text)
    assert "redis://user:***@host:6379/0" in text
    assert "x=1" in text  # what is not secret stays


def test_short_values_are_not_registered_so_words_survive() -> None:
    remember_secret("secret")
    assert scrub("check the client secret") == "check the client secret"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("reddis://:PASSWORD@127.0.0.1:6379/0", "reddis://:***@127.0.0.1:6379/0"),
        ("redis//:pw@127.0.0.1", "redis//:***@127.0.0.1"),
        ("redis://:pw@[::1/0", "redis://:***@[::1/0"),
        ("redis://user:p@ss/word@host/0", "redis://user:***@host/0"),
        ("postgresql://alice@db/app", "postgresql://alice@db/app"),
        ("redis://host/0?password=pw&db=1", "redis://host/0?password=***&db=1"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
    ],
)
def test_redact_url_hides_passwords_however_malformed(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert "pw" not in scrub(f"Store URL {url!r} is bad").replace("password=", "")


# ------------------------------------------------------------------ the aiohttp boundary


def _response_error() -> aiohttp.ClientResponseError:
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": "Bearer tok-boundary-123456", "Accept": "*/*"}))
    info = aiohttp.RequestInfo(URL("http://127.0.0.1/x"), "POST", headers, URL("http://127.0.0.1/x"))
    return aiohttp.ClientResponseError(info, (), status=400, message="Invalid status line")


def test_a_chained_aiohttp_error_loses_the_request_headers_it_carried() -> None:
    exc = scrubbed(_response_error())
    assert "tok-boundary-123456" not in repr(exc)
    assert "tok-boundary-123456" not in repr(exc.args)
    assert "Accept" in repr(exc)  # the rest is kept for debugging
    assert "tok-boundary" not in describe(_response_error())


@pytest.mark.parametrize(
    ("exc", "idempotent", "failure", "cls", "delivery"),
    [
        (_response_error(), False, Failure.NO_ANSWER, ProtocolError, MAYBE),
        (aiohttp.ServerDisconnectedError(), False, Failure.NO_ANSWER, DeliveryUnknown, MAYBE),
        (aiohttp.ClientPayloadError("cut"), True, Failure.NO_ANSWER, DeliveryUnknown, MAYBE),
        (TimeoutError(), False, Failure.NO_ANSWER, DeliveryUnknown, MAYBE),
        (aiohttp.ConnectionTimeoutError(), False, Failure.NOT_SENT, ConnectionFailed, NOT_SENT),
        (aiohttp.InvalidURL("::"), False, Failure.FATAL, ConnectionFailed, NOT_SENT),
        (RuntimeError("surprise"), False, Failure.FATAL, DeliveryUnknown, MAYBE),
    ],
)
def test_the_one_table_from_aiohttp_errors_to_ours(
    exc: BaseException, idempotent: bool, failure: Failure, cls: type, delivery: Delivery
) -> None:
    got_failure, error = map_exception(exc, "POST /sessions/s/messages", idempotent=idempotent)
    assert got_failure is failure
    assert type(error) is cls
    assert error.delivery is delivery
    assert "POST /sessions/s/messages" in str(error)
