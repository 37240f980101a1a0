"""Run Freshet nodes in-process for integration tests: every node on ONE event loop in a thread.

Not a test module; imported by tests/integration/server. Nodes are real `freshet.server.node.Node`
objects (real gRPC, HTTP, Raft on loopback) started from NodeConfigs built by the same
`load_node_config` the CLI uses. Tests talk to them with synchronous gRPC stubs from the test
thread. Every node is stopped and every port released in `close()` (use as a context manager).
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import threading
import urllib.error
import urllib.request

import grpc
from freshet.server import node_status
from freshet.server.config import NodeConfig, load_node_config
from freshet.server.node import Node
from freshet.v1 import broker_pb2_grpc, controller_pb2, controller_pb2_grpc

from tests.support.ports import free_port_block
from tests.support.waiting import wait_until

SECRET = "inprocess-test-secret"


class InProcessCluster:
    """Nodes on one loop thread. Not thread-safe: drive it from the test thread."""

    def __init__(self, root: pathlib.Path, controllers: int = 3, brokers_only: int = 0, extra_sets: list[str] | None = None) -> None:
        self.root = root
        self.extra_sets = list(extra_sets or [])
        self.ports: dict[int, int] = {}
        for node_id in range(1, controllers + brokers_only + 1):
            self.ports[node_id] = free_port_block(3)
        self.controller_ids = list(range(1, controllers + 1))
        self.quorum = ",".join(f"{n}@127.0.0.1:{self.ports[n] + 1}" for n in self.controller_ids)
        self.nodes: dict[int, Node] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="nodes-loop", daemon=True)
        self._thread.start()
        self._channels: dict[int, grpc.Channel] = {}

    def config(self, node_id: int, roles: str | None = None, sets: list[str] | None = None) -> NodeConfig:
        port = self.ports[node_id]
        if roles is None:
            roles = "broker,controller" if node_id in self.controller_ids else "broker"
        flags = {
            "node.id": node_id,
            "data.dir": str(self.root / f"node-{node_id}"),
            "listen": f"127.0.0.1:{port}",
            "http.listen": f"127.0.0.1:{port + 2}",
            "controller.quorum": self.quorum,
            "roles": roles,
        }
        settings = ["metadata.fsync=false", f"cluster.secret={SECRET}", *self.extra_sets, *(sets or [])]
        return load_node_config(flags, settings, None, environ={})

    def _run(self, coroutine, timeout_s: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def start(self, node_id: int, roles: str | None = None, sets: list[str] | None = None) -> Node:
        node = Node(self.config(node_id, roles, sets))

        async def start() -> None:
            await node.start()

        self._run(start())
        self.nodes[node_id] = node
        return node

    def start_all(self, ready_timeout_s: float = 30.0) -> None:
        for node_id in self.ports:
            self.start(node_id)
        for node_id in self.ports:
            self.wait_ready(node_id, ready_timeout_s)

    def stop(self, node_id: int) -> None:
        node = self.nodes.pop(node_id)
        self._run(node.stop(), timeout_s=60)

    def wait_ready(self, node_id: int, timeout_s: float = 30.0) -> None:
        wait_until(lambda: node_status.readiness(self.nodes[node_id])[0], timeout_s, f"node {node_id} ready")

    def active_controller(self, timeout_s: float = 15.0) -> Node:
        def find():
            active = [node for node in self.nodes.values() if node.is_active_controller()]
            return active[0] if len(active) == 1 else None

        return wait_until(find, timeout_s, "one active controller")

    def channel(self, node_id: int) -> grpc.Channel:
        if node_id not in self._channels:
            self._channels[node_id] = grpc.insecure_channel(f"127.0.0.1:{self.ports[node_id]}")
        return self._channels[node_id]

    def admin(self, node_id: int) -> controller_pb2_grpc.ControllerStub:
        return controller_pb2_grpc.ControllerStub(self.channel(node_id))

    def broker(self, node_id: int) -> broker_pb2_grpc.BrokerStub:
        return broker_pb2_grpc.BrokerStub(self.channel(node_id))

    def http(self, node_id: int, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.ports[node_id] + 2}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def status(self, node_id: int) -> dict:
        return json.loads(self.http(node_id, "/status")[1])

    def create_topic(self, node_id: int, name: str, partitions: int, replication_factor: int, request_id: str = "", **kwargs):
        request = controller_pb2.CreateTopicsRequest(
            request_id=request_id,
            topics=[controller_pb2.CreatableTopic(name=name, num_partitions=partitions, replication_factor=replication_factor, **kwargs)],
        )
        return self.admin(node_id).CreateTopics(request, timeout=30)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        for node_id in list(self.nodes):
            try:
                self.stop(node_id)
            except Exception:  # noqa: BLE001 - stop every node even if one fails
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> InProcessCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
