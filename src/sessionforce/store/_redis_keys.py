"""Where the Redis store keeps what: one key layout for a single primary (and Sentinel), one for a cluster.

A single primary (``redis://``, ``redis+sentinel://``) keeps the layout every earlier version wrote, so an
upgrade reads every record already stored and nothing migrates: slots do not matter on one primary, and
its listing stays one sorted set per status.

A cluster (``redis+cluster://``) refuses a script or transaction whose keys live in several hash slots, and
one index for all conversations would be one hot key on one node. So every conversation falls in one of
:data:`BUCKETS` buckets (a CRC-32 of its id), and all its keys, its release channel and its bucket's
indexes carry the hash tag ``{<bucket>}``: every script still touches one slot (the save moves the index
entry in the same atomic step), the indexes spread over the nodes, and a listing reads every bucket's
index (pipelined: one round trip per node) and merges them (:mod:`._redis_list`).
"""

from __future__ import annotations

import zlib

from sessionforce.errors import InvalidArgument
from sessionforce.store._records import ConversationStatus

__all__ = ["BUCKETS", "KeyLayout"]

BUCKETS = 256
"""Index buckets of the cluster layout. Never change it for data already stored: a conversation's keys
are named by its bucket. 256 spread over any cluster of up to a few dozen primaries, and keep a full
listing at 256 short reads per status (one round trip per node)."""


class KeyLayout:
    """The key names of one store: ``flat`` (one primary: the historical layout) or ``tagged`` (cluster)."""

    __slots__ = ("buckets", "prefix", "tagged")

    def __init__(self, prefix: str, *, tagged: bool) -> None:
        if tagged and ("{" in prefix or "}" in prefix):
            raise InvalidArgument(
                f"prefix={prefix!r}: on a Redis Cluster the store names hash slots with {{...}} itself; "
                "use a prefix without braces."
            )
        self.prefix = prefix
        self.tagged = tagged
        self.buckets = BUCKETS if tagged else 1

    def bucket(self, conversation_id: str) -> int:
        """The bucket a conversation belongs to (always 0 in the flat layout)."""
        if not self.tagged:
            return 0
        # surrogatepass: an id that is not Unicode text still gets a bucket; the command sending it then
        # fails with InvalidArgument like everywhere else.
        return zlib.crc32(conversation_id.encode("utf-8", "surrogatepass")) % BUCKETS

    def _tag(self, bucket: int) -> str:
        return f"{{{bucket}}}" if self.tagged else ""

    def key(self, kind: str, conversation_id: str) -> str:
        """``P[{b}]<kind>:<id>``: a conversation's record, transcript, lease, fence, write id or channel."""
        return f"{self.prefix}{self._tag(self.bucket(conversation_id))}{kind}:{conversation_id}"

    def index(self, status: ConversationStatus, bucket: int) -> str:
        """The sorted set of one status's conversations in one bucket, scored by last activity."""
        return f"{self.prefix}{self._tag(bucket)}idx:{status.value}"

    def indexes_of(self, conversation_id: str) -> list[str]:
        """Every status index of the conversation's bucket, in :class:`ConversationStatus` order."""
        bucket = self.bucket(conversation_id)
        return [self.index(status, bucket) for status in ConversationStatus]
