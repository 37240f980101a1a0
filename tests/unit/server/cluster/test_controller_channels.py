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
