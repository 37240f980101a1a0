"""Kafka's config APIs over Freshet's configs: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs.

Goal: a Kafka client sees Freshet's effective configs with Kafka's sources, synonyms and types,
and its changes reach the controller as the IncrementalAlterConfigs the gRPC path sends (legacy
AlterConfigs deleting the keys not given; APPEND/SUBTRACT computed on list configs). Method: the
handlers over a scripted image, `forward` replaced by a recorder; responses encoded with kio.

Reference: KIP-133 (DescribeConfigs/AlterConfigs), KIP-226 (config sources, synonyms), KIP-339
(IncrementalAlterConfigs).
"""

from __future__ import annotations

import pytest
from freshet.metadata import commands
from freshet.server import status
from freshet.server.kafka import admin_api, config_api
from freshet.v1 import common_pb2, controller_pb2, metadata_pb2
from kio.schema.errors import ErrorCode

from tests.support.metadata_script import EPOCH
from tests.unit.server.test_kafka_admin_api import (
    FakeForward,
    FakePublisher,
    kafka_cluster_script,
    nested_request,
    request_body,
    run,
)

E = common_pb2.ErrorCode


@pytest.fixture
def script():
    s = kafka_cluster_script()
    s.ok(commands.alter_configs(s.rid(), EPOCH, commands.cluster_resource(), {"retention.ms": "5000", "num.partitions": "3"}))
    s.ok(commands.alter_configs(s.rid(), EPOCH, commands.broker_resource(2), {"num.partitions": "6"}))
    return s


@pytest.fixture
def fake_forward(monkeypatch):
    fake = FakeForward()
    monkeypatch.setattr(admin_api, "forward", fake)
    return fake


@pytest.fixture
def link(script):
    return admin_api.ControllerLink(1, None, lambda: None, FakePublisher(script.image), 30_000, {"num.partitions": "2"})


def describe(link, version: int, resources, synonyms=True, documentation=True):
    body = request_body(32, version, resources=tuple(
        nested_request(32, version, "DescribeConfigsResource", resource_type=kind, resource_name=name, configuration_keys=keys)
        for kind, name, keys in resources
    ), include_synonyms=synonyms, include_documentation=documentation)
    return run(config_api.DescribeConfigsHandler(link), version, body)


def by_name(result) -> dict:
    return {entry.name: entry for entry in result.configs}


@pytest.mark.parametrize("version", range(1, 5))
def test_describe_topic_configs_with_kafka_sources_and_synonyms(version, link):
    (result,) = describe(link, version, [(config_api.TOPIC, "orders", None)]).results
    assert result.error_code == ErrorCode.none
    entries = by_name(result)
    retention = entries["retention.ms"]                  # topic 1000 > cluster 5000 > default
    assert (retention.value, retention.config_source, retention.read_only, retention.is_sensitive) == (
        "1000", config_api.DYNAMIC_TOPIC_CONFIG, False, False,
    )
    assert [(s.value, s.source) for s in retention.synonyms] == [
        ("1000", config_api.DYNAMIC_TOPIC_CONFIG),
        ("5000", config_api.DYNAMIC_DEFAULT_BROKER_CONFIG),
        (str(7 * 24 * 3600 * 1000), config_api.DEFAULT_CONFIG),
    ]
    assert entries["segment.bytes"].config_source == config_api.DEFAULT_CONFIG
    if version >= 3:
        assert entries["cleanup.policy"].config_type == config_api.KAFKA_LIST_TYPE
        assert entries["retention.ms"].config_type == 5                       # LONG
        assert entries["unclean.leader.election.enable"].config_type == 1     # BOOLEAN
        assert entries["retention.ms"].documentation


def test_describe_configs_leaves_out_unknown_keys_and_answers_per_resource_errors(link):
    results = describe(link, 4, [
        (config_api.TOPIC, "orders", ("retention.ms", "no.such.key")),
        (config_api.TOPIC, "nope", None),
        (8, "1", None),                                                       # BROKER_LOGGER
        (config_api.BROKER, "one", None),
    ], synonyms=False, documentation=False).results
    assert list(by_name(results[0])) == ["retention.ms"]
    assert by_name(results[0])["retention.ms"].synonyms == ()
    assert by_name(results[0])["retention.ms"].documentation is None
    assert [r.error_code for r in results[1:]] == [ErrorCode.unknown_topic_or_partition, ErrorCode.invalid_request, ErrorCode.invalid_request]
    assert results[1].error_message == "topic 'nope' does not exist"


def test_describe_broker_configs_static_for_itself_and_the_cluster_default_resource(link):
    own, other, cluster = describe(link, 4, [
        (config_api.BROKER, "1", None), (config_api.BROKER, "2", None), (config_api.BROKER, "", None),
    ]).results
    # Node 1 describes itself with its static file: cluster (3) beats static (2).
    assert (by_name(own)["num.partitions"].value, by_name(own)["num.partitions"].config_source) == ("3", config_api.DYNAMIC_DEFAULT_BROKER_CONFIG)
    assert [(s.value, s.source) for s in by_name(own)["num.partitions"].synonyms] == [
        ("3", config_api.DYNAMIC_DEFAULT_BROKER_CONFIG), ("2", config_api.STATIC_BROKER_CONFIG), ("1", config_api.DEFAULT_CONFIG),
    ]
    assert (by_name(other)["num.partitions"].value, by_name(other)["num.partitions"].config_source) == ("6", config_api.DYNAMIC_BROKER_CONFIG)
    assert by_name(other)["offsets.topic.num.partitions"].read_only          # cluster-wide only
    assert not by_name(other)["num.partitions"].read_only
    assert not by_name(cluster)["offsets.topic.num.partitions"].read_only    # "" is the cluster default
    assert by_name(cluster)["retention.ms"].value == "5000"


def alter_body(api_key: int, version: int, resources, validate_only=False):
    config_class = "AlterableConfig"
    items = []
    for kind, name, configs in resources:
        entries = tuple(nested_request(api_key, version, config_class, **config) for config in configs)
        items.append(nested_request(api_key, version, "AlterConfigsResource", resource_type=kind, resource_name=name, configs=entries))
    return request_body(api_key, version, resources=tuple(items), validate_only=validate_only)


def answer_all_ok(fake_forward, count: int, offset: int = 40):
    fake_forward.answer = controller_pb2.IncrementalAlterConfigsResponse(
        results=[controller_pb2.AlterConfigsResult(error=status.ok_detail()) for _ in range(count)], metadata_offset=offset
    )


def sent_changes(fake_forward, item: int = 0) -> dict[str, tuple[int, str]]:
    method, request, _ = fake_forward.calls[-1]
    assert method == "IncrementalAlterConfigs"
    return {c.key: (c.operation, c.value) for c in request.resources[item].configs}


@pytest.mark.parametrize("version", range(0, 3))
def test_legacy_alter_configs_asks_the_controller_to_replace_the_whole_set(version, link, fake_forward):
    """The keys not given are deleted by the active controller against its own image
    (`replace_all`), not from this broker's image, which may not yet have a key set a moment ago
    through another node (test_kafka_admin's aiokafka case lost that race under load)."""
    answer_all_ok(fake_forward, 1)
    answer = run(config_api.AlterConfigsHandler(link), version, alter_body(33, version, [
        (config_api.TOPIC, "orders", [{"name": "segment.ms", "value": "60000"}]),
    ], validate_only=True))
    assert fake_forward.calls[-1][1].validate_only
    (sent,) = fake_forward.calls[-1][1].resources
    assert (sent.resource.type, sent.resource.topic_name) == (metadata_pb2.CONFIG_RESOURCE_TOPIC, "orders")
    assert sent.replace_all
    assert sent_changes(fake_forward) == {"segment.ms": (controller_pb2.CONFIG_SET, "60000")}
    assert answer.responses[0].error_code == ErrorCode.none
    assert link._publisher.waited == [40]


def test_legacy_alter_configs_of_the_cluster_default_an_empty_set_and_an_unknown_topic(script, link, fake_forward):
    """Every resource goes to the controller with replace_all (an empty set deletes every
    override there); the controller's per-resource answers come back per resource."""
    fake_forward.answer = controller_pb2.IncrementalAlterConfigsResponse(results=[
        controller_pb2.AlterConfigsResult(error=status.ok_detail()),
        controller_pb2.AlterConfigsResult(error=status.ok_detail()),
        controller_pb2.AlterConfigsResult(error=status.detail(E.UNKNOWN_TOPIC, "topic 'nope' does not exist")),
    ], metadata_offset=40)
    answer = run(config_api.AlterConfigsHandler(link), 2, alter_body(33, 2, [
        (config_api.BROKER, "", [{"name": "num.partitions", "value": "3"}]),
        (config_api.BROKER, "3", []),
        (config_api.TOPIC, "nope", []),
    ]))
    cluster, broker, topic = fake_forward.calls[-1][1].resources
    assert cluster.resource.type == metadata_pb2.CONFIG_RESOURCE_CLUSTER
    assert (broker.resource.type, broker.resource.broker_id) == (metadata_pb2.CONFIG_RESOURCE_BROKER, 3)
    assert all(sent.replace_all for sent in (cluster, broker, topic))
    assert sent_changes(fake_forward) == {"num.partitions": (controller_pb2.CONFIG_SET, "3")}
    assert not broker.configs and not topic.configs
    assert [r.error_code for r in answer.responses] == [ErrorCode.none, ErrorCode.none, ErrorCode.unknown_topic_or_partition]


def test_incremental_alter_configs_set_delete_append_subtract(link, fake_forward):
    answer_all_ok(fake_forward, 1)
    run(config_api.IncrementalAlterConfigsHandler(link), 1, alter_body(44, 1, [(config_api.TOPIC, "orders", [
        {"name": "max.message.bytes", "config_operation": config_api.SET, "value": "2000000"},
        {"name": "retention.ms", "config_operation": config_api.DELETE, "value": None},
        {"name": "cleanup.policy", "config_operation": config_api.APPEND, "value": "compact,delete"},
    ])]))
    assert sent_changes(fake_forward) == {
        "max.message.bytes": (controller_pb2.CONFIG_SET, "2000000"),
        "retention.ms": (controller_pb2.CONFIG_DELETE, ""),
        "cleanup.policy": (controller_pb2.CONFIG_SET, "delete,compact"),        # appended, no duplicate
    }
    answer_all_ok(fake_forward, 1)
    run(config_api.IncrementalAlterConfigsHandler(link), 0, alter_body(44, 0, [(config_api.TOPIC, "orders", [
        {"name": "cleanup.policy", "config_operation": config_api.SUBTRACT, "value": "delete"},
    ])]))
    assert sent_changes(fake_forward) == {"cleanup.policy": (controller_pb2.CONFIG_SET, "")}


def test_incremental_alter_configs_refusals_and_the_controllers_answer(link, fake_forward):
    fake_forward.answer = controller_pb2.IncrementalAlterConfigsResponse(results=[
        controller_pb2.AlterConfigsResult(error=status.detail(E.INVALID_CONFIG, "invalid value 'x' for configuration 'retention.ms'")),
    ])
    answer = run(config_api.IncrementalAlterConfigsHandler(link), 1, alter_body(44, 1, [
        (config_api.TOPIC, "orders", [{"name": "retention.ms", "config_operation": config_api.APPEND, "value": "1"}]),
        (config_api.BROKER, "2", [{"name": "num.partitions", "config_operation": 9, "value": "1"}]),
        (config_api.BROKER, "1", [{"name": "num.partitions", "config_operation": config_api.SET, "value": None}]),
        (config_api.TOPIC, "t2", [{"name": "retention.ms", "config_operation": config_api.SET, "value": "x"}]),
    ]))
    codes = [(r.error_code, r.resource_name) for r in answer.responses]
    assert codes == [
        (ErrorCode.invalid_config, "orders"),            # APPEND on a key that is not a list
        (ErrorCode.invalid_request, "2"),                # unknown operation
        (ErrorCode.invalid_request, "1"),                # SET without a value
        (ErrorCode.invalid_config, "t2"),                # the controller's refusal, its message
    ]
    assert answer.responses[3].error_message == "invalid value 'x' for configuration 'retention.ms'"
    assert [r.resource.topic_name for r in fake_forward.calls[-1][1].resources] == ["t2"]


def test_a_resource_twice_in_one_request_is_invalid(link, fake_forward):
    answer = run(config_api.IncrementalAlterConfigsHandler(link), 1, alter_body(44, 1, [
        (config_api.TOPIC, "orders", [{"name": "retention.ms", "config_operation": config_api.DELETE, "value": None}]),
        (config_api.TOPIC, "orders", [{"name": "segment.ms", "config_operation": config_api.DELETE, "value": None}]),
    ]))
    assert [r.error_code for r in answer.responses] == [ErrorCode.invalid_request] * 2
    assert fake_forward.calls == []


def test_kafka_clients_get_request_timed_out_when_no_controller_answered():
    assert status.kafka_code(E.NOT_CONTROLLER) == ErrorCode.request_timed_out
    assert status.kafka_code(E.INVALID_REPLICATION_FACTOR) == ErrorCode.invalid_replication_factor


def test_group_configs_describe_and_incremental_alter(script, fake_forward):
    """Goal: Kafka 4's GROUP config resource (type 32, KIP-848): lag.alert.seconds described with
    the group's own value (GROUP_CONFIG) over the cluster default, and changed through
    IncrementalAlterConfigs as Freshet's group resource."""
    script.ok(commands.alter_configs(script.rid(), EPOCH, commands.cluster_resource(), {"lag.alert.seconds": "300"}))
    script.ok(commands.alter_configs(script.rid(), EPOCH, commands.group_resource("billing"), {"lag.alert.seconds": "60"}))
    link = admin_api.ControllerLink(1, None, lambda: None, FakePublisher(script.image), 30_000, {})
    billing, other = describe(link, 4, [(config_api.GROUP, "billing", None), (config_api.GROUP, "other", None)]).results
    assert list(by_name(billing)) == ["lag.alert.seconds"]
    entry = by_name(billing)["lag.alert.seconds"]
    assert (entry.value, entry.config_source, entry.read_only) == ("60", config_api.GROUP_CONFIG, False)
    assert [(s.value, s.source) for s in entry.synonyms] == [
        ("60", config_api.GROUP_CONFIG), ("300", config_api.DYNAMIC_DEFAULT_BROKER_CONFIG), ("0.0", config_api.DEFAULT_CONFIG),
    ]
    assert by_name(other)["lag.alert.seconds"].config_source == config_api.DYNAMIC_DEFAULT_BROKER_CONFIG
    answer_all_ok(fake_forward, 1)
    run(config_api.IncrementalAlterConfigsHandler(link), 1, alter_body(44, 1, [(config_api.GROUP, "billing", [
        {"name": "lag.alert.seconds", "config_operation": config_api.SET, "value": "90"},
    ])]))
    resource = fake_forward.calls[-1][1].resources[0].resource
    assert (resource.type, resource.group_id) == (metadata_pb2.CONFIG_RESOURCE_GROUP, "billing")
    assert sent_changes(fake_forward) == {"lag.alert.seconds": (controller_pb2.CONFIG_SET, "90")}
