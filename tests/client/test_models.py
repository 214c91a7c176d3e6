"""Wire models: tolerant on input (unknown kept), strict on output, and never crash on garbage."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionforce.agent_api._bodies import message_body
from sessionforce.agent_api._client import parse_response
from sessionforce.agent_api._models import (
    ConfirmMessage,
    EscalateMessage,
    FailureMessage,
    InformMessage,
    MessagesResponse,
    SessionEndedMessage,
    StartSessionResponse,
    TokenResponse,
    Variable,
)
from sessionforce.agent_api._reply import Awaiting, Reply
from sessionforce.errors import InvalidArgument, ProtocolError


def read(body: Any, model: type[MessagesResponse] = MessagesResponse) -> MessagesResponse:
    return parse_response(model, json.dumps(body).encode(), 200)


def test_every_documented_type_gets_its_class_and_unknowns_are_kept() -> None:
    body = {
        "messages": [
            {"type": "Inform", "id": "1", "feedbackId": "f1", "planId": "p", "isContentSafe": True, "message": "Hi",
             "result": [{"name": "GetOrder", "value": 3}], "citedReferences": [{"type": "link", "value": "https://x"}],
             "metrics": {"ms": 5}},
            {"type": "Confirm", "id": "2", "message": "Sure?", "confirm": {"action": "Cancel"}},
            {"type": "Escalation", "id": "3", "targets": [{"type": "Queue", "value": "Support"}]},
            {"type": "Failure", "id": "4", "code": "ACTION_FAILED", "errors": ["nope"]},
            {"type": "SessionEnded", "id": "5", "reason": "InfiniteLoopDetected"},
            {"type": "Telepathy", "id": "6", "vibe": "calm"},
        ],
        "_links": {"self": None, "end": {"href": "https://api/end"}},
        "newTopLevel": 1,
    }
    parsed = read(body)
    kinds = [type(m) for m in parsed.messages]
    assert kinds[:5] == [InformMessage, ConfirmMessage, EscalateMessage, FailureMessage, SessionEndedMessage]
    assert parsed.messages[0].model_extra == {"metrics": {"ms": 5}}
    assert parsed.messages[5].type == "Telepathy"
    assert parsed.messages[5].model_extra == {"vibe": "calm"}
    assert parsed.model_extra == {"newTopLevel": 1}
    assert parsed.messages[4].reason == "InfiniteLoopDetected"  # type: ignore[attr-defined]  # unknown enum kept
    assert parsed.links["end"] is not None
    # Round trip keeps every unknown field.
    again = json.loads(parsed.model_dump_json(by_alias=True))
    assert again["messages"][5]["vibe"] == "calm"
    assert again["messages"][0]["metrics"] == {"ms": 5}


def test_reply_view() -> None:
    parsed = read({"messages": [
        {"type": "Inform", "message": "Your order shipped.", "feedbackId": "fb", "result": [{"status": "shipped"}],
         "citedReferences": [{"type": "record", "value": "ka0"}]},
        {"type": "Confirm", "id": "c1", "message": "Cancel it?"},
    ]})
    reply = Reply(messages=parsed.messages, session_id="s", sequence_id=2)
    assert reply.text == "Your order shipped.\nCancel it?"
    assert reply.actions == [{"status": "shipped"}]
    assert [c.value for c in reply.citations] == ["ka0"]
    assert reply.feedback_id == "fb"
    assert reply.awaiting is Awaiting.CONFIRMATION
    assert reply.question is not None
    assert reply.question.id == "c1"
    messages = [{"type": "Escalate"}, {"type": "SessionEnded", "reason": "Action"}]
    ended = Reply(messages=read({"messages": messages}).messages)
    assert ended.awaiting is Awaiting.ENDED
    assert ended.escalated
    assert ended.end_reason == "Action"


def test_start_session_response_needs_a_session_id() -> None:
    ok = read({"sessionId": "abc", "messages": [{"type": "Inform", "message": "Hello"}]}, StartSessionResponse)
    assert isinstance(ok, StartSessionResponse)
    assert ok.session_id == "abc"
    with pytest.raises(ProtocolError, match="sessionId"):
        read({"messages": []}, StartSessionResponse)


def test_token_response_accepts_issued_at_as_string_or_number_and_hides_the_token() -> None:
    a = TokenResponse.model_validate({"access_token": "SECRET", "issued_at": "1740760662466"})
    b = TokenResponse.model_validate({"access_token": "SECRET", "issued_at": 1740760662466})
    assert a.issued_at == b.issued_at == 1740760662466
    assert "SECRET" not in repr(a)


def test_construct_validated_builds_what_model_construct_builds() -> None:
    from sessionforce.agent_api._reply import construct_validated
    from sessionforce.blocking import BlockingReply
    from sessionforce.lifecycle import ConversationReply

    messages = read({"messages": [{"type": "Inquire", "id": "q1", "message": "Which order?"}]}).messages
    fields: dict[str, Any] = {"messages": messages, "session_id": "s1", "sequence_id": 4}
    turn = {"resumed": True, "resume_reason": "expired", "interrupted_turn": None, "greeting": None}
    owner = object()
    for cls, values, private in [
        (Reply, fields, None),
        (ConversationReply, {**fields, **turn}, {"_conversation": owner}),
        (BlockingReply, {**fields, **turn}, {"_conversation": owner}),
    ]:
        assert set(values) == set(cls.model_fields)  # every field named, as the helper requires
        made = construct_validated(cls, dict(values), private)
        reference = cls.model_construct(**values)
        if private:
            reference._conversation = owner  # type: ignore[attr-defined]
        assert made == reference
        assert made.__pydantic_fields_set__ == reference.__pydantic_fields_set__
        assert made.__pydantic_private__ == reference.__pydantic_private__
        assert made.model_dump() == reference.model_dump()
        assert made.awaiting is Awaiting.INPUT
        assert made.text == "Which order?"
        with pytest.raises(ValueError, match="frozen"):
            made.session_id = "other"


def test_requests_are_strict_and_camel_case() -> None:
    assert Variable(name="$Context.EndUserLanguage", value="en_US").model_dump(by_alias=True) == {
        "name": "$Context.EndUserLanguage", "type": "Text", "value": "en_US"
    }
    with pytest.raises(ValueError, match="extra"):
        Variable(name="x", value=1, colour="red")  # type: ignore[call-arg]


def _expected_send_body(text: str, sequence_id: int, message_type: str, in_reply_to: str | None,
                        variables: list[dict[str, Any]]) -> dict[str, Any]:
    """The send-message body as agent-api.md writes it, built independently of the client."""
    message: dict[str, Any] = {"sequenceId": sequence_id, "type": message_type, "text": text}
    if in_reply_to is not None:
        message["inReplyToMessageId"] = in_reply_to
    wire = []
    for v in variables:
        item = {"name": v["name"], "type": v.get("type", "Text")}
        if v["value"] is not None:  # None fields are left out, as for every request body
            item["value"] = v["value"]
        wire.append(item)
    return {"message": message, "variables": wire}


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=40),
    sequence_id=st.integers(min_value=1, max_value=2**53),
    message_type=st.sampled_from(["Text", "Reply", "Cancel"]),
    in_reply_to=st.none() | st.text(min_size=1, max_size=8),
    variables=st.lists(
        st.fixed_dictionaries(
            {"name": st.text(min_size=1, max_size=8), "value": st.none() | st.integers() | st.text(max_size=8)},
            optional={"type": st.sampled_from(["Text", "Number"])},
        ),
        max_size=3,
    ),
)
def test_the_send_body_is_the_documented_shape(
    text: str, sequence_id: int, message_type: str, in_reply_to: str | None, variables: list[dict[str, Any]]
) -> None:
    """The one definition of the send body (built directly, every turn) writes agent-api.md's shape; a value
    that is not valid Unicode is refused as InvalidArgument, never sent."""
    expected = _expected_send_body(text, sequence_id, message_type, in_reply_to, variables)
    try:
        json.dumps(expected, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate
        with pytest.raises(InvalidArgument, match="Unicode"):
            message_body(text, sequence_id, variables, message_type, in_reply_to)
        return
    assert json.loads(message_body(text, sequence_id, variables, message_type, in_reply_to)) == expected


def test_bad_send_bodies_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="Unicode"):
        message_body("bad \ud800", 1, (), "Text", None)
    with pytest.raises(InvalidArgument, match="variables"):
        message_body("x", 1, [{"value": 1}], "Text", None)
    with pytest.raises(InvalidArgument, match="in_reply_to"):
        message_body("x", 1, (), "Reply", 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="variables must be a list"):
        message_body("x", 1, "abc", "Text", None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="Variable or a mapping"):
        message_body("x", 1, ["abc"], "Text", None)  # type: ignore[list-item]
    with pytest.raises(InvalidArgument, match="JSON"):
        message_body("x", 1, [{"name": "n", "value": float("nan")}], "Text", None)
    with pytest.raises(InvalidArgument, match="JSON"):
        message_body("x", 1, [{"name": "n", "value": object()}], "Text", None)
    with pytest.raises(InvalidArgument, match="message_type"):
        message_body("x", 1, (), ["Text"], None)  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=15,
)
message_like = st.dictionaries(
    st.sampled_from(["type", "id", "message", "feedbackId", "result", "citedReferences", "targets", "reason",
                     "errors", "code", "httpStatus", "collect", "confirm", "isContentSafe"]),
    json_values | st.sampled_from(["Inform", "Escalate", "Escalation", "Failure", "Error", "SessionEnded"]),
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({"messages": st.lists(message_like, max_size=4)}),
                 st.fixed_dictionaries({"sessionId": json_values, "messages": st.lists(message_like, max_size=3)})))
def test_fuzz_responses_parse_or_raise_protocol_error(body: Any) -> None:
    for model in (MessagesResponse, StartSessionResponse):
        try:
            parsed = read(body, model)
        except ProtocolError:
            continue
        reply = Reply(messages=parsed.messages)
        _ = (reply.text, reply.actions, reply.citations, reply.awaiting, reply.feedback_id)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_raw_bytes_parse_or_raise_protocol_error(body: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_response(MessagesResponse, body, 200)
