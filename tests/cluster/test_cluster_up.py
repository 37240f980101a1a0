"""`freshet cluster up` end to end: start, JSON bootstrap, readiness, SIGTERM, restart with data.

Goal (INTERFACE.md): `cluster up --json` prints one JSON line once every node is ready, stays in the
foreground, stops every child on SIGTERM and exits 0; re-running on the same data directory
restarts the same cluster with its data. Method: run the real console entry point as a child
process on a free block of ports; check the pids of every node are gone after the stop; restart
and find the topic (and cluster id) created during the first run. Every process is killed by pid
in the fixture's finally, whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import grpc
import pytest
from freshet.v1 import broker_pb2, broker_pb2_grpc, controller_pb2, controller_pb2_grpc

from tests.support.ports import free_port_block

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


class Supervisor:
    """A `freshet cluster up` child; its JSON line read by a thread. Not thread-safe."""

    def __init__(self, data_dir, base_port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "freshet.cli.main", "cluster", "up", "--nodes", "3",
             "--data-dir", str(data_dir), "--base-port", str(base_port), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout, self.lines), daemon=True)
        self._errors = threading.Thread(target=self._read, args=(self.process.stderr, self.errors), daemon=True)
        self._reader.start()
        self._errors.start()
        self.node_pids: list[int] = []

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def bootstrap(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while not self.lines:
            assert self.process.poll() is None, f"cluster up exited early: {''.join(self.errors)}"
            assert time.monotonic() < deadline, f"no bootstrap line after {timeout_s} s: {''.join(self.errors)}"
            time.sleep(0.05)
        found = json.loads(self.lines[0])
        self.node_pids = [node["pid"] for node in found["nodes"]]
        return found

    def stop(self, timeout_s: float) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill_everything(self) -> None:
        for pid in [*self.node_pids, self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(10)


def pid_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as file:           # a zombie is gone too (exited, not yet reaped)
        return file.read().split(")")[-1].split()[0] == "Z"


def test_cluster_up_starts_prints_json_stops_on_sigterm_and_restarts_with_its_data(tmp_path):
    base_port = free_port_block(23)
    data_dir = tmp_path / "freshet-data"
    first = Supervisor(data_dir, base_port)
    try:
        found = first.bootstrap(timeout_s=90)
        assert found["bootstrap"] == ",".join(f"127.0.0.1:{base_port + i * 10}" for i in range(3))
        assert [(n["id"], n["listen"], n["http"]) for n in found["nodes"]] == [
            (i, f"127.0.0.1:{base_port + (i - 1) * 10}", f"http://127.0.0.1:{base_port + (i - 1) * 10 + 2}") for i in (1, 2, 3)
        ]
        assert len(first.lines) == 1
        assert "node-<i>/node.log" in "".join(first.errors)
        secret = data_dir / "cluster.secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_text().strip()) >= 32
        for i in (1, 2, 3):
            assert (data_dir / f"node-{i}" / "node.log").stat().st_size > 0
        with grpc.insecure_channel(f"127.0.0.1:{base_port + 10}") as channel:
            response = controller_pb2_grpc.ControllerStub(channel).CreateTopics(
                controller_pb2.CreateTopicsRequest(topics=[controller_pb2.CreatableTopic(name="kept", num_partitions=3, replication_factor=3)]),
                timeout=30,
            )
            assert response.results[0].error.code == 0, response
            cluster_id = controller_pb2_grpc.ControllerStub(channel).DescribeCluster(controller_pb2.DescribeClusterRequest(), timeout=5).cluster_id
        assert first.stop(timeout_s=60) == 0, "".join(first.errors)
        assert all(pid_is_gone(pid) for pid in first.node_pids), first.node_pids
        assert "stopped" in "".join(first.errors)
    finally:
        first.kill_everything()

    again = Supervisor(data_dir, base_port)
    try:
        again.bootstrap(timeout_s=90)
        with grpc.insecure_channel(f"127.0.0.1:{base_port + 20}") as channel:
            metadata = broker_pb2_grpc.BrokerStub(channel).Metadata(broker_pb2.MetadataRequest(topics=["kept"]), timeout=10)
            described = controller_pb2_grpc.ControllerStub(channel).DescribeCluster(controller_pb2.DescribeClusterRequest(), timeout=5)
        assert metadata.topics[0].error.code == 0 and len(metadata.topics[0].partitions) == 3
        assert described.cluster_id == cluster_id
        assert [b.state for b in described.brokers] == [controller_pb2.BROKER_ACTIVE] * 3
        assert again.stop(timeout_s=60) == 0
        assert all(pid_is_gone(pid) for pid in again.node_pids)
    finally:
        again.kill_everything()
