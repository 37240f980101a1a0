"""Committed offsets and group administration through Kafka clients, against a 3-node cluster.

Goal: unmodified Kafka clients (kafka-python, confluent-kafka/librdkafka, aiokafka) commit and read
offsets of manually assigned partitions and administer groups through the Kafka listener, and those
groups are the very groups the Freshet SDK and CLI see over gRPC (one coordinator, one
`__consumer_offsets`): `freshet group describe` shows a Kafka client's commits with their lag,
`freshet group reset-offsets` moves them and the Kafka client reads the new offset. A killed
coordinator loses no acknowledged commit and FindCoordinator names its successor. (That transactions
still fail at once with FindCoordinator served: test_kafka_produce_fetch.py.)

Method: a real `cluster up` of 3 nodes (the module's `kafka_cluster`; the kill test starts its own).

Reference: Kafka protocol guide (FindCoordinator, OffsetCommit, OffsetFetch, OffsetDelete,
ListGroups, DescribeGroups, DeleteGroups); KIP-699, KIP-709.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import kafka
import kafka.errors
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata as AioOffsetAndMetadata
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer as CkConsumer
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from freshet.client import Admin
from kafka.structs import OffsetAndMetadata, TopicPartition

from tests.support.cli_harness import ClusterUp, run_cli

pytestmark = pytest.mark.cluster

TOPIC = "kafka-offsets"


@pytest.fixture(scope="module")
def topic(kafka_cluster):
    admin = AdminClient({"bootstrap.servers": kafka_cluster.kafka_bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=3)])[TOPIC].result(30)
    producer = Producer({"bootstrap.servers": kafka_cluster.kafka_bootstrap})
    for i in range(30):
        producer.produce(TOPIC, value=b"v%d" % i, partition=i % 3)
    assert producer.flush(30) == 0
    return TOPIC


def retry(check, timeout_s=30.0):
    """check() until it returns without raising (clients may meet COORDINATOR_NOT_AVAILABLE while
    __consumer_offsets is created)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def describe_cli(group: str, bootstrap: str) -> dict:
    result = run_cli(["group", "describe", group, "-b", bootstrap, "--output", "json"], None)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_kafka_python_commits_show_in_the_cli_and_reset_offsets_moves_them(kafka_cluster, topic):
    group = "kp-group"
    consumer = kafka.KafkaConsumer(bootstrap_servers=kafka_cluster.kafka_bootstrap, group_id=group,
                                   enable_auto_commit=False, request_timeout_ms=30000)
    try:
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        consumer.assign([tp0, tp1])
        retry(lambda: consumer.commit({tp0: OffsetAndMetadata(4, "kp-meta", -1), tp1: OffsetAndMetadata(7, "", -1)}))
        assert consumer.committed(tp0) == 4
        assert consumer.committed(tp1) == 7
        assert consumer.committed(TopicPartition(topic, 2)) is None
        described = describe_cli(group, kafka_cluster.bootstrap)
        offsets = {(o["partition"]): (o["committed_offset"], o["log_end_offset"], o["lag"]) for o in described["offsets"]}
        assert offsets == {0: (4, 10, 6), 1: (7, 10, 3)}
        assert described["state"] == "empty" and described["members"] == []
        sdk = Admin(kafka_cluster.bootstrap)
        try:
            assert group in {g.group_id for g in sdk.list_groups()}
        finally:
            sdk.close()
        result = run_cli(["group", "reset-offsets", group, "--topic", topic, "--to-offset", "2", "--execute",
                          "-b", kafka_cluster.bootstrap], None)
        assert result.returncode == 0, result.stderr
        assert consumer.committed(tp0) == 2
        assert consumer.committed(tp1) == 2
        assert consumer.committed(TopicPartition(topic, 2)) == 2
        # kafka-python's admin client sees the same group.
        admin = kafka.KafkaAdminClient(bootstrap_servers=kafka_cluster.kafka_bootstrap, request_timeout_ms=30000)
        try:
            listed = {g["group_id"]: g for g in admin.list_groups()}
            assert listed[group]["protocol_type"] == "consumer" and listed[group]["group_state"] == "Empty"
            found = admin.list_group_offsets({group: None})[group]
            assert {tp.partition: value.offset for tp, value in found.items() if tp.topic == topic} == {0: 2, 1: 2, 2: 2}
            assert admin.delete_groups([group]) == {group: "OK"}
            assert group not in {g["group_id"] for g in admin.list_groups()}
            assert admin.delete_groups([group]) == {group: "GroupIdNotFoundError"}
        finally:
            admin.close()
        assert consumer.committed(tp0) is None
    finally:
        consumer.close()


def test_confluent_kafka_commits_and_admin_client_groups(kafka_cluster, topic):
    group = "ck-group"
    consumer = CkConsumer({"bootstrap.servers": kafka_cluster.kafka_bootstrap, "group.id": group,
                           "enable.auto.commit": False})
    try:
        consumer.assign([CkTopicPartition(topic, 0), CkTopicPartition(topic, 2)])
        retry(lambda: consumer.commit(offsets=[CkTopicPartition(topic, 0, 5), CkTopicPartition(topic, 2, 9)],
                                      asynchronous=False))
        committed = consumer.committed([CkTopicPartition(topic, 0), CkTopicPartition(topic, 1), CkTopicPartition(topic, 2)], timeout=30)
        assert [(c.partition, c.offset, c.error) for c in committed] == [(0, 5, None), (1, -1001, None), (2, 9, None)]
    finally:
        consumer.close()
    described = describe_cli(group, kafka_cluster.bootstrap)
    assert {o["partition"]: o["lag"] for o in described["offsets"]} == {0: 5, 2: 1}

    admin = AdminClient({"bootstrap.servers": kafka_cluster.kafka_bootstrap})
    listed = admin.list_consumer_groups(request_timeout=30).result()
    assert group in {g.group_id for g in listed.valid}
    listed = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}, request_timeout=30).result()
    assert group not in {g.group_id for g in listed.valid}
    [description] = admin.describe_consumer_groups([group], request_timeout=30).values()
    description = description.result()
    assert (description.group_id, description.state, description.members) == (group, ConsumerGroupState.EMPTY, [])
    [offsets] = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=30).values()
    assert {(tp.topic, tp.partition, tp.offset) for tp in offsets.result().topic_partitions} == {(topic, 0, 5), (topic, 2, 9)}
    # OffsetDelete: confluent-kafka's Python API does not expose it; kafka-python's does.
    kp_admin = kafka.KafkaAdminClient(bootstrap_servers=kafka_cluster.kafka_bootstrap, request_timeout_ms=30000)
    try:
        deleted = kp_admin.delete_group_offsets(group, [TopicPartition(topic, 2)])
        assert deleted == {TopicPartition(topic, 2): kafka.errors.NoError}
    finally:
        kp_admin.close()
    [offsets] = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=30).values()
    assert {(tp.partition, tp.offset) for tp in offsets.result().topic_partitions} == {(0, 5)}
    [future] = admin.delete_consumer_groups([group], request_timeout=30).values()
    future.result()
    [future] = admin.delete_consumer_groups([group], request_timeout=30).values()
    with pytest.raises(KafkaException) as raised:
        future.result()
    assert raised.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND


def test_aiokafka_commits_with_manual_assignment(kafka_cluster, topic):
    group = "aio-group"

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_cluster.kafka_bootstrap, group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            tp = AioTopicPartition(topic, 1)
            consumer.assign([tp])
            for _ in range(60):
                try:
                    await consumer.commit({tp: AioOffsetAndMetadata(3, "aio")})
                    break
                except Exception:
                    await asyncio.sleep(0.3)
            return await consumer.committed(tp)
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == 3
    assert {o["partition"]: o["committed_offset"] for o in describe_cli(group, kafka_cluster.bootstrap)["offsets"]} == {1: 3}


def test_commits_survive_a_coordinator_kill_and_find_coordinator_moves(tmp_path):
    cluster = ClusterUp(tmp_path / "cluster")
    try:
        cluster.wait_ready()
        admin = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap})
        admin.create_topics([NewTopic("survive", num_partitions=1, replication_factor=3)])["survive"].result(30)
        consumer = kafka.KafkaConsumer(bootstrap_servers=cluster.kafka_bootstrap, group_id="survivor",
                                       enable_auto_commit=False, request_timeout_ms=30000)
        tp = TopicPartition("survive", 0)
        consumer.assign([tp])
        retry(lambda: consumer.commit({tp: OffsetAndMetadata(11, "before", -1)}))
        consumer.close()
        sdk = Admin(cluster.bootstrap)
        try:
            before = sdk.describe_group("survivor").coordinator
        finally:
            sdk.close()
        port = int(before.rsplit(":", 1)[1])
        [victim] = [node_id for node_id in cluster.node_pids if cluster.port(node_id) == port]
        os.kill(cluster.node_pids[victim], signal.SIGKILL)
        # FindCoordinator (through the client's lookup) now names another broker, and the commit is there.
        consumer = kafka.KafkaConsumer(bootstrap_servers=cluster.kafka_bootstrap, group_id="survivor",
                                       enable_auto_commit=False, request_timeout_ms=30000)
        try:
            consumer.assign([tp])
            assert retry(lambda: _committed_or_raise(consumer, tp), timeout_s=60) == 11
            coordinator = consumer._coordinator.coordinator_id
            assert coordinator is not None and coordinator != victim
        finally:
            consumer.close()
    finally:
        cluster.close()


def _committed_or_raise(consumer, tp):
    value = consumer.committed(tp)
    assert value is not None
    return value
