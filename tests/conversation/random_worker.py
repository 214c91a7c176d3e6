"""A worker process that takes turns at random on many shared conversations (the many-workers test).

Usage: python -m tests.conversation.random_worker URL CLIENT_ID SECRET AGENT STORE NAME CONVERSATIONS TURNS SEED
Prints one line per reply: ``<conversation> <sequence_id> <text>``.
"""

from __future__ import annotations

import asyncio
import random
import sys

from sessionforce import AsyncAgentClient, Conversations


async def main(argv: list[str]) -> None:
    url, client_id, secret, agent, store, name, conversations, turns, seed = argv
    rng = random.Random(int(seed))
    picks = [f"conv-{rng.randrange(int(conversations))}" for _ in range(int(turns))]
    async with (
        AsyncAgentClient(my_domain=url, client_id=client_id, client_secret=secret, agent_id=agent) as client,
        Conversations(client, store=store) as conversations,
    ):

        async def turn(i: int, conversation_id: str) -> None:
            await asyncio.sleep(rng.random() * 0.2)  # spread the turns so workers interleave
            reply = await conversations.get(conversation_id, lock_wait=60).send(f"{name} turn {i}")
            print(conversation_id, reply.sequence_id, reply.text, flush=True)

        await asyncio.gather(*(turn(i, c) for i, c in enumerate(picks)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
