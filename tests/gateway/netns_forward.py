"""A TCP forwarder from a gateway host's loopback to the emulator on the hub, for the multi-host test.

Usage: ``python -m tests.gateway.netns_forward PORT HOST:PORT`` (run inside a gateway's network namespace).
Settings refuse ``http://`` for an org anywhere but loopback (it would carry the client secret in the
clear), and the emulator speaks plain HTTP: so each gateway host reaches it as ``http://127.0.0.1:PORT``,
through this forwarder, over its own link to the hub. Cutting that link cuts the gateway off from the
org as well, as a host dropping off the network would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def main(port: int, target: str) -> None:
    host, _, target_port = target.rpartition(":")

    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(target_port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, upstream_writer), _pump(upstream_reader, client_writer))

    server = await asyncio.start_server(forward, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
