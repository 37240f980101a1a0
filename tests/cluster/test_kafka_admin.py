"""Kafka admin clients against the Kafka listener: topics, partitions, configs, cluster, leaders.

Goal: unmodified Kafka admin clients (kafka-python's KafkaAdminClient, librdkafka's through
confluent-kafka, aiokafka's AIOKafkaAdminClient) administer a Freshet cluster, with Kafka's error
codes, and every change is what the Freshet SDK sees over gRPC: both front-ends are views of one
metadata. Method: a real `cluster up` of 3 nodes (Kafka listeners on); each change is made through
a Kafka client and checked through `freshet.client.Admin` on the gRPC bootstrap.

Reference: Kafka protocol guide; KIP-590 (forwarding admin requests to the controller), KIP-339
(IncrementalAlterConfigs), KIP-455 (reassignments), KIP-460 (ElectLeaders).
"""

from __future__ import annotations

import asyncio
import time

import kafka
import kafka.errors as kafka_errors
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.admin import NewTopic as AioNewTopic
from aiokafka.admin.config_resource import ConfigResource as AioConfigResource
from aiokafka.admin.config_resource import ConfigResourceType as AioConfigResourceType
from confluent_kafka import ElectionType, KafkaError, KafkaException
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)
from confluent_kafka.admin import NewPartitions as CkNewPartitions
from freshet.client import Admin
from freshet.client.admin_results import ConfigResource as FreshetResource
from freshet.client.errors import UnknownTopicError
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpConfigResourceType

pytestmark = pytest.mark.cluster

WEEK_MS = str(7 * 24 * 3600 * 1000)


@pytest.fixture(scope="module")
def sdk(kafka_cluster):
    admin = Admin(kafka_cluster.bootstrap)
    yield admin
    admin.close()


@pytest.fixture(scope="module")
def kp(kafka_cluster):
    client = kafka.KafkaAdminClient(bootstrap_servers=kafka_cluster.kafka_bootstrap, request_timeout_ms=20000)
    yield client
    client.close()


@pytest.fixture(scope="module")
def ck(kafka_cluster):
    return AdminClient({"bootstrap.servers": kafka_cluster.kafka_bootstrap})


def wait_until(condition, timeout_s: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def sdk_topic(sdk, name):
    """The SDK's description of `name`. The SDK may ask another node than the Kafka client did,
    whose image can be a few milliseconds behind: a topic just created is waited for."""
    deadline = time.monotonic() + 10
    while True:
        try:
            (described,) = sdk.describe_topics([name], with_offsets=False)
            return described
        except UnknownTopicError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def eventually(read, expected, timeout_s: float = 10):
    """`read()` once it equals `expected` (another node's image may lag by milliseconds)."""
    deadline = time.monotonic() + timeout_s
    while (value := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert value == expected


def topic_overrides(sdk, name) -> dict[str, str]:
    return {c.key: c.value for c in sdk.describe_configs(FreshetResource.topic(name)) if c.source == "dynamic_topic"}


# -- kafka-python ---------------------------------------------------------------------------------


def test_kafka_python_creates_and_deletes_topics_the_sdk_sees(kp, sdk):
    kp.create_topics({"kp-orders": {"num_partitions": 3, "replication_factor": 2, "configs": {"retention.ms": "60000"}}})
    described = sdk_topic(sdk, "kp-orders")
    assert len(described.partitions) == 3
    assert all(len(p.replicas) == 2 for p in described.partitions)
    eventually(lambda: topic_overrides(sdk, "kp-orders"), {"retention.ms": "60000"})
    kp.delete_topics(["kp-orders"])
    eventually(lambda: "kp-orders" in {t.name for t in sdk.list_topics()}, False)


@pytest.mark.parametrize(
    ("topic", "error"),
    [
        pytest.param({"num_partitions": 1, "replication_factor": 4}, kafka_errors.InvalidReplicationFactorError, id="rf-above-brokers"),
        pytest.param({"num_partitions": 0, "replication_factor": 1}, kafka_errors.InvalidPartitionsError, id="zero-partitions"),
    ],
)
def test_kafka_python_gets_kafkas_error_codes_for_bad_topics(kp, topic, error):
    with pytest.raises(error) as raised:
        kp.create_topics({"kp-bad": topic})
    if error is kafka_errors.InvalidReplicationFactorError:
        assert "larger than available brokers: 3" in str(raised.value)


def test_kafka_python_topic_exists_and_invalid_name(kp):
    kp.create_topics({"kp-twice": {"num_partitions": 1, "replication_factor": 1}})
    with pytest.raises(kafka_errors.TopicAlreadyExistsError):
        kp.create_topics({"kp-twice": {"num_partitions": 1, "replication_factor": 1}})
    with pytest.raises(kafka_errors.InvalidTopicError):
        kp.create_topics({"bad name!": {"num_partitions": 1, "replication_factor": 1}})
    with pytest.raises(kafka_errors.UnknownTopicOrPartitionError):
        kp.delete_topics(["kp-never-existed"])


def test_kafka_python_validate_only_creates_nothing(kp, sdk):
    kp.create_topics({"kp-dry": {"num_partitions": 2, "replication_factor": 3}}, validate_only=True)
    assert "kp-dry" not in {t.name for t in sdk.list_topics()}


def test_kafka_python_alters_configs_both_ways(kp, sdk):
    kp.create_topics({"kp-conf": {"num_partitions": 1, "replication_factor": 3, "configs": {"retention.ms": "60000"}}})
    # Incremental: SET one key, the other override stays.
    kp.alter_configs([KpConfigResource(KpConfigResourceType.TOPIC, "kp-conf", configs={"max.message.bytes": "2000000"})], incremental=True)
    eventually(lambda: topic_overrides(sdk, "kp-conf"), {"retention.ms": "60000", "max.message.bytes": "2000000"})
    # APPEND on a list config.
    kp.alter_configs([KpConfigResource(KpConfigResourceType.TOPIC, "kp-conf", configs={"cleanup.policy": ("APPEND", "compact")})], incremental=True)
    described = kp.describe_configs([KpConfigResource(KpConfigResourceType.TOPIC, "kp-conf")], config_filter="all")
    # Freshet allows one cleanup policy: "delete,compact" is refused, nothing changed.
    assert described["topic"]["kp-conf"]["cleanup.policy"]["value"] == "delete"
    # Legacy AlterConfigs: the given set replaces the topic's overrides (Kafka's semantics);
    # kafka-python sends the other modified keys itself, so force the bare request.
    request_body = {"segment.ms": "3600000"}
    kp.alter_configs([KpConfigResource(KpConfigResourceType.TOPIC, "kp-conf", configs=request_body)], incremental=False, raise_on_unknown=False)
    eventually(lambda: topic_overrides(sdk, "kp-conf"), {"retention.ms": "60000", "max.message.bytes": "2000000", "segment.ms": "3600000"})
    kp.delete_topics(["kp-conf"])


def test_kafka_python_reassigns_and_lists_reassignments(kp, ck, sdk):
    # Manual assignment through librdkafka (kafka-python refuses -1 counts to a broker it takes
    # for older than 2.4, which it guesses from the APIs served).
    ck.create_topics([NewTopic("kp-move", 1, replica_assignment=[[1]])], operation_timeout=10)["kp-move"].result()
    assert sdk_topic(sdk, "kp-move").partitions[0].replicas == [1]
    assert kp.alter_partition_reassignments({kafka.TopicPartition("kp-move", 0): [2]}) == {kafka.TopicPartition("kp-move", 0): None}
    wait_until(lambda: sdk_topic(sdk, "kp-move").partitions[0].replicas == [2], what="the reassignment to complete")
    assert kp.list_partition_reassignments() == {}
    assert sdk.list_partition_reassignments() == []
    # Cancelling when nothing is in progress reaches the controller, which says so.
    cancelled = kp.alter_partition_reassignments({kafka.TopicPartition("kp-move", 0): None})
    assert cancelled == {kafka.TopicPartition("kp-move", 0): kafka_errors.NoReassignmentInProgressError}
    kp.delete_topics(["kp-move"])


def test_kafka_python_describes_the_cluster_like_metadata(kp, kafka_cluster, sdk):
    described = kp.describe_cluster()
    assert described["cluster_id"] == sdk.describe_cluster().cluster_id
    seen = sorted(f"{b['host']}:{b['port']}" for b in described["brokers"])
    assert seen == sorted(kafka_cluster.kafka_bootstrap.split(","))
    assert described["controller_id"] in {b["broker_id"] for b in described["brokers"]}


# -- confluent-kafka (librdkafka) -----------------------------------------------------------------


def test_librdkafka_creates_topics_partitions_and_reports_errors(ck, sdk):
    futures = ck.create_topics([NewTopic("ck-orders", num_partitions=2, replication_factor=3, config={"cleanup.policy": "compact"})], operation_timeout=10)
    futures["ck-orders"].result()
    assert len(sdk_topic(sdk, "ck-orders").partitions) == 2
    eventually(lambda: topic_overrides(sdk, "ck-orders"), {"cleanup.policy": "compact"})

    bad = ck.create_topics([NewTopic("ck-orders", 1, 1), NewTopic("ck-rf", 1, 4)], operation_timeout=10)
    with pytest.raises(KafkaException) as exists:
        bad["ck-orders"].result()
    assert exists.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    with pytest.raises(KafkaException) as factor:
        bad["ck-rf"].result()
    assert factor.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    assert "larger than available brokers: 3" in factor.value.args[0].str()

    ck.create_partitions([CkNewPartitions("ck-orders", 5)], operation_timeout=10)["ck-orders"].result()
    eventually(lambda: len(sdk_topic(sdk, "ck-orders").partitions), 5)
    with pytest.raises(KafkaException) as fewer:
        ck.create_partitions([CkNewPartitions("ck-orders", 3)], operation_timeout=10)["ck-orders"].result()
    assert fewer.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    ck.delete_topics(["ck-orders"], operation_timeout=10)["ck-orders"].result()
    eventually(lambda: "ck-orders" in {t.name for t in sdk.list_topics()}, False)

    # No count, no replication factor (-1, -1): the cluster's num.partitions and
    # default.replication.factor (both 1).
    ck.create_topics([NewTopic("ck-defaults")], operation_timeout=10)["ck-defaults"].result()
    assert [len(p.replicas) for p in sdk_topic(sdk, "ck-defaults").partitions] == [1]


def test_librdkafka_describes_topic_and_broker_configs_with_sources(ck, sdk):
    ck.create_topics([NewTopic("ck-conf", 1, 3, config={"retention.ms": "120000"})], operation_timeout=10)["ck-conf"].result()
    (topic_future,) = ck.describe_configs([ConfigResource(ResourceType.TOPIC, "ck-conf")]).values()
    entries = topic_future.result()
    assert entries["retention.ms"].value == "120000"
    assert entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert entries["segment.ms"].value == WEEK_MS
    assert entries["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    kafka_overrides = {e.name: e.value for e in entries.values() if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
    eventually(lambda: topic_overrides(sdk, "ck-conf"), kafka_overrides)

    (broker_future,) = ck.describe_configs([ConfigResource(ResourceType.BROKER, "1")]).values()
    broker = broker_future.result()
    sdk_broker = {c.key: c.value for c in sdk.describe_configs(FreshetResource.broker(1))}
    assert broker["num.partitions"].value == sdk_broker["num.partitions"]
    assert broker["offsets.topic.num.partitions"].is_read_only          # cluster-wide only
    assert not broker["num.partitions"].is_read_only


def test_librdkafka_incremental_alter_configs_set_delete_append_subtract(ck, sdk):
    ck.create_topics([NewTopic("ck-inc", 1, 3, config={"retention.ms": "120000"})], operation_timeout=10)["ck-inc"].result()
    resource = ConfigResource(ResourceType.TOPIC, "ck-inc", incremental_configs=[
        ConfigEntry("max.message.bytes", "3000000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    ck.incremental_alter_configs([resource])[resource].result()
    eventually(lambda: topic_overrides(sdk, "ck-inc"), {"max.message.bytes": "3000000"})

    # cleanup.policy is a list in Kafka: SUBTRACT "delete" then APPEND "compact".
    subtract = ConfigResource(ResourceType.TOPIC, "ck-inc", incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT),
    ])
    with pytest.raises(KafkaException) as empty:                          # "" is not a policy Freshet takes
        ck.incremental_alter_configs([subtract])[subtract].result()
    assert empty.value.args[0].code() == KafkaError.INVALID_CONFIG
    compact = ConfigResource(ResourceType.TOPIC, "ck-inc", incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET),
    ])
    ck.incremental_alter_configs([compact])[compact].result()
    append = ConfigResource(ResourceType.TOPIC, "ck-inc", incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    ck.incremental_alter_configs([append])[append].result()               # already there: unchanged
    eventually(lambda: topic_overrides(sdk, "ck-inc"), {"max.message.bytes": "3000000", "cleanup.policy": "compact"})

    not_a_list = ConfigResource(ResourceType.TOPIC, "ck-inc", incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND),
    ])
    with pytest.raises(KafkaException) as refused:
        ck.incremental_alter_configs([not_a_list])[not_a_list].result()
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG

    unknown = ConfigResource(ResourceType.TOPIC, "ck-inc", incremental_configs=[
        ConfigEntry("no.such.key", "1", incremental_operation=AlterConfigOpType.SET),
    ])
    with pytest.raises(KafkaException) as bad_key:
        ck.incremental_alter_configs([unknown])[unknown].result()
    assert bad_key.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_librdkafka_legacy_alter_configs_replaces_the_whole_set(ck, sdk):
    ck.create_topics([NewTopic("ck-legacy", 1, 3, config={"retention.ms": "120000", "segment.ms": "3600000"})], operation_timeout=10)["ck-legacy"].result()
    resource = ConfigResource(ResourceType.TOPIC, "ck-legacy", set_config={"max.message.bytes": "3000000"})
    ck.alter_configs([resource])[resource].result()
    eventually(lambda: topic_overrides(sdk, "ck-legacy"), {"max.message.bytes": "3000000"})


def test_librdkafka_broker_config_is_freshets_per_broker_config(ck, sdk):
    resource = ConfigResource(ResourceType.BROKER, "2", incremental_configs=[
        ConfigEntry("num.partitions", "2", incremental_operation=AlterConfigOpType.SET),
    ])
    ck.incremental_alter_configs([resource])[resource].result()
    try:
        described = {c.key: (c.value, c.source) for c in sdk.describe_configs(FreshetResource.broker(2))}
        assert described["num.partitions"] == ("2", "dynamic_broker")
        (future,) = ck.describe_configs([ConfigResource(ResourceType.BROKER, "2")]).values()
        entry = future.result()["num.partitions"]
        assert (entry.value, entry.source) == ("2", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    finally:
        reset = ConfigResource(ResourceType.BROKER, "2", incremental_configs=[
            ConfigEntry("num.partitions", None, incremental_operation=AlterConfigOpType.DELETE),
        ])
        ck.incremental_alter_configs([reset])[reset].result()
    assert {c.key: c.source for c in sdk.describe_configs(FreshetResource.broker(2))}["num.partitions"] != "dynamic_broker"


def test_librdkafka_describes_the_cluster(ck, kafka_cluster, sdk):
    described = ck.describe_cluster(request_timeout=10).result()
    assert described.cluster_id == sdk.describe_cluster().cluster_id
    assert sorted(f"{n.host}:{n.port}" for n in described.nodes) == sorted(kafka_cluster.kafka_bootstrap.split(","))
    assert described.controller.id in {n.id for n in described.nodes}


def test_preferred_election_after_a_reorder_moves_the_leader(kp, ck, sdk):
    ck.create_topics([NewTopic("el-topic", 1, replica_assignment=[[1, 2, 3]])], operation_timeout=10)["el-topic"].result()
    wait_until(lambda: sdk_topic(sdk, "el-topic").partitions[0].leader == 1, what="leader 1")
    # Same replicas, new order: the preferred replica becomes 3; the leader stays until elected.
    kp.alter_partition_reassignments({kafka.TopicPartition("el-topic", 0): [3, 1, 2]})
    wait_until(lambda: sdk_topic(sdk, "el-topic").partitions[0].replicas == [3, 1, 2], what="the new order")
    wait_until(lambda: set(sdk_topic(sdk, "el-topic").partitions[0].isr) == {1, 2, 3}, what="a full ISR")
    future = ck.elect_leaders(ElectionType.PREFERRED, [CkTopicPartition("el-topic", 0)])
    results = future.result()
    assert results[CkTopicPartition("el-topic", 0)] is None              # elected
    eventually(lambda: sdk_topic(sdk, "el-topic").partitions[0].leader, 3)
    again = ck.elect_leaders(ElectionType.PREFERRED, [CkTopicPartition("el-topic", 0)]).result()
    assert again[CkTopicPartition("el-topic", 0)].code() == KafkaError.ELECTION_NOT_NEEDED
    # kafka-python: unclean election of a partition that has a leader is not needed either.
    response = kp.elect_leaders(1, {"el-topic": [0]}, raise_errors=False)
    codes = [p.error_code for r in response.replica_election_results for p in r.partition_result]
    assert codes == [kafka_errors.ElectionNotNeededError.errno]


# -- aiokafka ---------------------------------------------------------------------------------------


def test_aiokafka_admin_topics_partitions_configs_cluster(kafka_cluster, sdk):
    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_cluster.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([AioNewTopic("aio-topic", num_partitions=2, replication_factor=2, topic_configs={"retention.ms": "90000"})])
            assert len(sdk_topic(sdk, "aio-topic").partitions) == 2
            await admin.create_partitions({"aio-topic": NewPartitions(total_count=4)})
            eventually(lambda: len(sdk_topic(sdk, "aio-topic").partitions), 4)
            (described,) = await admin.describe_configs([AioConfigResource(AioConfigResourceType.TOPIC, "aio-topic")])
            (result,) = described.resources
            values = {entry[0]: entry[1] for entry in result[4]}
            assert values["retention.ms"] == "90000"
            await admin.alter_configs([AioConfigResource(AioConfigResourceType.TOPIC, "aio-topic", {"segment.ms": "7200000"})])
            eventually(lambda: topic_overrides(sdk, "aio-topic"), {"segment.ms": "7200000"})     # legacy: whole set
            cluster = await admin.describe_cluster()
            assert cluster["cluster_id"] == sdk.describe_cluster().cluster_id
            assert len(cluster["brokers"]) == 3
            await admin.delete_topics(["aio-topic"])
            eventually(lambda: "aio-topic" in {t.name for t in sdk.list_topics()}, False)
        finally:
            await admin.close()

    asyncio.run(scenario())
