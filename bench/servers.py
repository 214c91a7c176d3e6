"""Servers the benchmarks run in a separate process: the emulator, or a minimal ASGI baseline app.

``python -m bench.servers emulator [--faults JSON]`` or ``python -m bench.servers minimal``; each binds a
free loopback port, prints ``LISTENING <url>`` and serves until terminated. Both run under the same
uvicorn settings (no access log, no lifespan), so their capacities compare like for like.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sessionforce.emulator import EmulatorConfig, bind_socket, build_state, uvicorn_config

#: What the emulator's demo agent answers to a turn it does not recognise (its fallback), ids fixed.
MINIMAL_REPLY: dict[str, Any] = {
    "messages": [{
        "type": "Inform", "id": "0c5d3f0e-8a8e-4d7e-9a51-3e6d8c1f2a40",
        "feedbackId": "5f8e7c61-3b1d-4f0c-9e0d-2a7c9b8e6d11",
        "planId": "9a3c5e71-2b4d-4c6e-8f0a-1b3d5f7e9c20", "isContentSafe": True, "message": "You said: hello",
        "result": [], "citedReferences": [],
    }],
    "_links": {
        "self": None,
        "messages": {"href": "http://127.0.0.1:1/einstein/ai-agent/v1/sessions/s/messages"},
        "messagesStream": {"href": "http://127.0.0.1:1/einstein/ai-agent/v1/sessions/s/messages/stream"},
        "session": {"href": "http://127.0.0.1:1/einstein/ai-agent/v1/agents/0XxSF0000000DEMOAA/sessions"},
        "end": {"href": "http://127.0.0.1:1/einstein/ai-agent/v1/sessions/s"},
    },
}


def minimal_app() -> Starlette:
    """One route, the send-message path, answering a fixed reply of the emulator's shape (JSON-encoded
    per request, like the emulator)."""

    async def send_message(request: Request) -> Response:
        await request.body()
        return JSONResponse(MINIMAL_REPLY)

    return Starlette(routes=[Route("/einstein/ai-agent/v1/sessions/{sessionId}/messages", send_message,
                                   methods=["POST"])])


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, bind a free loopback port, print it, serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["emulator", "minimal"])
    parser.add_argument("--faults", help="a faults document as JSON (emulator only)")
    args = parser.parse_args(argv)
    sock, url = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    if args.kind == "emulator":
        faults = json.loads(args.faults) if args.faults else None
        config = EmulatorConfig(record_transcripts=False, max_recorded_turns=10_000)
        state = build_state(faults=faults, config=config)
        server_config = uvicorn_config(state, "127.0.0.1", port, log_config=False)
    else:
        server_config = uvicorn.Config(minimal_app(), host="127.0.0.1", port=port, lifespan="off", access_log=False,
                                       log_level="warning", server_header=False, log_config=None,
                                       backlog=4096)
    server = uvicorn.Server(server_config)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    sock.listen(4096)  # connections made before uvicorn runs wait in the backlog instead of being refused
    print(f"LISTENING {url}", flush=True)
    server.run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
