"""Real `freshet server start` processes on loopback, and a metadata recorder, for cluster tests.

Not a test module; imported by tests/cluster tests and tests/bench/controller_perf.py. Ports come
from tests.support.ports.free_port_block (one place for free ports): node i gets gRPC P, Raft P+1
(the controller-listener convention) and HTTP P+2. Every process started is tracked by pid and
killed in `close()` (use NodeCluster as a context manager); the recorder thread is stopped too.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc
from freshet.metadata import snapshot, state_machine
from freshet.metadata.image import EMPTY_IMAGE, MetadataImage
from freshet.v1 import broker_pb2_grpc, controller_pb2, controller_pb2_grpc

from tests.support.ports import free_port_block
from tests.support.waiting import wait_until

SECRET = "node-cluster-test-secret"


class NodeProcess:
    """One `freshet server start` child. Not thread-safe (one test thread)."""

    def __init__(self, node_id: int, argv: list[str], log_path: pathlib.Path, env: dict[str, str]) -> None:
        self.node_id = node_id
        self.log_path = log_path
        log = open(log_path, "ab")
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        finally:
            log.close()
        self.pid = self.process.pid
        self.started_at = time.monotonic()

    @property
    def is_alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL (kill -9) and reap."""
        if self.is_alive:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout_s: float) -> int | None:
        """SIGTERM; the exit code, or None when it did not exit in time (it is then still alive)."""
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class NodeCluster:
    """Nodes of one cluster (processes), restartable by id. Not thread-safe."""

    def __init__(
        self,
        root: pathlib.Path,
        controllers: int = 3,
        extra_nodes: int = 0,
        sets: list[str] | None = None,
        auto_balance: bool = False,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.controller_ids = list(range(1, controllers + 1))
        self.ports = {node_id: free_port_block(3) for node_id in range(1, controllers + extra_nodes + 1)}
        self.quorum = ",".join(f"{n}@127.0.0.1:{self.ports[n] + 1}" for n in self.controller_ids)
        # Cluster tests pin replica assignments to stage their faults; the replica balancer (on by
        # default in a real cluster) would move those replicas. Tests of the balancer turn it on.
        self.sets = list(sets or []) + ([] if auto_balance else ["auto.balance.enable=false"])
        self.roles: dict[int, str] = {}
        self.processes: dict[int, NodeProcess] = {}
        self.all_processes: list[NodeProcess] = []
        self._channels: dict[int, grpc.Channel] = {}

    def argv(self, node_id: int, roles: str) -> list[str]:
        port = self.ports[node_id]
        argv = [
            sys.executable, "-m", "freshet.cli.main", "server", "start",
            "--node-id", str(node_id),
            "--data-dir", str(self.root / f"node-{node_id}"),
            "--listen", f"127.0.0.1:{port}",
            "--http-listen", f"127.0.0.1:{port + 2}",
            "--controller-quorum", self.quorum,
            "--roles", roles,
        ]
        for setting in self.sets:
            argv += ["--set", setting]
        return argv

    def start(self, node_id: int, roles: str | None = None) -> NodeProcess:
        assert node_id not in self.processes or not self.processes[node_id].is_alive
        if roles is None:
            roles = self.roles.get(node_id) or ("broker,controller" if node_id in self.controller_ids else "broker")
        self.roles[node_id] = roles
        env = dict(os.environ)
        env["FRESHET_CLUSTER_SECRET"] = SECRET
        process = NodeProcess(node_id, self.argv(node_id, roles), self.root / f"node-{node_id}.log", env)
        self.processes[node_id] = process
        self.all_processes.append(process)
        return process

    def alive(self) -> list[int]:
        return sorted(node_id for node_id, process in self.processes.items() if process.is_alive)

    # -- HTTP ------------------------------------------------------------------------------------

    def http(self, node_id: int, path: str, timeout_s: float = 2.0) -> tuple[int, str] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[node_id] + 2}{path}", timeout=timeout_s) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except (urllib.error.URLError, OSError):
            return None

    def status(self, node_id: int) -> dict | None:
        answer = self.http(node_id, "/status")
        return None if answer is None or answer[0] != 200 else json.loads(answer[1])

    def is_ready(self, node_id: int) -> bool:
        answer = self.http(node_id, "/readyz")
        return answer is not None and answer[0] == 200

    def wait_ready(self, node_ids=None, timeout_s: float = 60.0) -> None:
        for node_id in node_ids or self.alive():
            try:
                wait_until(lambda node_id=node_id: self.is_ready(node_id), timeout_s, f"node {node_id} ready", 0.05)
            except AssertionError:
                raise AssertionError(f"node {node_id} not ready:\n{self.processes[node_id].log_tail()}") from None

    def active_controller(self, among=None, timeout_s: float = 15.0, exclude: int | None = None) -> int:
        """The node reporting itself active controller (exactly one among the live ones)."""

        def find():
            active = []
            for node_id in among or self.alive():
                if node_id == exclude:
                    continue
                found = self.status(node_id)
                if found is not None and found["is_active_controller"]:
                    active.append(node_id)
            return active[0] if len(active) == 1 else None

        return wait_until(find, timeout_s, "one active controller", 0.02)

    # -- gRPC ------------------------------------------------------------------------------------

    def channel(self, node_id: int) -> grpc.Channel:
        if node_id not in self._channels:
            self._channels[node_id] = grpc.insecure_channel(
                f"127.0.0.1:{self.ports[node_id]}",
                options=[("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500)],
            )
        return self._channels[node_id]

    def admin(self, node_id: int) -> controller_pb2_grpc.ControllerStub:
        return controller_pb2_grpc.ControllerStub(self.channel(node_id))

    def broker(self, node_id: int) -> broker_pb2_grpc.BrokerStub:
        return broker_pb2_grpc.BrokerStub(self.channel(node_id))

    def create_topic(self, node_id: int, name: str, partitions: int = 1, replication_factor: int = 1,
                     request_id: str = "", assignments=None, timeout_s: float = 30.0):
        topic = controller_pb2.CreatableTopic(name=name)
        if assignments:
            topic.assignments.extend(controller_pb2.ReplicaAssignment(replicas=r) for r in assignments)
        else:
            topic.num_partitions = partitions
            topic.replication_factor = replication_factor
        request = controller_pb2.CreateTopicsRequest(request_id=request_id, topics=[topic])
        return self.admin(node_id).CreateTopics(request, timeout=timeout_s)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        for process in self.all_processes:
            try:
                if process.is_alive:
                    os.kill(process.pid, signal.SIGCONT)
                process.kill()
            except Exception:  # noqa: BLE001 - kill every child whatever happens
                pass

    def __enter__(self) -> NodeCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MetadataRecorder:
    """Follows the metadata log with WatchMetadata (any live controller, reconnecting) and keeps
    every applied command with its result and the time it arrived here.

    Thread-safe: the recorder thread appends under a condition; readers take snapshots.
    """

    def __init__(self, cluster: NodeCluster) -> None:
        self.cluster = cluster
        self.image: MetadataImage = EMPTY_IMAGE
        self.entries: list[tuple[int, bytes, object, float]] = []    # (offset, command, result, arrival)
        # (node id, broker epoch, offset, arrival) each time a registered broker turned fenced.
        self.fencings: list[tuple[int, int, int, float]] = []
        self.snapshots = 0
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metadata-recorder", daemon=True)
        self._call = None

    def start(self) -> MetadataRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(10)

    def _run(self) -> None:
        attempt = 0
        while not self._stopped.is_set():
            controllers = [n for n in self.cluster.controller_ids if n in self.cluster.alive()] or self.cluster.controller_ids
            target = controllers[attempt % len(controllers)]
            attempt += 1
            try:
                stub = self.cluster.admin(target)
                from_offset = self.image.offset if self.image.offset > 0 else -1
                self._call = stub.WatchMetadata(controller_pb2.WatchMetadataRequest(from_offset=from_offset, watcher="test recorder"))
                for message in self._call:
                    self._apply(message)
            except grpc.RpcError:
                pass
            time.sleep(0.05)

    def _apply(self, message) -> None:
        arrival = time.monotonic()
        with self._changed:
            if message.HasField("snapshot"):
                image = snapshot.decode_snapshot(message.snapshot.snapshot)
                if image.offset > self.image.offset:
                    self.image = image
                    self.snapshots += 1
            else:
                if message.deltas.deltas:
                    assert message.deltas.previous_offset == self.image.offset, (message.deltas.previous_offset, self.image.offset)
                for delta in message.deltas.deltas:
                    before = self.image
                    self.image, result = state_machine.apply_bytes(self.image, delta.command, delta.offset)
                    self.entries.append((delta.offset, delta.command, result, arrival))
                    for node_id, broker in self.image.brokers.items():
                        old = before.brokers.get(node_id)
                        if broker.is_fenced and old is not None and not old.is_fenced and old.broker_epoch == broker.broker_epoch:
                            self.fencings.append((node_id, broker.broker_epoch, delta.offset, arrival))
                        if old is not None and not old.is_fenced and old.broker_epoch != broker.broker_epoch:
                            # A new incarnation replaced an unfenced one (fenced in the same batch).
                            self.fencings.append((node_id, old.broker_epoch, delta.offset, arrival))
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[MetadataImage], object], timeout_s: float, what: str):
        """The first truthy predicate(image) (checked at every change), with its arrival time."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                value = predicate(self.image)
                if value:
                    return value, time.monotonic()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (metadata at offset {self.image.offset})")
                self._changed.wait(remaining)

    def history(self) -> list[tuple[int, bytes, object, float]]:
        with self._changed:
            return list(self.entries)
