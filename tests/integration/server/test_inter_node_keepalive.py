"""Node-to-node gRPC keepalive (issue 16): a connection to a peer that went silent is closed.

In-process: a grpc.aio server with the node's server options, a channel with the node's channel
options, and between them a TCP relay that can freeze (stop relaying without closing, as a
blackhole route does: the kernel still takes bytes, nothing answers). A stream through a frozen
relay must fail UNAVAILABLE within the keepalive bound instead of waiting for TCP; through a live
but idle relay it must stay up (the server permits the pings: no GOAWAY too_many_pings).
"""

from __future__ import annotations

import asyncio
import time

import grpc
from freshet.server.cluster.channels import CHANNEL_OPTIONS, KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS
from freshet.server.node import SERVER_OPTIONS
from freshet.server.security.node_identity import inter_node_channel

METHOD = "/test.Echo/Stream"
BOUND_S = (KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS) / 1000 + 1.5


class FreezableRelay:
    """A TCP relay to `target_port`; `frozen` stops it relaying in both directions."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = asyncio.Event()
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                writer.close()
                return
            if self.frozen.is_set():
                await asyncio.Event().wait()             # silent from now on, connection kept open
            writer.write(data)
            await writer.drain()

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


async def echo(requests, context):
    async for request in requests:
        yield request


async def run(freeze: bool) -> tuple[str, float]:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    handler = grpc.stream_stream_rpc_method_handler(echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {"Stream": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    relay = FreezableRelay(port)
    channel = inter_node_channel(f"127.0.0.1:{await relay.start()}", CHANNEL_OPTIONS, None)
    try:
        call = channel.stream_stream(METHOD)()
        await call.write(b"one")
        assert await asyncio.wait_for(call.read(), 5) == b"one"
        if freeze:
            relay.frozen.set()
            await call.write(b"two")                     # its bytes reach the relay, never the server
        started = time.monotonic()
        try:
            reply = await asyncio.wait_for(call.read(), BOUND_S + 1)
            outcome = f"reply {reply!r}"
        except grpc.aio.AioRpcError as error:
            outcome = error.code().name
        except TimeoutError:
            outcome = "still waiting"
        if not freeze:
            outcome = f"idle {outcome}"
        return outcome, time.monotonic() - started
    finally:
        await channel.close()
        relay.close()
        await server.stop(None)


def test_a_stream_to_a_silent_peer_fails_within_the_keepalive_bound() -> None:
    outcome, waited = asyncio.run(run(freeze=True))
    assert outcome == "UNAVAILABLE", (outcome, waited)
    assert waited <= BOUND_S, waited


def test_an_idle_stream_to_a_live_peer_survives_the_pings() -> None:
    async def idle_then_echo() -> str:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        handler = grpc.stream_stream_rpc_method_handler(echo)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {"Stream": handler}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = inter_node_channel(f"127.0.0.1:{port}", CHANNEL_OPTIONS, None)
        try:
            call = channel.stream_stream(METHOD)()
            await call.write(b"one")
            assert await asyncio.wait_for(call.read(), 5) == b"one"
            await asyncio.sleep(4 * KEEPALIVE_TIME_MS / 1000)     # idle: only pings on the wire
            await call.write(b"two")
            return await asyncio.wait_for(call.read(), 5)
        finally:
            await channel.close()
            await server.stop(None)

    assert asyncio.run(idle_then_echo()) == b"two"
