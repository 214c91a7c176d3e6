"""Another worker process: one turn on one conversation through a shared store, reported as one JSON line.

Usage: ``python -m tests.adversarial._worker '<json>'`` with keys ``url`` (emulator), ``client_id``,
``secret``, ``agent_id``, ``store`` (URL), ``conversation``, ``text`` and optional ``options``.
Prints ``{"ok": true, "session_id": ..., "sequence_id": ..., "text": ...}`` or ``{"ok": false, "error": ...,
"type": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from tests.adversarial import _harness


async def main(args: dict[str, Any]) -> dict[str, Any]:
    store = _harness.open_store(args["store"])
    async with _harness.client(args["url"], client_id=args["client_id"], secret=args["secret"],
                               agent_id=args["agent_id"], store=store) as owner:
        conv = _harness.conversation(owner, args["conversation"], **args.get("options", {}))
        try:
            reply = await conv.send(args["text"])
        except Exception as exc:
            return {"ok": False, "type": type(exc).__name__, "error": str(exc)}
        finally:
            await store.aclose()
        return {"ok": True, "session_id": reply.session_id, "sequence_id": reply.sequence_id, "text": reply.text}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
