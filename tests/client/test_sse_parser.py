"""The SSE parser against the WHATWG event-stream rules, and fuzzed with arbitrary input."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionforce.agent_api import (
    MessageEvent,
    ProgressEvent,
    TextChunkEvent,
    UnknownEvent,
    ValidationFailureEvent,
)
from sessionforce.agent_api._events import stream_event_from_sse
from sessionforce.agent_api._sse import ServerSentEvent, SSEDecoder
from sessionforce.errors import SessionforceError


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.close()


def test_data_event_type_and_id() -> None:
    events = decode(b"event: TextChunk\nid: 7\ndata: {\"a\": 1}\n\n")
    assert events == [ServerSentEvent(data='{"a": 1}', event="TextChunk", id="7")]


def test_multiline_data_joins_with_newline() -> None:
    assert decode(b"data: one\ndata: two\n\n")[0].data == "one\ntwo"


def test_line_endings_crlf_cr_lf_mixed() -> None:
    for raw in (b"data: x\r\n\r\n", b"data: x\r\r", b"data: x\n\n", b"data: x\r\n\n"):
        assert [e.data for e in decode(raw)] == ["x"], raw


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # A CR ending one chunk and the LF starting the next must not make a blank line (a dispatch).
    events = decode(b"data: a\r", b"\ndata: b\r", b"\n\r\n")
    assert [e.data for e in events] == ["a\nb"]


def test_comments_and_unknown_fields_ignored() -> None:
    assert [e.data for e in decode(b": keep-alive\nfoo: bar\ndata: x\n\n")] == ["x"]


def test_only_one_leading_space_is_removed() -> None:
    assert decode(b"data:  two spaces\n\n")[0].data == " two spaces"
    assert decode(b"data:nospace\n\n")[0].data == "nospace"


def test_field_without_colon_and_empty_data() -> None:
    # "data" alone appends an empty line: the event is dispatched with empty data.
    assert decode(b"data\n\n") == [ServerSentEvent(data="", event="message")]


def test_event_without_blank_line_at_eof_is_dropped() -> None:
    assert decode(b"data: complete\n\ndata: incomplete\n") == [ServerSentEvent(data="complete")]


def test_bom_is_stripped_and_utf8_split_mid_character() -> None:
    raw = "\ufeffdata: héllo ✓\n\n".encode()
    events = decode(*[raw[i : i + 1] for i in range(len(raw))])
    assert [e.data for e in events] == ["héllo ✓"]


def test_u2028_inside_json_does_not_split_the_line() -> None:
    payload = json.dumps({"message": {"type": "TextChunk", "message": "a\u2028b"}}, ensure_ascii=False)
    events = decode(f"data: {payload}\n\n".encode())
    event = stream_event_from_sse(events[0])
    assert isinstance(event, TextChunkEvent)
    assert event.text == "a\u2028b"


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: \xff\xfe\n\n")[0].data == "\ufffd\ufffd"


def test_retry_field_digits_only() -> None:
    assert decode(b"retry: 1500\ndata: x\n\n")[0].retry == 1500
    assert decode(b"retry: soon\ndata: x\n\n")[0].retry is None


def sse(payload: object, event: str = "message") -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(payload), event=event)


def test_typed_events_keyed_on_message_type_not_event_line() -> None:
    progress = stream_event_from_sse(
        sse({"message": {"type": "ProgressIndicator", "indicatorType": "ACTION", "message": "Working on it"}})
    )
    assert progress == ProgressEvent(message="Working on it", indicator_type="ACTION", raw=progress.raw)  # type: ignore[union-attr]
    chunk = stream_event_from_sse(sse({"timestamp": 1, "offset": 4, "message": {"type": "TextChunk", "message": "Hi"}}))
    assert isinstance(chunk, TextChunkEvent)
    assert (chunk.text, chunk.offset) == ("Hi", 4)
    failure = stream_event_from_sse(sse({"message": {"type": "ValidationFailureChunk", "offset": 0, "reason": "x"}}))
    assert isinstance(failure, ValidationFailureEvent)
    final = stream_event_from_sse(sse({"message": {"type": "Inform", "id": "m1", "message": "Done"}}, "Inform"))
    assert isinstance(final, MessageEvent)
    assert final.message.message == "Done"


def test_one_end_of_turn_rule_data_type_first_then_the_event_line() -> None:
    assert stream_event_from_sse(sse({"message": {"type": "EndOfTurn"}})) is None
    assert stream_event_from_sse(ServerSentEvent(data="{}", event="EndOfTurn")) is None
    assert stream_event_from_sse(ServerSentEvent(data="not json", event="EndOfTurn")) is None
    assert stream_event_from_sse(sse({"message": {"id": "x"}}, "EndOfTurn")) is None  # the data names no type
    # The data's type wins over the event line: an Inform sent under "event: EndOfTurn" is a message.
    assert isinstance(stream_event_from_sse(sse({"message": {"type": "Inform", "message": "x"}}, "EndOfTurn")),
                      MessageEvent)
    assert isinstance(stream_event_from_sse(sse({"message": {"type": "Inform"}})), MessageEvent)


def test_unknown_and_non_json_events_stay_visible() -> None:
    unknown = stream_event_from_sse(sse({"message": {"type": "Hologram", "x": 1}}))
    assert isinstance(unknown, MessageEvent)
    assert unknown.message.type == "Hologram"
    assert unknown.message.model_extra == {"x": 1}
    assert isinstance(stream_event_from_sse(ServerSentEvent(data="not json", event="ping")), UnknownEvent)


def test_error_inside_a_200_stream_maps_to_our_exceptions() -> None:
    from sessionforce.errors import ServerError, SessionNotFound

    with pytest.raises(SessionNotFound, match="gone"):
        stream_event_from_sse(sse({"message": {"type": "Error", "httpStatus": 404, "message": "gone"}}))
    with pytest.raises(ServerError) as raised:
        stream_event_from_sse(sse({"status": 500, "error": "HttpServerErrorException", "message": "boom"}, "error"))
    assert raised.value.status == 500


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=12))
def test_fuzz_arbitrary_bytes_never_crash(chunks: list[bytes]) -> None:
    for event in decode(*chunks):
        with contextlib.suppress(SessionforceError):
            stream_event_from_sse(event)


_field = st.sampled_from(["data", "event", "id", "retry", "", ":comment", "dat"])
_value = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20)
_ending = st.sampled_from(["\n", "\r", "\r\n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_field, _value, _ending), max_size=15), st.integers(min_value=1, max_value=7))
def test_fuzz_chunking_does_not_change_the_events(lines: list[tuple[str, str, str]], size: int) -> None:
    raw = "".join(f"{f}: {v}{e}" if f else e for f, v, e in lines).encode()
    whole = decode(raw)
    pieces = decode(*[raw[i : i + size] for i in range(0, len(raw), size)])
    assert pieces == whole


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["type", "message", "offset", "reason", "indicatorType", "httpStatus", "id", "result"]),
        json_values,
        max_size=6,
    ),
    st.sampled_from(["message", "TextChunk", "Inform", "error", "EndOfTurn"]),
)
def test_fuzz_event_payloads_parse_or_raise_our_error(message: dict[str, object], event: str) -> None:
    try:
        stream_event_from_sse(sse({"message": message}, event))
        stream_event_from_sse(sse(message, event))
    except SessionforceError:
        pass
