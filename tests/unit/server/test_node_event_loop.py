"""The node's event loop choice (server/node.py `event_loop_factory`, FRESHET_EVENT_LOOP)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import uvloop
from freshet.server.errors import NodeStartError
from freshet.server.node import EVENT_LOOP_ENV, event_loop_factory


def test_uvloop_is_the_default_and_asyncio_turns_it_off():
    assert event_loop_factory("uvloop") is uvloop.new_event_loop
    assert event_loop_factory("asyncio") is None


def test_an_unknown_loop_name_is_refused_with_the_variable_and_the_choices():
    with pytest.raises(NodeStartError) as raised:
        event_loop_factory("trio")
    message = str(raised.value)
    assert EVENT_LOOP_ENV in message and "'trio'" in message and "uvloop" in message and "asyncio" in message


async def _echo(request_iterator, context):
    while True:
        message = await context.read()
        if message is grpc.aio.EOF:
            return
        await context.write(message[::-1])


async def _bidirectional_round_trips() -> list[bytes]:
    """A grpc.aio server and client on the running loop: a bidirectional stream, as ReplicaFetch
    and ProduceStream are, with reads and writes interleaved one message at a time."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Echo", {"Echo": grpc.stream_stream_rpc_method_handler(_echo)}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    answers = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_stream("/test.Echo/Echo")()
            for payload in (b"abc", b"x" * 70_000, b""):
                await call.write(payload)
                answers.append(await call.read())
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
    finally:
        await server.stop(None)
    return answers


def test_grpc_aio_streams_work_on_the_uvloop_loop():
    with asyncio.Runner(loop_factory=event_loop_factory("uvloop")) as runner:
        answers = runner.run(_bidirectional_round_trips())
        assert isinstance(runner.get_loop(), uvloop.Loop)
    assert answers == [b"cba", b"x" * 70_000, b""]
