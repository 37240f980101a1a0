"""The node's event loop choice (server/node.py `event_loop_factory`, FRESHET_EVENT_LOOP) and its GIL
switch interval (`gil_switch_interval_s`, FRESHET_GIL_SWITCH_INTERVAL_MS)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import uvloop
from freshet.server.errors import NodeStartError
from freshet.server.node import (
    EVENT_LOOP_ENV,
    GIL_SWITCH_INTERVAL_ENV,
    GIL_SWITCH_INTERVAL_MS_DEFAULT,
    event_loop_factory,
    gil_switch_interval_s,
)


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


def test_the_gil_switch_interval_is_1_ms_unless_the_environment_names_another():
    assert gil_switch_interval_s(GIL_SWITCH_INTERVAL_MS_DEFAULT) == 0.001
    assert gil_switch_interval_s("5") == 0.005
    assert gil_switch_interval_s("0.5") == 0.0005
    for bad in ("0", "-1", "soon", "nan", "1001"):
        with pytest.raises(NodeStartError) as refused:
            gil_switch_interval_s(bad)
        assert GIL_SWITCH_INTERVAL_ENV in str(refused.value) and repr(bad) in str(refused.value)


def test_a_node_process_runs_with_the_switch_interval(monkeypatch):
    """node.run sets it before the node serves, and a bad value refuses to start (exit code 1)."""
    import sys

    from freshet.server import node

    seen: list[float] = []

    async def serve(config):
        return 0

    monkeypatch.setattr(node, "configure_logging", lambda *args: None)
    monkeypatch.setattr(node.malloc_tuning, "keep_freed_memory", lambda: True)
    monkeypatch.setattr(node, "serve", serve)
    monkeypatch.setattr(sys, "setswitchinterval", seen.append)     # the test process keeps its own
    config = type("Config", (), {"node_id": 1, "log_level": "INFO"})()
    monkeypatch.setenv(node.GIL_SWITCH_INTERVAL_ENV, "2")
    assert node.run(config) == 0
    monkeypatch.delenv(node.GIL_SWITCH_INTERVAL_ENV)
    assert node.run(config) == 0
    assert seen == [0.002, 0.001]
    monkeypatch.setenv(node.GIL_SWITCH_INTERVAL_ENV, "fast")
    assert node.run(config) == 1
    assert seen == [0.002, 0.001]
