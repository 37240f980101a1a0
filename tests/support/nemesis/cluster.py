"""NetnsCluster: tests/support/node_cluster.NodeCluster with each node in its own namespace.

Not a test module. Node i runs `freshet server start` under `ip netns exec {tag}-i` (the process
keeps the pid NodeCluster tracks, as `ip netns exec` execs the command), listening on 10.88.0.i
(gRPC 9092, Raft 9093, HTTP 9094: every node has the same ports, in its own namespace) and
advertising its delay proxy (tests/support/nemesis/proxy.py: gRPC 9192, Raft 9193), so every
connection into a node, from a peer or from the client, can be slowed. The cluster's processes
(nodes and proxies) are all killed by `close()`; the namespaces belong to the Network.

Clock skew: `clock_offsets[node]` (e.g. "+120s") starts that node under libfaketime (Debian's
`faketime` package; LD_PRELOAD with FAKETIME set, without the `faketime` wrapper, which would fork
and hide the node's pid from the signals).

Must be used from a process whose own network namespace is the run's client namespace
(netns.enter_namespace), since HTTP and gRPC go to 10.88.0.x directly.
Thread-safety: as NodeCluster (one thread changes it; /status reads from any thread are fine).
"""

from __future__ import annotations

import json
import pathlib
import sys
import urllib.error
import urllib.request

import grpc

from tests.support.nemesis.netns import Network
from tests.support.node_cluster import NodeCluster, NodeProcess

GRPC_PORT = 9092
PROXY_OFFSET = 100
FAKETIME_LIBRARY = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


class NetnsCluster(NodeCluster):
    """Nodes 1..n (all broker+controller) in the namespaces of `network`, each behind its proxy."""

    def __init__(self, root: pathlib.Path, network: Network, sets: list[str]) -> None:
        super().__init__(root, controllers=len(network.node_ids), sets=sets)
        self.network = network
        self.ports = {node_id: GRPC_PORT for node_id in network.node_ids}
        self.quorum = ",".join(f"{n}@{network.address(n)}:{GRPC_PORT + PROXY_OFFSET + 1}" for n in self.controller_ids)
        self.clock_offsets: dict[int, str] = {}
        self.proxies: dict[int, NodeProcess] = {}
        self.delays: dict[int, dict[str, list[float]]] = {n: {} for n in network.node_ids}

    def argv(self, node_id: int, roles: str) -> list[str]:
        address = self.network.address(node_id)
        argv = [
            "ip", "netns", "exec", self.network.namespace(node_id),
        ]
        if node_id in self.clock_offsets:
            argv += ["env", f"LD_PRELOAD={FAKETIME_LIBRARY}", f"FAKETIME={self.clock_offsets[node_id]}"]
        argv += [
            sys.executable, "-m", "freshet.cli.main", "server", "start",
            "--node-id", str(node_id),
            "--data-dir", str(self.root / f"node-{node_id}"),
            "--listen", f"{address}:{GRPC_PORT}",
            "--raft-listen", f"{address}:{GRPC_PORT + 1}",
            "--http-listen", f"{address}:{GRPC_PORT + 2}",
            "--advertised", f"{address}:{GRPC_PORT + PROXY_OFFSET}",
            "--controller-quorum", self.quorum,
            "--roles", roles,
        ]
        for setting in self.sets:
            argv += ["--set", setting]
        return argv

    def start_proxy(self, node_id: int) -> NodeProcess:
        """The node's delay proxy (gRPC and Raft), started once per run."""
        address = self.network.address(node_id)
        control = self.root / f"proxy-{node_id}.json"
        control.write_text("{}")
        argv = ["ip", "netns", "exec", self.network.namespace(node_id), sys.executable, "-m", "tests.support.nemesis.proxy",
                "--control", str(control),
                "--map", f"{address}:{GRPC_PORT + PROXY_OFFSET}:{GRPC_PORT}",
                "--map", f"{address}:{GRPC_PORT + PROXY_OFFSET + 1}:{GRPC_PORT + 1}"]
        process = NodeProcess(node_id, argv, self.root / f"proxy-{node_id}.log", env=None)
        self.proxies[node_id] = process
        return process

    def set_delay(self, source: str | int, target: int, delay_ms: float, jitter_ms: float) -> None:
        """Delay every connection from member `source` into node `target` (0, 0: no delay)."""
        table = self.delays[target]
        if delay_ms == 0 and jitter_ms == 0:
            table.pop(self.network.address(source), None)
        else:
            table[self.network.address(source)] = [delay_ms, jitter_ms]
        control = self.root / f"proxy-{target}.json"
        staging = control.with_suffix(".tmp")
        staging.write_text(json.dumps(table))
        staging.replace(control)

    def clear_delays(self) -> None:
        for target in self.delays:
            for source in list(self.delays[target]):
                self.delays[target].pop(source)
            self.set_delay("client", target, 0, 0)

    def bootstrap(self) -> str:
        return ",".join(f"{self.network.address(n)}:{GRPC_PORT + PROXY_OFFSET}" for n in sorted(self.ports))

    def http(self, node_id: int, path: str, timeout_s: float = 2.0) -> tuple[int, str] | None:
        url = f"http://{self.network.address(node_id)}:{GRPC_PORT + 2}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except (urllib.error.URLError, OSError):
            return None

    def channel(self, node_id: int) -> grpc.Channel:
        if node_id not in self._channels:
            self._channels[node_id] = grpc.insecure_channel(
                f"{self.network.address(node_id)}:{GRPC_PORT}",
                options=[("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500)],
            )
        return self._channels[node_id]

    def close(self) -> None:
        super().close()
        for process in self.proxies.values():
            try:
                process.kill()
            except Exception:  # noqa: BLE001 - kill every child whatever happens
                pass

    def pids(self) -> list[int]:
        return [p.pid for p in self.all_processes] + [p.pid for p in self.proxies.values()]
