"""`AgentClient`: the blocking twin of :class:`~sessionforce.agent_api.AsyncAgentClient`."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sessionforce.agent_api import AsyncAgentClient
from sessionforce.blocking._loop import EventLoopThread, blocking, blocking_stream
from sessionforce.errors import ClientClosed

__all__ = ["AgentClient"]


class AgentClient:
    """The blocking twin of :class:`~sessionforce.agent_api.AsyncAgentClient`: same arguments, same methods.

    Use it with ``with`` or call :meth:`close`. Calls are run on a private event-loop thread.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._async = AsyncAgentClient(**kwargs)
        self._runner = EventLoopThread()

    def __repr__(self) -> str:
        return f"AgentClient(my_domain={self._async.my_domain!r}, agent_id={self._async.settings.agent_id!r})"

    @property
    def async_client(self) -> AsyncAgentClient:
        """The async client this facade drives."""
        return self._async

    @property
    def runner(self) -> EventLoopThread:
        """The private event-loop thread."""
        return self._runner

    fetch_token = blocking(AsyncAgentClient.fetch_token)
    start_session = blocking(AsyncAgentClient.start_session)
    send_message = blocking(AsyncAgentClient.send_message)
    end_session = blocking(AsyncAgentClient.end_session)
    submit_feedback = blocking(AsyncAgentClient.submit_feedback)

    stream_message = blocking_stream(AsyncAgentClient.stream_message)

    def close(self) -> None:
        """Close the connections and stop the loop thread."""
        try:
            self._runner.run(self._async.aclose())
        except ClientClosed:
            return
        self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
