"""`Conversations`: the manager that hands out conversations by id.

It owns what conversations share: the wire client, the store, the local turn locks (one FIFO queue per
conversation in this process) and the default options. The wire client knows nothing of any of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from sessionforce.agent_api import AsyncAgentClient
from sessionforce.errors import InvalidArgument
from sessionforce.lifecycle._conversation import Conversation
from sessionforce.lifecycle._events import EventHook, EventKind, Hooks
from sessionforce.lifecycle._locks import LocalLocks
from sessionforce.lifecycle._options import ConversationOptions
from sessionforce.lifecycle._resume import ResumePolicy, resume_policy
from sessionforce.store import Store, open_store
from sessionforce.telemetry import Telemetry

__all__ = ["Conversations"]


class Conversations:
    """Hands out conversations by id; owns the local turn locks, the default store and default options.

    ``client``: the wire client to use (``None``: one built from the settings, closed by :meth:`aclose`).
    ``store``: a store or a store URL (``None``: ``SESSIONFORCE_STORE``, else the default SQLite file),
    opened on first use and closed by :meth:`aclose` unless it was passed in as an object. ``resume``,
    ``hooks`` and ``options`` (the fields of :class:`ConversationOptions`) are the defaults of every
    conversation; :meth:`get` may override them per conversation.

    ``telemetry``: where turn spans and the turn, session, lease and store metrics go (``None``: the
    client's, which defaults to OpenTelemetry's global providers); handed to the client built here.

    The common path is one line: ``reply = await conversations.get("ticket-42").send("hi")``.
    """

    def __init__(
        self,
        client: AsyncAgentClient | None = None,
        *,
        store: Store | str | None = None,
        resume: str | ResumePolicy | None = None,
        hooks: Iterable[tuple[EventKind | str, EventHook]] = (),
        telemetry: Telemetry | None = None,
        **options: Any,
    ) -> None:
        self._defaults: dict[str, Any] = dict(options)
        if resume is not None:
            self._defaults["resume"] = resume
        self._hooks = tuple(hooks)
        # Checked now, so a typo fails here rather than on the first turn; shared when nothing overrides it.
        self._options = self._build_options(self._defaults) if self._defaults else None
        self._owns_client = client is None
        self._client = client if client is not None else AsyncAgentClient(telemetry=telemetry)
        self._telemetry = telemetry or self._client.telemetry
        self._store_url = store if isinstance(store, str) else None
        self._store: Store | None = None if isinstance(store, str) else store
        self._owns_store = False
        self._locks = LocalLocks()

    def __repr__(self) -> str:
        return f"Conversations(client={self._client!r})"

    @property
    def client(self) -> AsyncAgentClient:
        """The wire client conversations send with."""
        return self._client

    @property
    def telemetry(self) -> Telemetry:
        """Where turn spans and metrics go."""
        return self._telemetry

    @property
    def store(self) -> Store:
        """The session store: the ``store`` argument, else ``SESSIONFORCE_STORE``, else the default SQLite
        file. Opened on first use."""
        if self._store is None:
            self._store = open_store(self._store_url)
            self._owns_store = True
        return self._store

    def get(
        self,
        conversation_id: str,
        *,
        agent_id: str | None = None,
        resume: str | ResumePolicy | None = None,
        hooks: Iterable[tuple[EventKind | str, EventHook]] = (),
        **options: Any,
    ) -> Conversation:
        """The conversation keyed ``conversation_id`` (cheap: nothing is sent or loaded until a turn).

        Use it scoped (``async with``: the session ends when the block exits) or detached (call
        :meth:`Conversation.send` from any request or worker; end it with :meth:`Conversation.end`).
        ``resume`` is ``"none"`` (default), ``"replay"`` or a policy; ``options`` are the fields of
        :class:`ConversationOptions` (``lock_wait``, ``idle_timeout``, ...), over the manager's defaults.
        """
        settings = self._options
        if resume is not None or options:
            changes = dict(options)
            if resume is not None:
                changes["resume"] = resume
            settings = self._build_options({**self._defaults, **changes})
        all_hooks = (*self._hooks, *hooks) if hooks else self._hooks
        return Conversation(
            self._client,
            conversation_id,
            store=self.store,
            locks=self._locks,
            agent_id=agent_id,
            options=settings,
            hooks=Hooks(all_hooks) if all_hooks else None,
            telemetry=self._telemetry,
        )

    @staticmethod
    def _build_options(options: dict[str, Any]) -> ConversationOptions:
        values = dict(options)
        values["resume"] = resume_policy(values.get("resume"))
        try:
            return ConversationOptions(**values)
        except TypeError as exc:
            known = ", ".join(ConversationOptions.__dataclass_fields__)
            raise InvalidArgument(f"Unknown conversation option ({exc}). Known options: {known}.") from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what this manager opened: the store (unless passed in as an object) and the client (unless
        passed in)."""
        store, self._store = self._store, None
        try:
            if store is not None and self._owns_store:
                await store.aclose()
        finally:
            if self._owns_client:
                await self._client.aclose()
