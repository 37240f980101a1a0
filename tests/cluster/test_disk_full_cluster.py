"""A full disk under a running acks=all producer: nothing crashes, nothing is lost, produce resumes.

Goal (README "A full disk"; issue 19): when another process fills a node's filesystem, Freshet
refuses new produce with a retriable KAFKA_STORAGE_ERROR naming the directory and the free bytes,
keeps serving reads, keeps the metadata quorum writable, keeps deleting, shows the state in
/metrics, /readyz and `cluster status`, and accepts produce again by itself once space is back;
every acknowledged record is then read back exactly once and in order, and a node killed and
restarted afterwards recovers without cutting a torn batch.

Method: three combined nodes (gRPC and Kafka listeners), each data directory on its own 80 MiB tmpfs (mounted by the test
under its tmp_path and always unmounted), low-water 16 MiB, reserve 4 MiB. An idempotent acks=all
producer runs throughout in a thread. The test writes a filler file on every tmpfs as large as its
free space (free space zero, as if another process filled the disk), checks the full state, deletes a topic
while full, then removes the fillers and checks that produce resumes. Needs root (mount).
"""

from __future__ import annotations

import collections
import errno
import json
import os
import re
import subprocess
import sys
import threading
import time

import kafka
import kafka.errors
import pytest
from freshet.client import Admin, Consumer, Producer, TopicPartition
from freshet.client.admin import ConfigResource
from freshet.storage.record_batch import Record, encode_batch
from freshet.v1 import broker_pb2, common_pb2, controller_pb2

from tests.support.node_cluster import NodeCluster
from tests.support.ports import free_port_block
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

MIB = 1024 * 1024
TMPFS_BYTES = 80 * MIB
LOW_WATER_BYTES = 16 * MIB
RESERVE_BYTES = 4 * MIB
SETS = [f"disk.free.min.bytes={LOW_WATER_BYTES}", "disk.free.min.percent=0", f"disk.reserve.bytes={RESERVE_BYTES}"]
NODES = (1, 2, 3)
VALUE_BYTES = 1000


class TmpfsMounts:
    """Size-limited tmpfs mounts the test creates; `close` unmounts every one (lazily if busy)."""

    def __init__(self) -> None:
        self.mounted: list[str] = []

    def mount(self, directory, size_bytes: int) -> None:
        os.makedirs(directory, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(directory)], check=True)
        self.mounted.append(str(directory))

    def close(self) -> None:
        for directory in reversed(self.mounted):
            if subprocess.run(["umount", directory], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", directory], check=True)
        self.mounted.clear()


class KafkaNodeCluster(NodeCluster):
    """NodeCluster whose nodes also serve the Kafka protocol (`kafka_ports`)."""

    def __init__(self, root, sets: list[str]) -> None:
        super().__init__(root, sets=sets)
        self.kafka_ports = {node_id: free_port_block(1) for node_id in self.ports}

    def argv(self, node_id: int, roles: str) -> list[str]:
        return super().argv(node_id, roles) + ["--kafka-listen", f"127.0.0.1:{self.kafka_ports[node_id]}"]


class Workload:
    """An idempotent acks=all producer in a thread: record n goes to partition n % 3; remembers
    what was acknowledged (partition, offset, n) and the errors, by kind and time."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = Producer(bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                                 delivery_timeout_ms=4000, request_timeout_ms=3000)
        self.lock = threading.Lock()
        self.acked: list[tuple[int, int, int, float]] = []          # partition, offset, n, when
        self.errors: collections.Counter = collections.Counter()
        self.storage_errors: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="disk-full-workload", daemon=True)

    def _run(self) -> None:
        number = 0
        while not self.stop.is_set():
            futures = []
            for _ in range(20):
                value = f"{number:08d}|".encode().ljust(VALUE_BYTES, b".")
                futures.append((number, self.producer.send(self.topic, value=value, partition=number % 3)))
                number += 1
            for sent, future in futures:
                try:
                    metadata = future.result(30)
                except Exception as error:  # noqa: BLE001 - every failure is counted by kind
                    with self.lock:
                        self.errors[type(error).__name__] += 1
                        if "KAFKA_STORAGE_ERROR" in str(error):
                            self.storage_errors.append((time.monotonic(), str(error)))
                    continue
                with self.lock:
                    self.acked.append((metadata.partition, metadata.offset, sent, time.monotonic()))
            time.sleep(0.01)

    def acked_count(self, since: float = 0.0) -> int:
        with self.lock:
            return sum(1 for *_, when in self.acked if when >= since)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        self.producer.close()


def _fill(directory: str) -> int:
    """Write `<directory>/filler` with as many bytes as the filesystem had free when it started (or
    until ENOSPC): free space drops to zero, as when another process fills the disk. It stops
    there, so the disk reserve the node releases on seeing "full" stays free for the node."""
    found = os.statvfs(directory)
    target = found.f_bavail * found.f_frsize
    chunk = b"\0" * MIB
    written = 0
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while written < target:
            try:
                written += os.write(fd, chunk[: min(MIB, target - written)])
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                break
    finally:
        os.close(fd)
    return written


def _disk(cluster: NodeCluster, node_id: int) -> dict:
    status = cluster.status(node_id)
    assert status is not None, f"node {node_id} does not answer /status"
    return status["disk"]


def _read_partition(bootstrap: str, topic: str, partition: int) -> list[tuple[int, int]]:
    """(offset, record number) of every record of a partition, from its start to its end."""
    tp = TopicPartition(topic, partition)
    found: list[tuple[int, int]] = []
    with Consumer(bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        deadline = time.monotonic() + 60
        while (not found or found[-1][0] < end - 1) and time.monotonic() < deadline:
            found += [(r.offset, int(r.value[:8])) for r in consumer.poll(timeout_ms=1000)]
    assert not found or found[-1][0] == end - 1, f"{topic}-{partition}: read up to {found[-1][0]}, end {end}"
    return found


def _raw_produce_error(cluster: NodeCluster, admin: Admin, topic: str) -> common_pb2.ErrorDetail:
    """What a gRPC Produce to partition 0's leader answers now."""
    (description,) = admin.describe_topics([topic], with_offsets=False)
    leader = description.partitions[0].leader
    batch = bytes(encode_batch([Record(int(time.time() * 1000), None, b"x" * 100)]))
    request = broker_pb2.ProduceRequest(acks=-1, timeout_ms=5000,
                                        partitions=[broker_pb2.PartitionRecords(topic=topic, partition=0, records=batch)])
    response = cluster.broker(leader).Produce(request, timeout=10)
    return response.results[0].error


def test_a_full_disk_refuses_produce_retriably_and_loses_nothing(tmp_path):
    mounts = TmpfsMounts()
    try:
        for node_id in NODES:
            mounts.mount(tmp_path / f"node-{node_id}", TMPFS_BYTES)
        with KafkaNodeCluster(tmp_path, SETS) as cluster:
            for node_id in NODES:
                cluster.start(node_id)
            cluster.wait_ready()
            _run_scenario(cluster, tmp_path)
    finally:
        mounts.close()


def _run_scenario(cluster: KafkaNodeCluster, root) -> None:
    bootstrap = ",".join(f"127.0.0.1:{cluster.ports[n]}" for n in NODES)
    admin = Admin(bootstrap)
    admin.create_topic("events", partitions=3, replication_factor=3,
                       configs={"min.insync.replicas": "2", "segment.bytes": str(4 * MIB)})
    admin.create_topic("scratch", partitions=1, replication_factor=3)
    with Producer(bootstrap, acks="all") as producer:                 # 6 MiB that deleting gives back
        for _ in range(6000):
            producer.send("scratch", value=b"s" * VALUE_BYTES)
        producer.flush()
    workload = Workload(bootstrap, "events")
    workload.thread.start()
    try:
        wait_until(lambda: workload.acked_count() >= 600, 60, "the workload's first acknowledgements", 0.1)
        filled_at = time.monotonic()
        filled = {node_id: _fill(str(root / f"node-{node_id}")) for node_id in NODES}
        wait_until(lambda: all(_disk(cluster, n)["state"] == "full" for n in NODES), 10, "every node full", 0.1)
        detected_s = time.monotonic() - filled_at
        wait_until(lambda: workload.storage_errors, 20, "a KAFKA_STORAGE_ERROR at the producer", 0.1)
        _check_while_full(cluster, admin, workload, bootstrap)
        freed_at = time.monotonic()
        for node_id in NODES:
            os.unlink(root / f"node-{node_id}" / "filler")
        wait_until(lambda: all(_disk(cluster, n)["state"] == "ok" for n in NODES), 10, "every node ok again", 0.1)
        wait_until(lambda: workload.acked_count(since=freed_at) >= 300, 60, "produce resuming by itself", 0.1)
        resumed_s = min(when for *_, when in workload.acked if when >= freed_at) - freed_at
        wait_until(lambda: all(_disk(cluster, n)["reserve_bytes"] == RESERVE_BYTES for n in NODES), 10,
                   "the disk reserve re-created", 0.1)
    finally:
        workload.close()
    _check_limits_change_at_run_time(cluster, admin)
    assert cluster.alive() == list(NODES), "a node died"
    _check_every_acknowledged_record_once_in_order(bootstrap, workload)
    _check_restart_recovers_without_cutting(cluster)
    print(f"\nfilled {sorted(filled.values())} bytes; full seen after {detected_s:.2f} s; produce resumed "
          f"{resumed_s:.2f} s after freeing; {len(workload.acked)} acknowledged; errors {dict(workload.errors)}")


def _check_while_full(cluster: KafkaNodeCluster, admin: Admin, workload: Workload, bootstrap: str) -> None:
    """Produce refused (retriably, nothing acknowledged), reads served, metadata writable,
    deletion frees space, and the state visible in /metrics, /readyz and cluster status."""
    time.sleep(1.0)                                                    # in-flight acknowledgements settle
    quiet_from = time.monotonic()
    error = _raw_produce_error(cluster, admin, "events")
    assert error.code == common_pb2.ErrorCode.KAFKA_STORAGE_ERROR, error
    assert re.search(r"log directory \S+/logs is full: \d+ bytes free", error.message), error.message
    kafka_producer = kafka.KafkaProducer(
        bootstrap_servers=",".join(f"127.0.0.1:{cluster.kafka_ports[n]}" for n in NODES), acks="all", retries=0,
    )
    try:
        with pytest.raises(kafka.errors.KafkaStorageError):            # Kafka error 56, retriable
            kafka_producer.send("events", value=b"k" * 100, partition=1).get(timeout=30)
    finally:
        kafka_producer.close(timeout=5)
    assert kafka.errors.KafkaStorageError.retriable
    assert cluster.alive() == list(NODES), "a node died when its disk filled"
    acked_before = list(workload.acked)
    for partition in range(3):                                         # reads still served
        read = dict(_read_partition(bootstrap, "events", partition))
        for acked_partition, offset, number, _ in acked_before:
            if acked_partition == partition:
                assert read.get(offset) == number, f"events-{partition}@{offset} not readable while full"
    admin.create_topic("created-while-full", partitions=1, replication_factor=3)   # metadata writable
    tp = TopicPartition("events", 0)
    with Consumer(bootstrap, group_id="while-full", enable_auto_commit=False) as consumer:   # offsets commit
        consumer.assign([tp])
        consumer.commit({tp: 5})
        assert consumer.committed(tp) == 5
    before = {n: _disk(cluster, n)["free_bytes"] for n in NODES}
    admin.delete_topic("scratch")
    wait_until(lambda: all(_disk(cluster, n)["free_bytes"] >= before[n] + 4 * MIB for n in NODES), 15,
               "deleting a topic giving space back while full", 0.1)
    for node_id in NODES:
        code, metrics = cluster.http(node_id, "/metrics")
        assert code == 200
        assert re.search(r'^freshet_log_dir_full\{dir="[^"]+/logs"\} 1\.0$', metrics, re.M), metrics[-2000:]
        assert re.search(r"^freshet_log_dir_free_bytes\{dir=", metrics, re.M)
        code, readiness = cluster.http(node_id, "/readyz")
        assert code == 200, readiness                                  # still ready: reads are served
        assert "full" in readiness and "produce refused" in readiness, readiness
    for node_id in NODES:                     # the active controller answers from heartbeats, the others ask it
        described = cluster.admin(node_id).DescribeCluster(controller_pb2.DescribeClusterRequest(), timeout=10)
        reports = [(b.endpoint.node_id, b.has_disk_report, b.is_log_dir_full) for b in described.brokers]
        assert reports == [(n, True, True) for n in NODES], (node_id, reports)
    status = subprocess.run(
        [sys.executable, "-m", "freshet.cli.main", "cluster", "status", "--bootstrap", bootstrap, "--output", "json"],
        capture_output=True, text=True, timeout=60,
    )
    assert status.returncode == 0, status.stderr
    brokers = json.loads(status.stdout)["brokers"]
    assert [(b["id"], b["disk_state"]) for b in brokers] == [(n, "full") for n in NODES], brokers
    assert all(b["disk_free_bytes"] < LOW_WATER_BYTES and b["disk_total_bytes"] > 0 for b in brokers), brokers
    assert workload.acked_count(since=quiet_from) == 0, "a produce was acknowledged while every disk was full"


def _check_limits_change_at_run_time(cluster: KafkaNodeCluster, admin: Admin) -> None:
    """disk.free.min.percent is a dynamic broker config: raising it on one broker makes that
    broker full at its next look, deleting it makes it ok again; no restart."""
    admin.alter_configs(ConfigResource.broker(3), set={"disk.free.min.percent": "99"})
    wait_until(lambda: _disk(cluster, 3)["state"] == "full", 10, "broker 3 full under a 99 % low-water mark", 0.1)
    assert [_disk(cluster, n)["state"] for n in (1, 2)] == ["ok", "ok"]
    admin.alter_configs(ConfigResource.broker(3), delete=["disk.free.min.percent"])
    wait_until(lambda: _disk(cluster, 3)["state"] == "ok", 10, "broker 3 ok with its static marks again", 0.1)


def _check_every_acknowledged_record_once_in_order(bootstrap: str, workload: Workload) -> None:
    seen: collections.Counter = collections.Counter()
    for partition in range(3):
        records = _read_partition(bootstrap, "events", partition)
        offsets = [offset for offset, _ in records]
        assert offsets == sorted(set(offsets)), f"events-{partition}: offsets repeat or go back"
        at = dict(records)
        acked = sorted((number, offset) for p, offset, number, _ in workload.acked if p == partition)
        for number, offset in acked:
            assert at.get(offset) == number, f"acknowledged record {number} is not at events-{partition}@{offset}"
        assert [offset for _, offset in acked] == sorted(offset for _, offset in acked), \
            f"events-{partition}: acknowledged records out of order"
        seen.update(number for _, number in records)
    acked_numbers = {number for _, _, number, _ in workload.acked}
    duplicates = sorted(number for number in acked_numbers if seen[number] != 1)
    assert not duplicates, f"acknowledged records not read exactly once: {duplicates[:10]}"


def _check_restart_recovers_without_cutting(cluster: NodeCluster) -> None:
    """kill -9 one node and restart it: recovery re-reads its active segments and cuts nothing."""
    victim = 2
    process = cluster.processes[victim]
    before = len(process.log_text())
    process.kill()
    cluster.start(victim)
    cluster.wait_ready([victim], 60)
    log = cluster.processes[victim].log_text()[before:]
    assert re.search(r"recovered \d+ partition logs in [\d.]+ s \(0 offline\)", log), log[-3000:]
    assert "recovering" in log, "the restart did not run recovery: the test would prove nothing"
    cuts = [line for line in log.splitlines() if re.search(r"recovery of .*: cut \d+ bytes", line)]
    assert not cuts, cuts
