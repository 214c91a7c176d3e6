"""`MessageStream`: the events of one streamed turn, read straight from the connection.

No async generator: each ``__anext__`` decodes what is buffered, and reads more only when it must. The
time for the next *complete* event is bounded by ``Timeouts.stream_read`` (one timer per wait, armed when
reading starts: bytes and keep-alive comments that do not complete an event do not reset it), and the
whole turn by ``Timeouts.turn`` (aiohttp's total timeout, which runs until the body is read).
"""

from __future__ import annotations

import asyncio
from collections import deque

import aiohttp

from sessionforce.agent_api._boundary import describe, scrubbed
from sessionforce.agent_api._events import (
    EndOfTurnEvent,
    EventStream,
    ReplyAssembler,
    StreamEvent,
    require_answer,
    stream_event_from_sse,
)
from sessionforce.agent_api._reply import Reply
from sessionforce.agent_api._sse import ServerSentEvent, SSEDecoder
from sessionforce.agent_api._transport import Transport
from sessionforce.errors import StreamInterrupted
from sessionforce.errors._build import stream_interrupted

__all__ = ["MessageStream"]


class MessageStream(EventStream[Reply]):
    """The events of one streamed turn. Iterate with ``async for``; ``reply`` is set at the end of turn.

    The request is sent when the first event is asked for. If the stream breaks, stalls longer than
    ``Timeouts.stream_read`` between complete events, or runs past ``Timeouts.turn``, iteration raises
    :class:`~sessionforce.errors.StreamInterrupted` with the partial text: the turn was delivered.
    """

    _DRAIN_SECONDS = 2.0

    __slots__ = ("_assembler", "_body", "_decoder", "_done", "_path", "_pending", "_response", "_transport")

    def __init__(self, transport: Transport, path: str, body: bytes, session_id: str, sequence_id: int) -> None:
        self._transport = transport
        self._path = path
        self._body = body
        self._assembler = ReplyAssembler(session_id, sequence_id)
        self._decoder = SSEDecoder()
        self._pending: deque[ServerSentEvent] = deque()
        self._response: aiohttp.ClientResponse | None = None
        self._done = False

    async def __anext__(self) -> StreamEvent:
        item = await self.receive()
        return EndOfTurnEvent(item) if isinstance(item, Reply) else item

    async def receive(self) -> StreamEvent | Reply:
        """The next event; at the end of turn the turn's :class:`Reply` itself (also kept in ``reply``)
        rather than an ``EndOfTurnEvent``, for a layer that hands out an end-of-turn event of its own.
        ``StopAsyncIteration`` once the turn ended, failed or the stream was closed."""
        if self._done:
            raise StopAsyncIteration
        try:
            while not self._pending:
                await self._read()
            event = stream_event_from_sse(self._pending.popleft())
            if event is None:
                require_answer(self._assembler.messages, None)
                self.reply = self._assembler.reply()
                await self._drain()
                return self.reply
            self._assembler.add(event)
            return event
        except BaseException:
            self._close()
            raise

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        self._close()

    @property
    def partial_text(self) -> str:
        """The reply text received so far."""
        return self._assembler.partial_text

    def _close(self) -> None:
        self._done = True
        response, self._response = self._response, None
        if response is not None:
            response.close()

    def _interrupted(self, why: str) -> StreamInterrupted:
        a = self._assembler
        return stream_interrupted(a.session_id, a.sequence_id, why, partial_text=a.partial_text,
                                  messages=list(a.messages))

    async def _read(self) -> None:
        """Read until at least one complete event is buffered, within ``stream_read``."""
        response = self._response
        if response is None:
            response = self._response = await self._transport.open_stream(self._path, body=self._body)
        timeouts = self._transport.timeouts
        window = asyncio.timeout(timeouts.stream_read)
        try:
            async with window:
                while not self._pending:
                    chunk = await response.content.readany()
                    if not chunk:
                        raise self._interrupted("the connection closed before the end of turn")
                    self._pending.extend(self._decoder.feed(chunk))
        except TimeoutError as exc:
            if window.expired() or isinstance(exc, aiohttp.ServerTimeoutError):
                why = f"no complete event for {timeouts.stream_read:g}s (Timeouts.stream_read)"
            else:
                why = f"the turn ran past its deadline of {timeouts.turn:g}s (Timeouts.turn)"
            raise self._interrupted(why) from None
        except aiohttp.ClientError as exc:
            raise self._interrupted(describe(exc)) from scrubbed(exc)

    async def _drain(self) -> None:
        # Reading to the end lets the pooled connection be reused; the turn is complete either way.
        self._done = True
        response, self._response = self._response, None
        if response is None:  # pragma: no cover - an end of turn always came from a response
            return
        try:
            async with asyncio.timeout(self._DRAIN_SECONDS):
                while await response.content.readany():
                    pass
        except (aiohttp.ClientError, TimeoutError):
            response.close()
        else:
            response.release()
