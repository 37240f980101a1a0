"""Replication and durability with real node processes on loopback (issue 5's multi-process tests).

One module-scoped cluster: nodes 1-3 are combined broker+controller nodes (the Raft quorum),
nodes 4-5 broker-only, so a test can take two brokers down without losing the metadata quorum.
Every test leaves every node running and ready, so the tests do not depend on each other.

What survived is checked from the replicas' own segment files after the cluster healed
(`verify_replicas`): every acknowledged record is at exactly its acknowledged offset on every
in-sync replica, offsets have no gaps, each value is there at most once (idempotent producer),
replicas are byte-identical up to the high watermark, and nothing a consumer could have seen
(any high watermark observed during the test, sampled by `HighWatermarkSampler`, which also
checks that a replica's high watermark never decreases within one process) is missing.
Reference: Kafka's replication design (KIP-101/279 truncation by leader epoch, KIP-320 fencing).
"""

from __future__ import annotations

import re
import threading
import time

import grpc
import pytest
from freshet.client import Producer
from freshet.storage.record_batch import decode_batch, iter_batches
from freshet.v1 import broker_pb2, common_pb2, controller_pb2

from tests.support.node_cluster import NodeCluster
from tests.support.replica_logs import log_records, replica_state, segment_bytes
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
E = common_pb2.ErrorCode
LAG_MS = 2000
SETS = [f"replica.lag.time.max.ms={LAG_MS}", "broker.session.timeout.ms=6000"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with NodeCluster(tmp_path_factory.mktemp("replication"), controllers=3, extra_nodes=2, sets=SETS) as nodes:
        for node_id in nodes.ports:
            nodes.start(node_id)
        nodes.wait_ready(timeout_s=90)
        yield nodes


@pytest.fixture(autouse=True)
def healed(cluster):
    """Each test starts and ends with every node running and ready."""
    for node_id in cluster.ports:
        if node_id not in cluster.alive():
            cluster.start(node_id)
    cluster.wait_ready(timeout_s=90)
    yield
    for node_id, process in cluster.processes.items():
        if process.is_alive:
            process.thaw()
        else:
            cluster.start(node_id)
    cluster.wait_ready(timeout_s=90)


# -- helpers ---------------------------------------------------------------------------------------


def bootstrap(cluster: NodeCluster) -> str:
    return ",".join(f"127.0.0.1:{cluster.ports[n]}" for n in sorted(cluster.ports))


def create(cluster: NodeCluster, name: str, assignments: list[list[int]], min_isr: int = 2, configs: dict | None = None) -> None:
    topic = controller_pb2.CreatableTopic(name=name)
    topic.assignments.extend(controller_pb2.ReplicaAssignment(replicas=r) for r in assignments)
    topic.configs.add(key="min.insync.replicas", value=str(min_isr))
    for key, value in (configs or {}).items():
        topic.configs.add(key=key, value=value)
    node = cluster.alive()[0]
    response = cluster.admin(node).CreateTopics(controller_pb2.CreateTopicsRequest(topics=[topic]), timeout=30)
    assert response.results[0].error.code == E.NONE, response
    for number, replicas in enumerate(assignments):
        wait_until(lambda number=number, replicas=replicas: isr_of(cluster, name, number) == sorted(replicas), 30,
                   f"{name}-{number} fully in sync")


def partition_metadata(cluster: NodeCluster, name: str, number: int, via: int | None = None):
    for node_id in [via] if via else cluster.alive():
        try:
            response = cluster.broker(node_id).Metadata(broker_pb2.MetadataRequest(topics=[name]), timeout=3)
        except grpc.RpcError:
            continue
        for partition in response.topics[0].partitions:
            if partition.partition == number:
                return partition
    return None


def leader_of(cluster: NodeCluster, name: str, number: int) -> int:
    found = partition_metadata(cluster, name, number)
    return -1 if found is None else found.leader_id


def isr_of(cluster: NodeCluster, name: str, number: int) -> list[int]:
    """The ISR as the partition's leader itself applies it (/status), [] while unknown."""
    leader = leader_of(cluster, name, number)
    if leader < 0 or leader not in cluster.alive():
        return []
    found = replica_state(cluster, leader, name, number)
    return sorted(found.get("isr", [])) if found and found["role"] == "leader" else []


def metric(cluster: NodeCluster, node_id: int, name: str) -> float:
    answer = cluster.http(node_id, "/metrics")
    assert answer is not None and answer[0] == 200
    found = re.search(rf"^{re.escape(name)} (\S+)$", answer[1], re.M)
    return float(found.group(1)) if found else 0.0


class AckedProducer(threading.Thread):
    """An acks=all idempotent SDK producer sending numbered values round-robin over partitions,
    recording every acknowledged (partition, offset, value). Thread-safe: read after stop()."""

    def __init__(self, cluster: NodeCluster, topic: str, partitions: int, tag: str, max_outstanding: int = 500) -> None:
        super().__init__(name=f"producer-{tag}", daemon=True)
        self.producer = Producer(bootstrap(cluster), acks="all", enable_idempotence=True, linger_ms=2,
                                 delivery_timeout_ms=120000, request_timeout_ms=10000, retry_backoff_ms=50)
        self.topic, self.partitions, self.tag = topic, partitions, tag
        self.max_outstanding = max_outstanding
        self.acked: list[tuple[int, int, bytes]] = []
        self.failed: list[str] = []
        self.sent = 0
        self._done = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                outstanding = self.sent - self._done
            if outstanding >= self.max_outstanding:
                time.sleep(0.005)
                continue
            value = f"{self.tag}-{self.sent:08d}".encode()
            partition = self.sent % self.partitions

            def on_delivery(metadata, error, value=value) -> None:
                with self._lock:
                    self._done += 1
                    if error is None:
                        self.acked.append((metadata.partition, metadata.offset, value))
                    else:
                        self.failed.append(f"{value!r}: {error!r}")

            self.producer.send(self.topic, value=value, partition=partition, on_delivery=on_delivery)
            self.sent += 1
            if self.sent % 50 == 0:
                time.sleep(0.002)

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_acks(self, more: int, timeout_s: float) -> None:
        target = self.acked_count() + more
        wait_until(lambda: self.acked_count() >= target, timeout_s, f"{more} more acknowledgements")

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)
        self.producer.flush(120)
        self.producer.close(30)


class HighWatermarkSampler(threading.Thread):
    """Samples every live node's high watermarks (/status) and checks that a replica's never
    decreases within one process (pid); keeps the largest seen per partition."""

    def __init__(self, cluster: NodeCluster, topic: str) -> None:
        super().__init__(name="hw-sampler", daemon=True)
        self.cluster, self.topic = cluster, topic
        self.highest: dict[int, int] = {}
        self.last: dict[tuple[int, int, int], int] = {}
        self.decreases: list[str] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            for node_id, process in list(self.cluster.processes.items()):
                if not process.is_alive:
                    continue
                status = self.cluster.status(node_id)
                if status is None or "data_plane" not in status:
                    continue
                for entry in status["data_plane"]["partitions"]:
                    if entry["topic"] != self.topic:
                        continue
                    number, value = entry["partition"], entry["high_watermark"]
                    key = (node_id, process.pid, number)
                    if value < self.last.get(key, -1):
                        self.decreases.append(f"node {node_id} {self.topic}-{number}: {self.last[key]} -> {value}")
                    self.last[key] = value
                    self.highest[number] = max(self.highest.get(number, 0), value)
            time.sleep(0.1)

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)


def wait_converged(cluster: NodeCluster, topic: str, assignments: list[list[int]], timeout_s: float = 60) -> None:
    """Wait for every replica to be in the ISR with log end offset == high watermark == the leader's."""
    for number, replicas in enumerate(assignments):

        def converged(number=number, replicas=replicas):
            if isr_of(cluster, topic, number) != sorted(replicas):
                return False
            states = [replica_state(cluster, n, topic, number) for n in replicas]
            if any(s is None for s in states):
                return False
            ends = {(s["log_end_offset"], s["high_watermark"]) for s in states}
            return len(ends) == 1 and next(iter(ends))[0] == next(iter(ends))[1]

        wait_until(converged, timeout_s, f"{topic}-{number}: replicas converged")


def verify_replicas(cluster: NodeCluster, topic: str, assignments: list[list[int]], acked, highest=None,
                    forbidden: tuple[bytes, ...] = ()) -> int:
    """The durability checks of the module docstring, after waiting for every replica to be in
    the ISR with log end offset == high watermark == the leader's. Returns the records checked."""
    wait_converged(cluster, topic, assignments)
    acked_by_partition: dict[int, list[tuple[int, bytes]]] = {}
    for number, offset, value in acked:
        acked_by_partition.setdefault(number, []).append((offset, value))
    checked = 0
    for number, replicas in enumerate(assignments):
        high_watermark = replica_state(cluster, replicas[0], topic, number)["high_watermark"]
        if highest is not None:
            assert highest.get(number, 0) <= high_watermark, f"{topic}-{number}: a consumer saw HW {highest[number]}, now {high_watermark}"
        images = {n: segment_bytes(cluster.root, n, topic, number) for n in replicas}
        reference = images[replicas[0]]
        for node_id, image in images.items():
            assert image == reference, f"{topic}-{number}: node {node_id}'s log differs from node {replicas[0]}'s"
        values, expected = log_records(reference, f"{topic}-{number}")
        assert expected == high_watermark, (expected, high_watermark)
        seen = list(values.values())
        assert len(seen) == len(set(seen)), f"{topic}-{number}: a value appears twice (idempotence broken)"
        for value in forbidden:
            assert value not in seen, f"{topic}-{number}: {value!r} must never be visible"
        for offset, value in acked_by_partition.get(number, []):
            assert values.get(offset) == value, f"{topic}-{number}: acked {value!r} at {offset}, found {values.get(offset)!r}"
            checked += 1
    return checked


# -- the tests -------------------------------------------------------------------------------------


def test_acked_records_survive_repeated_kill_9_of_the_leader(cluster):
    """3 replicas, min.insync.replicas=2, acks=all producer running while the leader of partition
    0 is kill -9'ed three times (restarted each time): every acknowledged record is readable at
    exactly its offset on every in-sync replica, replicas are byte-identical, no HW ever went back."""
    topic = "kill9"
    assignments = [[1, 2, 3], [2, 3, 1], [3, 1, 2]]
    create(cluster, topic, assignments)
    producer = AckedProducer(cluster, topic, len(assignments), "k")
    sampler = HighWatermarkSampler(cluster, topic)
    producer.start()
    sampler.start()
    try:
        producer.wait_acks(300, 30)
        for _ in range(3):
            victim = leader_of(cluster, topic, 0)
            assert victim in (1, 2, 3)
            cluster.processes[victim].kill()
            assert not cluster.processes[victim].is_alive
            wait_until(lambda victim=victim: leader_of(cluster, topic, 0) not in (-1, victim), 30, "a new leader for partition 0")
            producer.wait_acks(300, 60)
            cluster.start(victim)
            cluster.wait_ready([victim], timeout_s=60)
            wait_until(lambda: isr_of(cluster, topic, 0) == [1, 2, 3], 60, "the restarted broker back in the ISR")
            producer.wait_acks(300, 60)
    finally:
        producer.stop()
        sampler.stop()
    assert sampler.decreases == [], sampler.decreases
    checked = verify_replicas(cluster, topic, assignments, producer.acked, sampler.highest)
    assert checked == len(producer.acked) >= 1500


def test_a_zombie_leaders_writes_after_its_pause_are_never_visible(cluster):
    """SIGSTOP the leader (broker-only node 4), let node 1 take over, queue writes to the old
    leader while it is stopped, SIGCONT: its acks=all write is never acknowledged, nothing it took
    after the pause is ever visible to consumers, and it truncates and follows the new leader."""
    topic = "zombie"
    assignments = [[4, 1, 2]]
    create(cluster, topic, assignments)
    before = Producer(bootstrap(cluster), acks="all")
    committed = [before.send(topic, value=f"before-{i}".encode(), partition=0) for i in range(20)]
    before.flush(30)
    acked = [(0, future.result().offset, f"before-{i}".encode()) for i, future in enumerate(committed)]
    zombie = cluster.processes[4]
    stub = cluster.broker(4)
    stub.Metadata(broker_pb2.MetadataRequest(), timeout=5)          # the channel is connected
    zombie.freeze()
    wait_until(lambda: leader_of(cluster, topic, 0) not in (-1, 4), 30, "a new leader while node 4 is stopped")
    new_leader = leader_of(cluster, topic, 0)
    before.close(1)
    # A fresh producer that knows only the live brokers (the first one's stream to the stopped
    # node would wait for its request timeout).
    before = Producer(",".join(f"127.0.0.1:{cluster.ports[n]}" for n in (1, 2, 3)), acks="all", request_timeout_ms=5000)
    after = [before.send(topic, value=f"after-{i}".encode(), partition=0) for i in range(20)]
    before.flush(30)
    acked += [(0, future.result().offset, f"after-{i}".encode()) for i, future in enumerate(after)]
    forbidden = (b"zombie-one", b"zombie-all")
    calls = []
    for acks, value in ((1, forbidden[0]), (-1, forbidden[1])):
        request = broker_pb2.ProduceRequest(
            acks=acks, timeout_ms=3000,
            partitions=[broker_pb2.PartitionRecords(topic=topic, partition=0, records=_one_record_batch(value))],
        )
        calls.append(stub.Produce.future(request, timeout=30))
    zombie.thaw()
    answers = []
    for call in calls:
        try:
            answers.append(call.result().results[0].error.code)
        except grpc.RpcError as error:
            answers.append(error.code())
    assert answers[1] != E.NONE, "the zombie acknowledged an acks=all write"
    # A consumer of the real leader never sees the zombie's writes.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        result = cluster.broker(new_leader).Fetch(
            broker_pb2.FetchRequest(max_bytes=1 << 20, partitions=[broker_pb2.PartitionFetch(topic=topic, partition=0, current_leader_epoch=-1)]),
            timeout=10,
        ).results[0]
        values = [r.value for _, view in iter_batches(result.records) for r in decode_batch(view).records]
        assert not set(forbidden) & set(values)
        time.sleep(0.2)
    before.close(10)
    wait_until(lambda: (replica_state(cluster, 4, topic, 0) or {}).get("role") == "follower", 30, "the old leader follows")
    verify_replicas(cluster, topic, assignments, acked, forbidden=forbidden)


def _one_record_batch(value: bytes) -> bytes:
    from freshet.storage.record_batch import Record, encode_batch

    return bytes(encode_batch([Record(int(time.time() * 1000), None, value, ())]))


def test_two_of_three_replicas_down_refuses_acks_all_until_one_returns(cluster):
    """min.insync.replicas=2 and brokers 4 and 5 (two of the three replicas) kill -9'ed: acks=all
    fails (NOT_ENOUGH_REPLICAS once the ISR shrank, a timeout before) and nothing becomes
    visible; node 5 back: acks=all succeeds."""
    topic = "minisr"
    assignments = [[1, 4, 5]]
    create(cluster, topic, assignments)
    stub = cluster.broker(1)

    def produce(value: bytes, timeout_ms: int = 2000):
        request = broker_pb2.ProduceRequest(
            acks=-1, timeout_ms=timeout_ms,
            partitions=[broker_pb2.PartitionRecords(topic=topic, partition=0, records=_one_record_batch(value))],
        )
        return stub.Produce(request, timeout=30).results[0]

    def latest() -> int:
        query = broker_pb2.PartitionOffsetQuery(topic=topic, partition=0, timestamp=-1)
        return stub.ListOffsets(broker_pb2.ListOffsetsRequest(partitions=[query]), timeout=10).results[0].offset

    assert produce(b"first").error.code == E.NONE
    visible = latest()
    assert visible == 1
    cluster.processes[4].kill()
    cluster.processes[5].kill()
    refused = []
    deadline = time.monotonic() + 30
    attempt = 0
    while isr_of(cluster, topic, 0) != [1]:
        assert time.monotonic() < deadline, "the ISR did not shrink to the leader"
        attempt += 1
        code = produce(f"while-shrinking-{attempt}".encode(), timeout_ms=500).error.code
        assert code in (E.REQUEST_TIMED_OUT, E.NOT_ENOUGH_REPLICAS), code
        assert latest() == visible, "a write became visible with only the leader alive"
    end_before = replica_state(cluster, 1, topic, 0)["log_end_offset"]
    for _ in range(3):
        result = produce(b"refused")
        refused.append(result.error.code)
        assert "min.insync.replicas=2" in result.error.message, result.error.message
    assert refused == [E.NOT_ENOUGH_REPLICAS] * 3
    assert replica_state(cluster, 1, topic, 0)["log_end_offset"] == end_before, "a refused write was appended"
    assert latest() == visible
    cluster.start(5)
    cluster.wait_ready([5], timeout_s=60)
    wait_until(lambda: 5 in isr_of(cluster, topic, 0), 60, "node 5 back in the ISR")
    ok = produce(b"after", timeout_ms=10000)
    assert ok.error.code == E.NONE, ok.error
    assert latest() >= ok.base_offset + 1
    cluster.start(4)
    cluster.wait_ready([4], timeout_s=60)
    verify_replicas(cluster, topic, assignments, [(0, 0, b"first"), (0, ok.base_offset, b"after")], forbidden=(b"refused",))


def test_a_paused_follower_leaves_the_isr_and_rejoins_when_caught_up(cluster):
    """Follower 4 SIGSTOPped for longer than replica.lag.time.max.ms (but shorter than the broker
    session, so the controller does not fence it) while records flow: the leader shrinks the ISR
    itself; after SIGCONT it catches up and the leader adds it back."""
    topic = "lagging"
    assignments = [[1, 4, 2]]
    create(cluster, topic, assignments)
    shrinks = metric(cluster, 1, "freshet_replica_manager_isr_shrinks_total")
    expands = metric(cluster, 1, "freshet_replica_manager_isr_expands_total")
    producer = AckedProducer(cluster, topic, 1, "lag", max_outstanding=200)
    producer.start()
    try:
        producer.wait_acks(100, 30)
        cluster.processes[4].freeze()
        paused = time.monotonic()
        try:
            wait_until(lambda: isr_of(cluster, topic, 0) == [1, 2], 5.5, "the leader dropping the paused follower")
            assert 4 in {b.node_id for b in cluster.broker(1).Metadata(broker_pb2.MetadataRequest(), timeout=5).brokers}, (
                "node 4 was fenced by the controller: the shrink must be the leader's"
            )
            assert time.monotonic() - paused >= LAG_MS / 1000 * 0.9
        finally:
            cluster.processes[4].thaw()
        assert metric(cluster, 1, "freshet_replica_manager_isr_shrinks_total") >= shrinks + 1
        producer.wait_acks(100, 30)
        wait_until(lambda: isr_of(cluster, topic, 0) == [1, 2, 4], 30, "the follower back in the ISR")
        assert metric(cluster, 1, "freshet_replica_manager_isr_expands_total") >= expands + 1
    finally:
        producer.stop()
    verify_replicas(cluster, topic, assignments, producer.acked)


def test_rolling_restart_under_load_loses_no_acknowledged_record(cluster):
    """Every node restarted one by one with SIGTERM (controlled shutdown: exit 0, leadership
    handed over first) while an acks=all producer runs: no acknowledged record is lost."""
    topic = "rolling"
    assignments = [[1, 2, 3], [2, 4, 5], [5, 3, 1]]
    create(cluster, topic, assignments)
    producer = AckedProducer(cluster, topic, len(assignments), "r")
    sampler = HighWatermarkSampler(cluster, topic)
    producer.start()
    sampler.start()
    try:
        producer.wait_acks(200, 30)
        for node_id in sorted(cluster.ports):
            code = cluster.processes[node_id].terminate(60)
            assert code == 0, f"node {node_id} exited {code}:\n{cluster.processes[node_id].log_tail()}"
            producer.wait_acks(100, 60)
            cluster.start(node_id)
            cluster.wait_ready([node_id], timeout_s=60)
            for number, replicas in enumerate(assignments):
                wait_until(lambda number=number, replicas=replicas: isr_of(cluster, topic, number) == sorted(replicas), 60,
                           f"{topic}-{number} whole again after restarting node {node_id}")
        producer.wait_acks(200, 60)
    finally:
        producer.stop()
        sampler.stop()
    assert sampler.decreases == [], sampler.decreases
    checked = verify_replicas(cluster, topic, assignments, producer.acked, sampler.highest)
    assert checked == len(producer.acked) >= 900
