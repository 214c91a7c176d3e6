"""The blocking API: a thin facade that runs the async core on a private event-loop thread.

There is one logic, the async one. Each blocking method is generated from its async twin, so
signatures, validation and behaviour cannot drift apart.
"""

from __future__ import annotations

from sessionforce.blocking._client import AgentClient
from sessionforce.blocking._conversations import BlockingConversation, BlockingConversations, BlockingReply
from sessionforce.blocking._loop import SyncMessageStream

__all__ = ["AgentClient", "BlockingConversation", "BlockingConversations", "BlockingReply", "SyncMessageStream"]
