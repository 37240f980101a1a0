"""KIP-848 consumer groups over the Kafka protocol with librdkafka's `group.protocol=consumer`.

Goal: Kafka consumers that use the new consumer group protocol (ConsumerGroupHeartbeat, key 68)
get their partitions from Freshet's group coordinator: three members split a 6-partition topic,
every record reaches exactly one member, and when a member leaves its partitions move to the
others; a Kafka member and a Freshet SDK member (gRPC) share one group.

Method: a real `cluster up` of 3 nodes (the module's `kafka_cluster`); topics created with the
Freshet CLI; confluent-kafka (librdkafka) consumers polled in turn from one thread (librdkafka
heartbeats on its own threads). This branch has no Kafka OffsetFetch/OffsetCommit, and librdkafka
2.16 in `group.protocol=consumer` crashes (SIGSEGV) when it asks a broker that does not offer
OffsetFetch for a new partition's committed offset. So the consumers take every assigned
partition from its beginning themselves (`on_assign` -> `incremental_assign` at
OFFSET_BEGINNING: no committed-offset lookup) and never commit; a partition that moves is read
again from its start by its new owner. Records are produced only once the group is stable, and
the checks name which phase each delivery belongs to. Once OffsetFetch is served, the
`on_assign` workaround can go.

Reference: KIP-848; librdkafka's `group.protocol=consumer` (GA since 2.12).
"""

from __future__ import annotations

import time
import uuid

import confluent_kafka
import pytest
from freshet.client import Consumer as FreshetConsumer

from tests.support.cli_harness import run_cli

pytestmark = pytest.mark.cluster

PARTITIONS = 6
PER_PARTITION = 10


def create_topic(cluster) -> str:
    name = f"g848-{uuid.uuid4().hex[:10]}"
    result = run_cli(
        ["topic", "create", name, "--partitions", str(PARTITIONS), "--replication-factor", "3"], cluster.bootstrap
    )
    assert result.returncode == 0, result.stderr
    return name


def produce(cluster, topic: str, tag: str) -> set[tuple[int, bytes]]:
    producer = confluent_kafka.Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all"})
    sent = set()
    for partition in range(PARTITIONS):
        for i in range(PER_PARTITION):
            value = f"{tag}-{partition}-{i}".encode()
            producer.produce(topic, value=value, partition=partition)
            sent.add((partition, value))
    assert producer.flush(30) == 0
    return sent


def kafka_consumer(cluster, group: str, topic: str, name: str) -> confluent_kafka.Consumer:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": cluster.kafka_bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "group.remote.assignor": "uniform",
        "client.id": name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic], on_assign=from_beginning)
    return consumer


def from_beginning(consumer: confluent_kafka.Consumer, partitions) -> None:
    """Take newly assigned partitions at their first offset (see the module docstring)."""
    consumer.incremental_assign([
        confluent_kafka.TopicPartition(p.topic, p.partition, confluent_kafka.OFFSET_BEGINNING) for p in partitions
    ])


def partitions_of(consumer: confluent_kafka.Consumer) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}


def poll_all(consumers: dict, got: dict, seconds: float, until=lambda: False) -> None:
    """Poll each consumer in turn, adding (partition, value) to got[name], until `until()` or timeout."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        for name, consumer in consumers.items():
            message = consumer.poll(0.1)
            if message is None:
                continue
            assert message.error() is None, message.error()
            got[name].append((message.partition(), message.value()))


def stable(consumers: dict, expected: int) -> bool:
    owned = [partitions_of(c) for c in consumers.values()]
    return all(owned) and sum(map(len, owned)) == expected and len(set().union(*owned)) == expected


def test_three_kafka_members_split_the_partitions_and_a_leaver_s_partitions_move(kafka_cluster):
    topic = create_topic(kafka_cluster)
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumers = {name: kafka_consumer(kafka_cluster, group, topic, name) for name in ("a", "b", "c")}
    got: dict[str, list] = {name: [] for name in consumers}
    try:
        poll_all(consumers, got, 60, until=lambda: stable(consumers, PARTITIONS)
                 and all(len(partitions_of(c)) == 2 for c in consumers.values()))
        owned = {name: partitions_of(c) for name, c in consumers.items()}
        assert all(len(p) == 2 for p in owned.values()), owned
        assert not any(got.values())                       # nothing produced yet

        first = produce(kafka_cluster, topic, "first")
        poll_all(consumers, got, 60, until=lambda: sum(map(len, got.values())) >= len(first))
        delivered = [record for records in got.values() for record in records]
        assert sorted(delivered) == sorted(first)          # every record exactly once
        for name, records in got.items():
            assert {partition for partition, _ in records} == owned[name]

        leaver = consumers.pop("c")
        leaver.close()                                     # epoch -1: its partitions move
        later: dict[str, list] = {name: [] for name in consumers}
        poll_all(consumers, later, 60, until=lambda: stable(consumers, PARTITIONS))
        after = {name: partitions_of(c) for name, c in consumers.items()}
        assert after["a"] | after["b"] == set(range(PARTITIONS)) and not after["a"] & after["b"]
        assert owned["a"] <= after["a"] and owned["b"] <= after["b"]   # the stayers keep theirs

        second = produce(kafka_cluster, topic, "second")
        # Without committed offsets, the new owners of c's partitions read them from the start.
        reread_expected = sorted(record for record in first if record[0] in owned["c"])
        poll_all(consumers, later, 60, until=lambda: sum(map(len, later.values())) >= len(second) + len(reread_expected))
        delivered = [record for records in later.values() for record in records]
        assert sorted(r for r in delivered if r[1].startswith(b"second")) == sorted(second)   # exactly once
        assert sorted(r for r in delivered if r[1].startswith(b"first")) == reread_expected  # c's, once
        for name in ("a", "b"):
            assert {partition for partition, _ in later[name]} <= after[name]
    finally:
        for consumer in consumers.values():
            consumer.close()


def test_a_kafka_member_and_a_freshet_sdk_member_share_one_group(kafka_cluster):
    topic = create_topic(kafka_cluster)
    group = f"g-{uuid.uuid4().hex[:8]}"
    kafka = kafka_consumer(kafka_cluster, group, topic, "kafka")
    sdk = FreshetConsumer(kafka_cluster.bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
    got: dict[str, list] = {"kafka": [], "sdk": []}
    try:
        sdk.subscribe([topic])
        deadline = time.monotonic() + 60

        def step():
            message = kafka.poll(0.1)
            if message is not None:
                assert message.error() is None, message.error()
                got["kafka"].append((message.partition(), message.value()))
            got["sdk"].extend((r.partition, r.value) for r in sdk.poll(timeout_ms=100))

        def sdk_partitions():
            return {tp.partition for tp in sdk.assignment()}

        while time.monotonic() < deadline:
            step()
            owned_kafka, owned_sdk = partitions_of(kafka), sdk_partitions()
            if len(owned_kafka) == 3 and len(owned_sdk) == 3 and not owned_kafka & owned_sdk:
                break
        owned_kafka, owned_sdk = partitions_of(kafka), sdk_partitions()
        assert len(owned_kafka) == 3 and owned_kafka | owned_sdk == set(range(PARTITIONS)), (owned_kafka, owned_sdk)

        sent = produce(kafka_cluster, topic, "mixed")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(got["kafka"]) + len(got["sdk"]) < len(sent):
            step()
        assert sorted(got["kafka"] + got["sdk"]) == sorted(sent)
        assert {p for p, _ in got["kafka"]} == owned_kafka and {p for p, _ in got["sdk"]} == owned_sdk
    finally:
        kafka.close()
        sdk.close()
