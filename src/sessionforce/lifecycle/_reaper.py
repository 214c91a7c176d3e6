"""The reaper: ends server sessions that conversations left idle (a crashed worker, a user who walked away)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sessionforce.agent_api import EndReason
from sessionforce.errors import ConversationBusy, SessionforceError
from sessionforce.store import ConversationStatus

if TYPE_CHECKING:
    from sessionforce.lifecycle._conversations import Conversations

__all__ = ["reap_idle", "store_reaper"]

logger = logging.getLogger("sessionforce.reaper")


async def reap_idle(
    conversations: Conversations,
    *,
    idle_for: float = 15 * 60,
    end_reason: EndReason = "Expiration",
    limit: int = 1000,
    clock: Callable[[], float] = time.time,
) -> list[str]:
    """End the live sessions of conversations (in the manager's store) idle for ``idle_for`` seconds or
    more; return their ids.

    A conversation whose turn is running (its lock is held) is skipped and left for the next pass; one
    whose session could not be ended stays live in the store (``end_failed`` in its metadata) and is
    tried again on the next pass.
    """
    store = conversations.store
    reaped: list[str] = []
    idle = await store.list_conversations(status=ConversationStatus.ACTIVE, idle_for=idle_for, now=clock(), limit=limit)
    for record in idle:
        conversation = conversations.get(record.conversation_id, lock_wait=0.05, clock=clock)
        try:
            # Re-checked under the lock: a turn may have run since the listing.
            if await conversation.end_if_idle(idle_for, end_reason):
                reaped.append(record.conversation_id)
        except ConversationBusy:
            continue
        except SessionforceError as exc:
            logger.warning("could not reap conversation %s: %s", record.conversation_id, exc)
    if reaped:
        logger.info("reaped %d idle session(s)", len(reaped))
    return reaped


async def store_reaper(
    conversations: Conversations,
    *,
    idle_for: float = 15 * 60,
    interval: float = 60.0,
    end_reason: EndReason = "Expiration",
) -> None:
    """Run :func:`reap_idle` every ``interval`` seconds until cancelled (e.g. as a background task)."""
    while True:
        await reap_idle(conversations, idle_for=idle_for, end_reason=end_reason)
        await asyncio.sleep(interval)
