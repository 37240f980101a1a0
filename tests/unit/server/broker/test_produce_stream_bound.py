"""ProduceStream's in-flight bound: a client that writes far more requests than it lets the broker
answer is held (the broker stops reading its stream) instead of growing the broker's memory.

A real grpc.aio server hosts BrokerService; its data plane is a fake whose produce path appends
nothing and answers only when the test says so, so the count of requests it was given is exactly
what the broker read from the stream.
"""

from __future__ import annotations

import asyncio
import types

import grpc
from freshet.server.broker.service import BrokerService
from freshet.server.limits import REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX
from freshet.server.security import rules
from freshet.v1 import broker_pb2, broker_pb2_grpc


class _HeldProducePath:
    """Records every produce request; answers one only through `answer_oldest`."""

    def __init__(self) -> None:
        self.requests: list[broker_pb2.ProduceRequest] = []
        self._pending: list[tuple[broker_pb2.ProduceRequest, object]] = []

    def produce(self, request, on_done, refused=None):
        self.requests.append(request)
        self._pending.append((request, on_done))

    def answer_oldest(self, count: int) -> None:
        for _ in range(count):
            request, on_done = self._pending.pop(0)
            on_done(broker_pb2.ProduceResponse(correlation_id=request.correlation_id))


def _service(produce_path: _HeldProducePath, in_flight_max: int) -> BrokerService:
    data_plane = types.SimpleNamespace(
        produce_path=produce_path,
        metrics=types.SimpleNamespace(observe_request=lambda api, seconds: None),
    )
    config = types.SimpleNamespace(node_id=1)
    service = BrokerService(config, publisher=None, channels=None, controller_hint=None,
                            data_plane=data_plane, authorizer=rules.allow_all())
    service.stream_in_flight_max = in_flight_max
    return service


async def _settle(condition, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


async def _flood(in_flight_max: int, requests: int) -> dict:
    produce_path = _HeldProducePath()
    server = grpc.aio.server()
    _service(produce_path, in_flight_max).register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    seen: dict = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = broker_pb2_grpc.BrokerStub(channel).ProduceStream()

            async def write_all() -> None:
                for correlation_id in range(1, requests + 1):
                    await call.write(broker_pb2.ProduceRequest(acks=1, correlation_id=correlation_id))
                await call.done_writing()

            writer = asyncio.create_task(write_all())
            await _settle(lambda: len(produce_path.requests) >= min(requests, in_flight_max))
            await asyncio.sleep(0.3)            # time for any further read the bound should stop
            seen["read_while_unanswered"] = len(produce_path.requests)
            answers = min(5, len(produce_path.requests))
            produce_path.answer_oldest(answers)
            await _settle(lambda: len(produce_path.requests) >= min(requests, in_flight_max + answers))
            await asyncio.sleep(0.3)
            seen["read_after_5_answers"] = len(produce_path.requests)
            answered = []
            while len(answered) < requests:
                while produce_path._pending:
                    produce_path.answer_oldest(1)
                response = await asyncio.wait_for(call.read(), 5)
                answered.append(response.correlation_id)
            await writer
            seen["answered"] = answered
            seen["end"] = await asyncio.wait_for(call.read(), 5)
    finally:
        await server.stop(None)
    return seen


def test_a_produce_stream_stops_being_read_at_its_in_flight_bound_and_loses_nothing():
    seen = asyncio.run(_flood(in_flight_max=8, requests=40))
    assert seen["read_while_unanswered"] == 8, "the broker read past its bound while nothing was answered"
    assert seen["read_after_5_answers"] == 13, "each answer lets exactly one more request in"
    assert seen["answered"] == list(range(1, 41)), "every request is read and answered, in order"
    assert seen["end"] is grpc.aio.EOF


def test_the_bound_is_the_kafka_listeners_and_holds_well_above_what_clients_send():
    assert REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX == 64
    seen = asyncio.run(_flood(in_flight_max=REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX, requests=5))
    assert seen["read_while_unanswered"] == 5, "a client within its 5 in flight is never held"
    assert seen["answered"] == [1, 2, 3, 4, 5]
