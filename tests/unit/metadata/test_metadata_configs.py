"""The config schema: the keys INTERFACE.md promises, Kafka's defaults, parsing and scopes."""

from __future__ import annotations

import dataclasses

import pytest
from freshet.metadata import configs
from freshet.metadata.errors import InvalidConfigError

INTERFACE_TOPIC_KEYS = {
    "retention.ms", "retention.bytes", "segment.bytes", "segment.ms", "cleanup.policy", "min.insync.replicas",
    "max.message.bytes", "unclean.leader.election.enable", "compression.type", "message.timestamp.type",
}
ISSUE_EXTRA_TOPIC_KEYS = {
    "delete.retention.ms", "index.interval.bytes", "flush.messages", "flush.ms", "min.cleanable.dirty.ratio",
    "write.caching",                  # issue 16: durable mode
}


def test_schema_has_every_topic_key_of_the_interface_and_the_issue():
    assert set(configs.TOPIC_KEYS) == INTERFACE_TOPIC_KEYS | ISSUE_EXTRA_TOPIC_KEYS
    for key in configs.TOPIC_KEYS:
        assert configs.SCHEMA[key].scopes == {configs.ConfigScope.TOPIC, configs.ConfigScope.CLUSTER}


def test_defaults_follow_interface_md_and_kafka():
    topic = configs.topic_config({}, {})
    assert topic.retention_ms == 7 * 24 * 3600 * 1000
    assert topic.retention_bytes == -1
    assert topic.segment_bytes == 1 << 30
    assert topic.cleanup_policy == "delete"
    assert topic.min_insync_replicas == 1
    assert topic.max_message_bytes == 1048588
    assert topic.unclean_leader_election_enable is False
    assert topic.compression_type == "producer"
    assert topic.message_timestamp_type == "CreateTime"
    assert topic.min_cleanable_dirty_ratio == 0.5
    assert topic.write_caching is True                         # Redpanda's default: acks before fsync
    broker = configs.broker_config({}, {})
    assert broker.broker_heartbeat_interval_ms == 500          # INTERFACE.md liveness defaults
    assert broker.broker_session_timeout_ms == 6000
    assert broker.replica_lag_time_max_ms == 30000
    assert broker.offsets_topic_num_partitions == 10
    assert broker.offsets_topic_replication_factor == 3


def test_merge_order_is_default_then_cluster_then_resource():
    merged = configs.topic_config({"retention.ms": "10", "segment.ms": "20"}, {"retention.ms": "30"})
    assert (merged.retention_ms, merged.segment_ms) == (30, 20)
    broker = configs.broker_config({"num.partitions": "4"}, {"num.partitions": "8"})
    assert broker.num_partitions == 8


@pytest.mark.parametrize(
    "key, value, typed",
    [("retention.ms", "-1", -1), ("unclean.leader.election.enable", "TRUE", True), ("min.cleanable.dirty.ratio", "0.25", 0.25),
     ("cleanup.policy", "compact", "compact"), ("segment.bytes", " 2048 ", 2048)],
)
def test_parse_value_returns_typed_values(key, value, typed):
    assert configs.parse_value(key, value) == typed


@pytest.mark.parametrize(
    "key, value, reason",
    [("retention.ms", "1.5", "must be an integer"), ("retention.ms", "-5", "must be >= -1"),
     ("segment.bytes", str(2**31), "out of range"), ("min.cleanable.dirty.ratio", "nan", "finite"),
     ("min.cleanable.dirty.ratio", "2", "between"), ("compression.type", "brotli", "one of"),
     ("unclean.leader.election.enable", "1", "true or false"), ("nope", "1", "unknown configuration key"),
     ("retention.ms", "9" * 2000, "longer than")],
)
def test_invalid_values_name_the_key_and_the_problem(key, value, reason):
    with pytest.raises(InvalidConfigError) as raised:
        configs.parse_value(key, value)
    assert raised.value.key == key
    assert reason in raised.value.reason
    assert key in str(raised.value)


def test_scopes_are_enforced():
    configs.validate_entries(configs.ConfigScope.CLUSTER, [("retention.ms", "1"), ("num.partitions", "2")])
    with pytest.raises(InvalidConfigError, match="cannot be set on a topic"):
        configs.validate_entries(configs.ConfigScope.TOPIC, [("num.partitions", "2")])
    with pytest.raises(InvalidConfigError, match="cannot be set on a broker"):
        configs.validate_entries(configs.ConfigScope.BROKER, [("auto.leader.rebalance.enable", "true")])
    with pytest.raises(InvalidConfigError, match="unknown"):
        configs.validate_delete_keys(configs.ConfigScope.TOPIC, ["nope"])


def test_typed_views_cover_exactly_the_schema():
    assert [f.name for f in dataclasses.fields(configs.TopicConfig)] == [configs.SCHEMA[k].attribute for k in configs.TOPIC_KEYS]
    assert [f.name for f in dataclasses.fields(configs.BrokerConfig)] == [configs.SCHEMA[k].attribute for k in configs.BROKER_KEYS]
    for spec in configs.SCHEMA.values():
        assert spec.check(spec.default) is None
        assert spec.doc
