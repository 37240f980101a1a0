"""ControllerChannels.reset: a retired channel's replacement uses a new TCP connection (issue 16).

After a partition heals, bytes sent into it wait out TCP's retransmission backoff; a broker whose
heartbeat stream stalled on such a connection was fenced although it sat in the connected
majority. `reset` must therefore yield a new connection, not a new channel on the old one (gRPC
shares connections between channels of one target and options through its global subchannel
pool). Method: a real grpc.aio server on loopback whose DescribeCluster answers with the caller's
peer address (its client port identifies the connection).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from freshet.server.cluster import channels as channels_module
from freshet.server.cluster.channels import ControllerChannels
from freshet.server.config import HostPort
from freshet.v1 import controller_pb2, controller_pb2_grpc


class PeerEcho(controller_pb2_grpc.ControllerServicer):
    async def DescribeCluster(self, request, context):
        return controller_pb2.DescribeClusterResponse(cluster_id=context.peer())


def test_reset_opens_a_new_connection_and_closes_the_old_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channels_module, "RETIRED_GRACE_S", 0.1)

    async def scenario() -> tuple[list[str], int]:
        server = grpc.aio.server()
        controller_pb2_grpc.add_ControllerServicer_to_server(PeerEcho(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channels = ControllerChannels({1: HostPort("127.0.0.1", port)}, self_id=2)
        try:
            peers = []
            for _ in range(2):                                 # one channel: one connection
                response = await channels.stub(1).DescribeCluster(controller_pb2.DescribeClusterRequest(), timeout=5)
                peers.append(response.cluster_id)
            old = channels._channels[1]
            channels.reset(1)
            response = await channels.stub(1).DescribeCluster(controller_pb2.DescribeClusterRequest(), timeout=5)
            peers.append(response.cluster_id)
            await asyncio.sleep(0.5)
            with pytest.raises(grpc.aio.UsageError):          # closed after the grace
                await old.unary_unary("/freshet.v1.Controller/DescribeCluster")(b"", timeout=1)
            return peers, len(channels._retired)
        finally:
            await channels.close()
            await server.stop(None)

    peers, retired_after = asyncio.run(scenario())
    assert peers[0] == peers[1], peers
    assert peers[2] != peers[0], f"reset reused the old connection: {peers}"
    assert retired_after == 0


class HangsOnce(controller_pb2_grpc.ControllerServicer):
    """DescribeCluster: the first call never answers (a controller whose replies are cut off),
    later calls answer at once."""

    def __init__(self) -> None:
        self.calls = 0

    async def DescribeCluster(self, request, context):
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(60)
        return controller_pb2.DescribeClusterResponse(cluster_id=f"call {self.calls}")


def _serve(servicer):
    server = grpc.aio.server()
    controller_pb2_grpc.add_ControllerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    return server, port


def _describe_through_forward(channels: ControllerChannels):
    """DescribeCluster forwarded to controller 1 (the hint), with 10 s to complete."""
    return channels_module.forward(
        channels, "DescribeCluster", controller_pb2.DescribeClusterRequest(), time.monotonic() + 10,
        lambda: 1, skip_self=False,
    )


def test_forward_moves_on_when_its_call_is_cancelled_by_a_retired_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    """gRPC cancels the calls still running on a channel closed after `reset`'s grace, and the
    awaiting task sees asyncio.CancelledError. `forward` must take that as "no answer" and try
    again on a new connection, not end its caller as if the caller had been cancelled (an
    AlterPartition ended so left its change pending forever: issue 16)."""
    monkeypatch.setattr(channels_module, "RETIRED_GRACE_S", 0.1)

    async def scenario():
        servicer = HangsOnce()
        server, port = _serve(servicer)
        await server.start()
        channels = ControllerChannels({1: HostPort("127.0.0.1", port)}, self_id=2)
        try:
            call = asyncio.ensure_future(_describe_through_forward(channels))
            await asyncio.sleep(0.3)                           # the first call hangs on the server
            channels.reset(1)                                  # the heartbeats' verdict: retire it
            return await asyncio.wait_for(call, 5), servicer.calls
        finally:
            await channels.close()
            await server.stop(None)

    response, calls = asyncio.run(scenario())
    assert (response.cluster_id, calls) == ("call 2", 2)


def test_forward_still_ends_when_its_own_task_is_cancelled() -> None:
    async def scenario():
        server, port = _serve(HangsOnce())
        await server.start()
        channels = ControllerChannels({1: HostPort("127.0.0.1", port)}, self_id=2)
        try:
            call = asyncio.ensure_future(_describe_through_forward(channels))
            await asyncio.sleep(0.3)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            return call.cancelled()
        finally:
            await channels.close()
            await server.stop(None)

    assert asyncio.run(scenario())


class Silent(controller_pb2_grpc.ControllerServicer):
    async def DescribeCluster(self, request, context):
        await asyncio.sleep(60)


def test_forward_with_an_attempt_timeout_moves_on_from_a_silent_controller() -> None:
    """A controller that takes the request and never answers (its replies cut off) holds it for
    one attempt timeout, not until the deadline: the next controller answers."""

    async def scenario():
        silent, silent_port = _serve(Silent())
        answering, answering_port = _serve(HangsOnce())
        await silent.start()
        await answering.start()
        channels = ControllerChannels(
            {1: HostPort("127.0.0.1", silent_port), 2: HostPort("127.0.0.1", answering_port)}, self_id=3
        )
        try:
            started = time.monotonic()
            response = await channels_module.forward(
                channels, "DescribeCluster", controller_pb2.DescribeClusterRequest(), started + 10,
                lambda: 1, skip_self=False, attempt_timeout_s=0.5,
            )
            return response, time.monotonic() - started
        finally:
            await channels.close()
            await silent.stop(None)
            await answering.stop(None)

    response, took = asyncio.run(scenario())
    assert response.cluster_id.startswith("call ")
    assert took < 3, f"waited {took:.1f} s on the silent controller"
