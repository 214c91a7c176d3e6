"""Listing conversations from the Redis store's indexes: one sorted set per status and bucket, merged.

On a single primary there is one bucket (one sorted set per status: a page, then the records). In a
cluster each of the :data:`~._redis_keys.BUCKETS` buckets has its own sorted sets, spread over the
nodes; a listing reads a short page of every bucket (pipelined: one round trip per node), merges the
pages oldest first, and reads further into a bucket only when the merge reaches the end of its page while
the bucket may hold more (those entries could come before the others'). Index entries whose record
expired through retention are dropped on the way (only if the record is still absent).
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sessionforce.errors import CorruptRecord
from sessionforce.store._records import ConversationRecord, ConversationStatus
from sessionforce.store._redis_keys import KeyLayout

__all__ = ["list_status"]

T = TypeVar("T")
IO = Callable[[Awaitable[Any], str], Awaitable[Any]]

logger = logging.getLogger("sessionforce.store")

_DOING = "listing conversations"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def list_status(
    io: IO, client: Any, layout: KeyLayout, prune: Any, status: ConversationStatus, cutoff: float | None,
    limit: int, where: str,
) -> list[ConversationRecord]:
    """Up to ``limit`` records of ``status`` with ``last_activity_at <= cutoff``, oldest first.

    ``io`` awaits a Redis call, mapping its errors; ``prune`` is the registered PRUNE script."""
    top: Any = "+inf" if cutoff is None else repr(cutoff)
    buckets = layout.buckets
    page = limit if buckets == 1 else max(8, -(-2 * limit // buckets))
    offsets = [0] * buckets
    heads: list[deque[tuple[float, str]]] = [deque() for _ in range(buckets)]
    more = set(range(buckets))  # buckets whose index may hold entries beyond those fetched
    refill = list(range(buckets))
    out: list[ConversationRecord] = []
    while len(out) < limit:
        if refill:
            pipe = client.pipeline(transaction=False)
            for b in refill:
                pipe.zrangebyscore(layout.index(status, b), "-inf", top, start=offsets[b], num=page, withscores=True)
            for b, rows in zip(refill, await io(pipe.execute(), _DOING), strict=True):
                heads[b].extend((float(score), _text(member)) for member, score in rows)
                offsets[b] += len(rows)
                if len(rows) < page:
                    more.discard(b)
        batch = _merge(heads, more, limit - len(out))
        if not batch:
            break
        pipe = client.pipeline(transaction=False)
        for _, cid in batch:
            pipe.get(layout.key("rec", cid))
        blobs = await io(pipe.execute(), _DOING)
        missing: dict[int, list[str]] = {}
        for (b, cid), blob in zip(batch, blobs, strict=True):
            if blob is None:
                missing.setdefault(b, []).append(cid)  # expired through retention; its index entry is stale
                continue
            try:
                record = ConversationRecord.from_stored(blob, store=where, conversation_id=cid)
            except CorruptRecord as exc:  # never hides the others
                logger.warning("left out of the listing: %s", exc)
                continue
            # The save script keeps index and record in step; re-check anyway against a save that raced us.
            if record.status == status and (cutoff is None or record.last_activity_at <= cutoff):
                out.append(record)
        for b, ids in missing.items():  # rare (retention ran out): one script per bucket
            offsets[b] -= len(ids)  # they leave the index: later entries move up
            await io(prune(keys=[*(layout.key("rec", cid) for cid in ids), layout.index(status, b)], args=ids), _DOING)
        refill = [b for b in more if len(heads[b]) <= page // 4]
    return out


def _merge(heads: list[deque[tuple[float, str]]], more: set[int], want: int) -> list[tuple[int, str]]:
    """Take up to ``want`` (bucket, id) pairs, oldest first, stopping once a bucket that may hold more
    than was fetched runs out (its next entry is not known yet)."""
    heap = [(head[0][0], b) for b, head in enumerate(heads) if head]
    heapq.heapify(heap)
    batch: list[tuple[int, str]] = []
    while heap and len(batch) < want:
        _, b = heapq.heappop(heap)
        batch.append((b, heads[b].popleft()[1]))
        if heads[b]:
            heapq.heappush(heap, (heads[b][0][0], b))
        elif b in more:
            break
    return batch
