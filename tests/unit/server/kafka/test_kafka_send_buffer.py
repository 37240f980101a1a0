"""The Kafka listener's send buffer per connection (Kafka's socket.send.buffer.bytes).

Goal: every new connection's socket gets SO_SNDBUF = the broker key's current value, on asyncio's
loop and on uvloop (the node's default); -1 keeps the OS default (autotuning); a value above the
kernel's cap (net.core.wmem_max) is not applied (it would be cut to the cap and turn autotuning
off) and is logged once, not per connection; the value is read per connection, so a dynamic
change applies to the next one.
Method: a real KafkaListener on 127.0.0.1 whose `_set_send_buffer` is wrapped to read the
accepted socket's SO_SNDBUF back with getsockopt (Linux reports twice the value set: the kernel
doubles it for its bookkeeping); the cap comes from a file standing in for /proc.
Reference: Kafka SocketServer (socket.send.buffer.bytes, -1 = the OS default); socket(7) SO_SNDBUF.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
import uvloop
from freshet.server.kafka import listener as listener_module
from freshet.server.kafka.listener import KafkaListener

from tests.unit.server.kafka.test_kafka_zero_copy import ScriptedDispatcher

WANTED = 256 * 1024


def accepted_send_buffers(loop: str, values: list[int]) -> list[int]:
    """Connect once per value of `values` (the broker key at that connection) and return each
    accepted socket's SO_SNDBUF as the kernel reports it."""
    seen: list[int] = []
    current = iter(values)
    value = [0]

    def send_buffer_bytes() -> int:
        return value[0]

    async def scenario():
        listener = KafkaListener("127.0.0.1", 0, ScriptedDispatcher(), send_buffer_bytes=send_buffer_bytes)
        original = listener._set_send_buffer

        def observed(sock):
            original(sock)
            seen.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))

        listener._set_send_buffer = observed
        await listener.start()
        try:
            for wanted in current:
                value[0] = wanted
                count = len(seen)
                _reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
                for _ in range(200):
                    if len(seen) > count:
                        break
                    await asyncio.sleep(0.01)
                writer.close()
        finally:
            await listener.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop if loop == "uvloop" else None) as runner:
        runner.run(scenario())
    assert len(seen) == len(values)
    return seen


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_each_connection_gets_the_configured_send_buffer_read_at_accept(loop, tmp_path, monkeypatch):
    cap = tmp_path / "wmem_max"
    cap.write_text(f"{4 * WANTED}\n")
    monkeypatch.setattr(listener_module, "WMEM_MAX_PATH", str(cap))
    configured, os_default, doubled = accepted_send_buffers(loop, [WANTED, -1, 2 * WANTED])
    assert configured == 2 * WANTED                      # Linux reports twice the value set
    assert os_default != 2 * WANTED                      # -1: the kernel's own size
    assert doubled == 4 * WANTED                         # a dynamic change applies to the next connection


def test_a_value_above_the_kernels_cap_keeps_the_os_default_and_warns_once(tmp_path, monkeypatch, caplog):
    cap = tmp_path / "wmem_max"
    cap.write_text(f"{WANTED // 2}\n")
    monkeypatch.setattr(listener_module, "WMEM_MAX_PATH", str(cap))
    with caplog.at_level(logging.WARNING, logger=listener_module.__name__):
        os_default, first, second = accepted_send_buffers("uvloop", [-1, WANTED, WANTED])
    assert first == second == os_default                 # not cut to the cap: the kernel's own size stays
    warnings = [record.getMessage() for record in caplog.records if "wmem_max" in record.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"socket.send.buffer.bytes={WANTED}" in warnings[0]
