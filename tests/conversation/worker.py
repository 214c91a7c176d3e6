"""A worker process for the multi-process tests: sends turns on one conversation through a shared store.

Usage: python -m tests.conversation.worker URL CLIENT_ID SECRET AGENT STORE CONVERSATION PREFIX TURNS [LEASE_TTL]
Prints one line per reply: ``<sequence_id> <text>``.
"""

from __future__ import annotations

import asyncio
import sys

from sessionforce import AsyncAgentClient, Conversations


async def main(argv: list[str]) -> None:
    url, client_id, secret, agent, store, conversation_id, prefix, turns = argv[:8]
    lease_ttl = float(argv[8]) if len(argv) > 8 else 30.0
    async with (
        AsyncAgentClient(my_domain=url, client_id=client_id, client_secret=secret, agent_id=agent) as client,
        Conversations(client, store=store) as conversations,
    ):
        conv = conversations.get(conversation_id, lease_ttl=lease_ttl, lock_wait=60)
        replies = await asyncio.gather(*(conv.send(f"{prefix} {i}") for i in range(int(turns))))
        for reply in replies:
            print(reply.sequence_id, reply.text, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
