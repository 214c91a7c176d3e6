"""The private event-loop thread the blocking API runs the async core on, and the generators that make a
blocking method from its async twin (:func:`blocking`, :func:`blocking_stream`), so signatures,
validation and behaviour cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from sessionforce.agent_api import EventStream, Reply, StreamEvent
from sessionforce.errors import ClientClosed

__all__ = ["EventLoopThread", "SyncMessageStream", "blocking", "blocking_stream"]

P = ParamSpec("P")
T = TypeVar("T")
A = TypeVar("A")


class EventLoopThread:
    """An asyncio event loop running in a daemon thread, for blocking callers."""

    def __init__(self, name: str = "sessionforce-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it. Ctrl-C cancels it (its cleanup runs) and re-raises."""
        if self._closed:
            coro.close()
            raise ClientClosed("This blocking client is closed. What to do: create a new one.")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("A blocking sessionforce call was made from its own event loop (e.g. in a hook): "
                               "use the async API there.")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()
                # Give the coroutine's cleanup (ending a session, releasing a lock) a moment to run.
                with contextlib.suppress(BaseException):  # cancelled or failed: either way it has stopped
                    future.exception(timeout=5)
            raise

    def close(self) -> None:
        """Stop the loop and its thread."""
        if self._closed:
            return
        self._closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


def blocking(
    method: Callable[Concatenate[A, P], Coroutine[Any, Any, T]], target: str = "_async"
) -> Callable[Concatenate[Any, P], T]:
    """Make a blocking method from an async one: it runs ``getattr(self, target).method(...)`` on the loop."""

    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        runner: EventLoopThread = self._runner
        return runner.run(method(getattr(self, target), *args, **kwargs))

    functools.update_wrapper(call, method)
    return call


async def _anext(iterator: AsyncIterator[T]) -> T:
    return await iterator.__anext__()


def blocking_stream(
    method: Callable[Concatenate[A, P], EventStream[Any]], target: str = "_async"
) -> Callable[Concatenate[Any, P], SyncMessageStream]:
    """Make a blocking streaming method from an async one: it returns a :class:`SyncMessageStream`."""

    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> SyncMessageStream:
        return SyncMessageStream(self._runner, method(getattr(self, target), *args, **kwargs))

    functools.update_wrapper(call, method)
    return call


class SyncMessageStream:
    """The events of one streamed turn, for blocking callers: iterate it; ``reply`` is set at the end."""

    def __init__(self, runner: EventLoopThread, stream: EventStream[Any]) -> None:
        self._runner = runner
        self._stream = stream

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        try:
            return self._runner.run(_anext(self._stream))
        except StopAsyncIteration:
            raise StopIteration from None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and release the connection."""
        self._runner.run(self._stream.aclose())

    @property
    def reply(self) -> Reply | None:
        """The complete reply, once the end of turn arrived."""
        return self._stream.reply

    def final_reply(self) -> Reply:
        """Read the rest of the stream and return the complete reply."""
        for _ in self:
            pass
        reply = self.reply
        if reply is None:  # pragma: no cover - the async stream sets it or raises
            raise RuntimeError("the stream ended without a reply")
        return reply
