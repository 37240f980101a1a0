"""DeleteRecords over the Kafka protocol with unmodified Kafka admin clients (KIP-107).

Goal: librdkafka's and kafka-python's `delete_records` move the partition's log start offset
(the low watermark they get back); ListOffsets earliest (`beginning_offsets`,
`get_watermark_offsets`) answers it; a fetch below it is OFFSET_OUT_OF_RANGE; every replica
follows it (the leader answers only once the live followers deleted too), so it survives a kill -9
of the leader and the leadership move, and a restart of every node.

Method: a `cluster up` of 3 nodes of its own (the leader is killed and the cluster restarted on
its data, so the module's shared `kafka_cluster` is not disturbed); a topic of one partition,
RF 3, created with the Freshet CLI; 100 records produced with librdkafka (acks=all); each node's
/status shows its replica's log start offset.

Reference: KIP-107 (DeleteRecords, low watermark); Kafka's kafka-delete-records.sh.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
import uuid

import confluent_kafka
import kafka
import kafka.errors
import pytest
from confluent_kafka.admin import AdminClient

from tests.support.cli_harness import ClusterUp, run_cli

pytestmark = pytest.mark.cluster

COUNT = 100
DELETE_BEFORE = 40


def create_topic(cluster) -> str:
    name = f"delrec-{uuid.uuid4().hex[:8]}"
    result = run_cli(["topic", "create", name, "-p", "1", "-r", "3"], cluster.bootstrap)
    assert result.returncode == 0, result.stderr
    return name


def produce(cluster, topic: str) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all", "linger.ms": 5})
    for n in range(COUNT):
        producer.produce(topic, value=b"record-%03d" % n, partition=0)
    assert producer.flush(60) == 0


def leader_of(cluster, topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap})
    return admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader


def replica_log_starts(cluster, topic: str, nodes) -> dict[int, int | None]:
    """node id -> the log start offset its /status shows for the partition's replica."""
    starts = {}
    for node_id in nodes:
        url = f"http://127.0.0.1:{cluster.port(node_id) + 2}/status"
        with urllib.request.urlopen(url, timeout=10) as response:
            status = json.loads(response.read())
        partitions = status.get("data_plane", {}).get("partitions", [])
        found = [p for p in partitions if p["topic"] == topic and p["partition"] == 0]
        starts[node_id] = found[0]["log_start_offset"] if found else None
    return starts


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as error:  # noqa: BLE001 - retried until the deadline (a node restarting)
            last = error
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout_s} s (last: {last!r})")


def kafka_python_beginning_offset(cluster, topic: str) -> int:
    consumer = kafka.KafkaConsumer(bootstrap_servers=cluster.kafka_bootstrap, enable_auto_commit=False)
    try:
        tp = kafka.TopicPartition(topic, 0)
        return consumer.beginning_offsets([tp])[tp]
    finally:
        consumer.close()


def librdkafka_watermarks(cluster, topic: str) -> tuple[int, int]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": "assign-only"})
    try:
        return consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()


def fetch_below_the_start_is_out_of_range(cluster, topic: str) -> None:
    """kafka-python with no reset policy raises OffsetOutOfRangeError for a fetch at offset 10,
    and reading from the start gives offsets 40.. only."""
    consumer = kafka.KafkaConsumer(bootstrap_servers=cluster.kafka_bootstrap, enable_auto_commit=False,
                                   auto_offset_reset="none")
    try:
        tp = kafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 10)
        deadline = time.monotonic() + 30
        with pytest.raises(kafka.errors.OffsetOutOfRangeError):
            while time.monotonic() < deadline:
                consumer.poll(timeout_ms=500)
        consumer.seek(tp, DELETE_BEFORE)
        offsets: list[int] = []
        while len(offsets) < COUNT - DELETE_BEFORE and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                offsets += [record.offset for record in records]
        assert offsets == list(range(DELETE_BEFORE, COUNT))
    finally:
        consumer.close()


def check_start(cluster, topic: str, nodes) -> None:
    assert kafka_python_beginning_offset(cluster, topic) == DELETE_BEFORE
    assert librdkafka_watermarks(cluster, topic) == (DELETE_BEFORE, COUNT)
    wait_for(lambda: set(replica_log_starts(cluster, topic, nodes).values()) == {DELETE_BEFORE}, 30,
             "every replica at the new log start")
    fetch_below_the_start_is_out_of_range(cluster, topic)


def test_delete_records_moves_the_start_on_every_replica_across_a_leader_kill_and_a_full_restart(tmp_path):
    cluster = ClusterUp(tmp_path / "cluster")
    restarted = None
    is_closed = False
    try:
        cluster.wait_ready()
        topic = create_topic(cluster)
        produce(cluster, topic)

        # librdkafka: the low watermark comes back; every live replica has deleted by then.
        admin = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap})
        futures = admin.delete_records([confluent_kafka.TopicPartition(topic, 0, DELETE_BEFORE)], operation_timeout=30)
        (result,) = [future.result(30) for future in futures.values()]
        assert result.low_watermark == DELETE_BEFORE
        assert set(replica_log_starts(cluster, topic, (1, 2, 3)).values()) == {DELETE_BEFORE}
        check_start(cluster, topic, (1, 2, 3))

        # kafka-python: deleting before an older offset changes nothing; -1 beyond the HW is refused.
        python_admin = kafka.KafkaAdminClient(bootstrap_servers=cluster.kafka_bootstrap)
        try:
            answer = python_admin.delete_records({kafka.TopicPartition(topic, 0): 20}, timeout_ms=30000)
            assert answer[kafka.TopicPartition(topic, 0)]["low_watermark"] == DELETE_BEFORE
            with pytest.raises(kafka.errors.OffsetOutOfRangeError):
                python_admin.delete_records({kafka.TopicPartition(topic, 0): COUNT + 1}, timeout_ms=30000)
        finally:
            python_admin.close()
        assert kafka_python_beginning_offset(cluster, topic) == DELETE_BEFORE

        # kill -9 of the leader: the new leader answers the same start.
        old_leader = leader_of(cluster, topic)
        os.kill(cluster.node_pids[old_leader], signal.SIGKILL)
        wait_for(lambda: leader_of(cluster, topic) not in (old_leader, -1), 30, "a new leader")
        survivors = [node for node in (1, 2, 3) if node != old_leader]
        check_start(cluster, topic, survivors)

        # Restart every node on its data (the killed one recovers from an unclean stop).
        cluster.close()
        is_closed = True   # never kill its pids again: the restarted nodes may have reused one
        restarted = ClusterUp(tmp_path / "cluster", base_port=cluster.base_port)
        restarted.wait_ready()
        wait_for(lambda: leader_of(restarted, topic) >= 0, 60, "a leader after the restart")
        check_start(restarted, topic, (1, 2, 3))
    finally:
        if not is_closed:
            cluster.close()
        if restarted is not None:
            restarted.close()
