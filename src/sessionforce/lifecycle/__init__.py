"""The conversation lifecycle: conversations keyed by the application's ids, one turn at a time, that
survive session expiry, restarts and many workers.

:class:`Conversations` hands them out and owns what they share (wire client, store, local locks, default
options); a :class:`Conversation` runs its turns (``send``, ``stream``, ``end``); resume policies decide
what a replacement session is told; hooks see every lifecycle event; the reaper ends idle sessions.
"""

from __future__ import annotations

from sessionforce.lifecycle._conversation import Conversation
from sessionforce.lifecycle._conversations import Conversations
from sessionforce.lifecycle._events import ConversationEvent, EventHook, EventKind
from sessionforce.lifecycle._options import ConversationOptions
from sessionforce.lifecycle._reaper import reap_idle, store_reaper
from sessionforce.lifecycle._replies import ConversationReply, ConversationStream, TurnReply
from sessionforce.lifecycle._resume import NoResume, ReplayResume, ResumeContext, ResumePlan, ResumePolicy

__all__ = [
    "Conversation",
    "ConversationEvent",
    "ConversationOptions",
    "ConversationReply",
    "ConversationStream",
    "Conversations",
    "EventHook",
    "EventKind",
    "NoResume",
    "ReplayResume",
    "ResumeContext",
    "ResumePlan",
    "ResumePolicy",
    "TurnReply",
    "reap_idle",
    "store_reaper",
]
