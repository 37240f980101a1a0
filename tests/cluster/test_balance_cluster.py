"""Self-balancing on a real cluster: a broker joins and gets replicas, another is decommissioned.

Goal (issue 19, self-balancing): with auto.balance.enable on (the default) the active controller
moves replicas onto a broker that joins and off a broker marked with `freshet broker decommission`,
as bounded batches of reassignments, while an acks=all idempotent producer keeps writing; the
producer sees only retriable errors (if any reach it) and every acknowledged record is read back
exactly once, in order, at its acknowledged offset.
Method: 3 combined nodes (the Raft voters) and a 4th broker-only node started later; one topic of
6 partitions, replication factor 3; a producer thread writes small records at a bounded rate the
whole time. Broker 4 starts -> wait (bounded) until it holds its share of replicas and leads some;
`freshet broker decommission 2` (the CLI) -> wait until `freshet broker list` shows broker 2
decommissioned with 0 replicas; then stop the producer and read every partition from offset 0.
Reference: Kafka's reassignment steps (KIP-455) and Cruise Control's broker add/remove.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from freshet.client import Admin, Consumer, Producer, TopicPartition
from freshet.client.errors import FreshetError

from tests.support.cli_harness import run_cli
from tests.support.node_cluster import NodeCluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

TOPIC = "moving"
PARTITIONS = 6


class ProducerLoop:
    """An acks=all idempotent producer writing "<partition>:<seq>" records round robin in small
    rounds until stopped; remembers what was acknowledged and every error. Thread-safe enough:
    the test thread reads the lists only after `stop()` joined the thread."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.acknowledged: list[tuple[int, int, bytes]] = []     # (partition, offset, value)
        self.errors: list[FreshetError] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        sequence = 0
        with Producer(self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5) as producer:
            while not self._stop.is_set():
                pending = []
                for _ in range(PARTITIONS * 4):
                    partition = sequence % PARTITIONS
                    value = f"{partition}:{sequence:08d}:".encode() + b"x" * 200
                    pending.append((partition, value, producer.send(TOPIC, value=value, partition=partition)))
                    sequence += 1
                for partition, value, future in pending:
                    try:
                        metadata = future.result(120)
                    except FreshetError as error:
                        self.errors.append(error)
                        continue
                    assert metadata.partition == partition
                    self.acknowledged.append((partition, metadata.offset, value))
                time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(180)
        assert not self._thread.is_alive(), "the producer did not finish"


def _brokers(admin: Admin) -> dict[int, object]:
    return {b.node.node_id: b for b in admin.describe_cluster().brokers}


def _no_reassignment(admin: Admin) -> bool:
    return not admin.list_partition_reassignments()


def _read_all(bootstrap: str, ends: dict[int, int]) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition, [0, end), as (offset, value)."""
    found: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
    with Consumer(bootstrap, enable_auto_commit=False) as consumer:
        consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + 60
        while any(len(found[p]) < ends[p] for p in found) and time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500):
                found[record.partition].append((record.offset, record.value))
    return found


def test_balancer_fills_a_new_broker_and_empties_a_decommissioned_one_without_losing_acks(tmp_path):
    with NodeCluster(tmp_path, controllers=3, extra_nodes=1) as cluster:
        for node_id in (1, 2, 3):
            cluster.start(node_id)
        cluster.wait_ready([1, 2, 3])
        bootstrap = ",".join(f"127.0.0.1:{cluster.ports[n]}" for n in (1, 2, 3))
        admin = Admin(bootstrap)
        admin.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=3, configs={"min.insync.replicas": "2"})
        producer = ProducerLoop(bootstrap)
        producer.start()
        try:
            wait_until(lambda: len(producer.acknowledged) > 200, 30, "the producer's first acknowledgements")

            started = time.monotonic()
            cluster.start(4, "broker")
            cluster.wait_ready([4])
            wait_until(
                lambda: _brokers(admin).get(4) is not None
                and _brokers(admin)[4].replica_count >= 4
                and _brokers(admin)[4].leader_count >= 1
                and _no_reassignment(admin),
                60,
                "broker 4 to hold its share of replicas (>= 4 of 18) and lead some",
            )
            join_s = time.monotonic() - started

            started = time.monotonic()
            result = run_cli(["broker", "decommission", "2"], bootstrap)
            assert result.returncode == 0, result.stderr
            assert "decommissioning" in result.stdout

            def decommissioned():
                listed = run_cli(["broker", "list", "--output", "json"], bootstrap)
                assert listed.returncode == 0, listed.stderr
                rows = {row["id"]: row for row in json.loads(listed.stdout)}
                return rows if rows[2]["state"] == "decommissioned" and rows[2]["replicas"] == 0 else None

            rows = wait_until(decommissioned, 60, "broker 2 to end with 0 replicas", 0.5)
            leave_s = time.monotonic() - started
            assert rows[2]["leaders"] == 0
            assert sum(row["replicas"] for row in rows.values()) == PARTITIONS * 3
            assert all(rows[n]["state"] == "active" for n in (1, 3, 4))
            # Placement never chooses a decommissioning broker for new topics.
            admin.create_topic("after", partitions=3, replication_factor=3)
            placed = admin.describe_topics(["after"], with_offsets=False)[0]
            assert all(2 not in p.replicas for p in placed.partitions)
        finally:
            producer.stop()
            admin.close()

        print(f"broker 4 got its share in {join_s:.1f} s; broker 2 emptied in {leave_s:.1f} s; "
              f"{len(producer.acknowledged)} records acknowledged, {len(producer.errors)} errors")
        assert all(error.retriable for error in producer.errors), [repr(e) for e in producer.errors]

        ends: dict[int, int] = {p: 0 for p in range(PARTITIONS)}
        for partition, offset, _ in producer.acknowledged:
            ends[partition] = max(ends[partition], offset + 1)
        found = _read_all(bootstrap, ends)
        for partition in range(PARTITIONS):
            values = [value for _, value in sorted(found[partition])]
            assert len(values) == len(set(values)), f"partition {partition}: a record appears twice"
            sequences = [int(value.split(b":")[1]) for value in values]
            assert sequences == sorted(sequences), f"partition {partition}: records out of order"
        for partition, offset, value in producer.acknowledged:
            assert found[partition] and dict(found[partition]).get(offset) == value, (
                f"acknowledged record {partition}@{offset} is missing or different"
            )
