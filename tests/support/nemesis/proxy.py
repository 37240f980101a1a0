"""A delaying TCP proxy in front of one node's gRPC and Raft ports: the nemesis' delay and jitter.

`tc netem` is not available on this kernel (CONFIG_NET_SCH_NETEM is not set), so delay and jitter
are made in user space: each node advertises this proxy's ports (gRPC P+100, Raft P+101) instead
of its own, so every connection into the node, from a peer or a client, passes through it. A JSON
control file, re-read when it changes, maps a source address to [delay_ms, jitter_ms]; every chunk
read from a connection of that source, in either direction, is delivered delay + uniform(0,
jitter) ms later, never before the chunk read before it (TCP is a byte stream: reordering packets
under it would be invisible to the application, so this proxy does not pretend to reorder).
Changes apply to connections already open. Run as
`python -m tests.support.nemesis.proxy --control FILE --map HOST:LISTEN:TARGET ...` inside the
node's namespace; the nemesis runner starts and kills it by pid.

Thread-safety: one asyncio loop, one thread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time

_CHUNK = 65536


class Delays:
    """The control file's current delays (source address -> (delay_ms, jitter_ms))."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.mtime = 0.0
        self.table: dict[str, tuple[float, float]] = {}

    def refresh(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            return
        if mtime != self.mtime:
            self.mtime = mtime
            try:
                with open(self.path) as handle:
                    raw = json.load(handle)
            except (OSError, ValueError):
                return
            self.table = {source: (float(pair[0]), float(pair[1])) for source, pair in raw.items()}

    def delay_s(self, source: str) -> float:
        delay_ms, jitter_ms = self.table.get(source, (0.0, 0.0))
        return (delay_ms + random.uniform(0.0, jitter_ms)) / 1000.0


async def _pump(reader, writer, delays: Delays, source: str) -> None:
    """Copy reader -> writer, each chunk held for its delay, in order."""
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            if chunk is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()

    sender = asyncio.ensure_future(deliver())
    last_due = 0.0
    try:
        while True:
            chunk = await reader.read(_CHUNK)
            if not chunk:
                break
            last_due = max(last_due, time.monotonic() + delays.delay_s(source))
            await queue.put((last_due, chunk))
    except (ConnectionError, OSError):
        pass
    finally:
        await queue.put((0.0, None))
        try:
            await sender
        except (ConnectionError, OSError):
            pass
        writer.close()


async def _serve(host: str, listen_port: int, target_port: int, delays: Delays) -> asyncio.AbstractServer:
    async def handle(client_reader, client_writer) -> None:
        source = client_writer.get_extra_info("peername")[0]
        try:
            server_reader, server_writer = await asyncio.open_connection(host, target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, server_writer, delays, source),
                             _pump(server_reader, client_writer, delays, source))

    return await asyncio.start_server(handle, host, listen_port, reuse_address=True)


async def _main(control: str, mappings: list[str]) -> None:
    delays = Delays(control)
    servers = []
    for mapping in mappings:
        host, listen_port, target_port = mapping.rsplit(":", 2)
        servers.append(await _serve(host, int(listen_port), int(target_port), delays))
    while True:
        delays.refresh()
        await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--control", required=True, help="JSON file: {source address: [delay_ms, jitter_ms]}")
    parser.add_argument("--map", action="append", required=True, help="HOST:LISTEN_PORT:TARGET_PORT")
    arguments = parser.parse_args()
    asyncio.run(_main(arguments.control, arguments.map))


if __name__ == "__main__":
    main()
