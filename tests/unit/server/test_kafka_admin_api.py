"""Kafka admin requests to controller requests and the controller's answers back.

Goal: the Kafka front-end's admin APIs say to the active controller exactly what the gRPC path
says (one path to metadata, KIP-590 forwarding) and turn its answers into Kafka's responses with
Kafka's error codes and the controller's messages, for every advertised version. Method: the
handlers run over a real metadata image (scripted commands) with `forward` replaced by a fake
that records the controller request and returns a canned answer; every response is encoded with
kio at its version, so a field a version cannot carry fails here.

Reference: Kafka protocol guide (CreateTopics, DeleteTopics, CreatePartitions, ElectLeaders,
AlterPartitionReassignments, ListPartitionReassignments, DescribeCluster); KIP-590, KIP-860.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import time
import uuid

import pytest
from freshet.metadata import commands
from freshet.server import status
from freshet.server.config import KAFKA_LISTENER
from freshet.server.errors import ForwardedError, NotControllerError
from freshet.server.kafka import admin_api, codec, config_api
from freshet.server.kafka.metadata_api import DescribeClusterHandler
from freshet.v1 import common_pb2, controller_pb2
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode

from tests.support.metadata_script import EPOCH, Script

E = common_pb2.ErrorCode
TOPIC_ID = b"orders".ljust(16, b"\0")


class FakePublisher:
    def __init__(self, image) -> None:
        self.image = image
        self.waited: list[int] = []

    async def wait_for_offset(self, offset: int, timeout_s: float) -> bool:
        assert timeout_s >= 0
        self.waited.append(offset)
        return True


class FakeForward:
    """Records what would be forwarded; answers with `answer` (or raises it)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, float]] = []
        self.answer: object = None

    async def __call__(self, channels, method, request, deadline, hint, skip_self):
        assert skip_self is False
        self.calls.append((method, request, deadline))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def kafka_cluster_script(brokers: int = 3) -> Script:
    """A claimed cluster whose brokers registered a Kafka listener; topic "orders" with 2
    partitions on [1, 2, 3] / [2, 3, 1] and a retention override."""
    s = Script()
    s.claim()
    for node_id in range(1, brokers + 1):
        result = s.ok(commands.register_broker(
            s.rid(), EPOCH, node_id, bytes([node_id]) * 16, "localhost", 9000 + node_id,
            listeners=((KAFKA_LISTENER, "kafka-host", 19000 + node_id),),
        ))
        s.ok(commands.unfence_broker(s.rid(), EPOCH, node_id, result.broker_epoch))
    s.topic("orders", [([1, 2, 3], [1, 2, 3], 1), ([2, 3, 1], [2, 3, 1], 2)], {"retention.ms": "1000"}, TOPIC_ID)
    return s


@pytest.fixture
def script():
    return kafka_cluster_script()


@pytest.fixture
def fake_forward(monkeypatch):
    fake = FakeForward()
    monkeypatch.setattr(admin_api, "forward", fake)
    return fake


@pytest.fixture
def link(script):
    publisher = FakePublisher(script.image)
    return admin_api.ControllerLink(1, None, lambda: None, publisher, 30_000, {"num.partitions": "4"})


def request_body(api_key: int, version: int, **fields):
    """A kio request body of (api key, version); nested values may be any version's classes."""
    return codec.build(load_request_schema(api_key, version), **fields)


def nested_request(api_key: int, version: int, class_name: str, **fields):
    module = importlib.import_module(load_request_schema(api_key, version).__module__)
    return codec.build(getattr(module, class_name), **fields)


def run(handler, version: int, body):
    """Handle a request and encode the response at `version` (as the listener would)."""
    request = codec.Request(handler.api_key, version, 7, "test", body, 0)
    answer = handler.handle(request)
    if asyncio.iscoroutine(answer):
        answer = asyncio.run(answer)
    codec.encode_response(handler.api_key, version, 7, answer)
    return answer


def ok(**fields) -> common_pb2.ErrorDetail:
    return status.ok_detail()


def refused(code: int, message: str) -> common_pb2.ErrorDetail:
    return status.detail(code, message)


# -- CreateTopics -----------------------------------------------------------------------------------


def create_topics_body(version: int, topics, validate_only=False, timeout_ms=5000):
    return request_body(19, version, topics=tuple(topics), timeout=datetime.timedelta(milliseconds=timeout_ms), validate_only=validate_only)


def creatable(version: int, name: str, partitions=-1, rf=-1, assignments=(), configs=None):
    return nested_request(
        19, version, "CreatableTopic", name=name, num_partitions=partitions, replication_factor=rf,
        assignments=tuple(nested_request(19, version, "CreatableReplicaAssignment", partition_index=i, broker_ids=tuple(b)) for i, b in assignments),
        configs=tuple(nested_request(19, version, "CreatableTopicConfig", name=k, value=v) for k, v in (configs or {}).items()),
    )


@pytest.mark.parametrize("version", range(2, 8))
def test_create_topics_forwards_defaults_as_absent_and_answers_with_the_controllers_results(version, link, fake_forward):
    new_id = uuid.uuid4()
    fake_forward.answer = controller_pb2.CreateTopicsResponse(
        results=[
            controller_pb2.CreateTopicResult(name="a", error=ok(), topic_id=new_id.bytes, num_partitions=4, replication_factor=3),
            controller_pb2.CreateTopicResult(
                name="b", error=refused(E.INVALID_REPLICATION_FACTOR, "replication factor: 4 larger than available brokers: 3")
            ),
        ],
        metadata_offset=77,
    )
    handler = admin_api.CreateTopicsHandler(link, config_api.topic_config_entries)
    started = time.monotonic()
    answer = run(handler, version, create_topics_body(version, [
        creatable(version, "a", configs={"cleanup.policy": "compact"}), creatable(version, "b", 2, 4),
    ]))
    method, sent, deadline = fake_forward.calls[0]
    assert method == "CreateTopics"
    assert sent.request_id
    assert not sent.validate_only
    first, second = sent.topics
    assert (first.name, first.HasField("num_partitions"), first.HasField("replication_factor")) == ("a", False, False)
    assert [(c.key, c.value) for c in first.configs] == [("cleanup.policy", "compact")]
    assert (second.num_partitions, second.replication_factor) == (2, 4)
    assert started + 4.5 < deadline <= time.monotonic() + 5.0        # the request's timeout_ms
    assert link._publisher.waited == [77]                             # read-your-write on this broker
    a, b = answer.topics
    assert (a.name, a.error_code, a.error_message) == ("a", ErrorCode.none, None)
    assert (b.error_code, b.error_message) == (ErrorCode.invalid_replication_factor, "replication factor: 4 larger than available brokers: 3")
    if version >= 5:
        assert (a.num_partitions, a.replication_factor) == (4, 3)
        assert (b.num_partitions, b.replication_factor) == (-1, -1)
        configs = {c.name: (c.value, c.config_source) for c in a.configs}
        assert configs["cleanup.policy"] == ("compact", config_api.DYNAMIC_TOPIC_CONFIG)
        assert configs["retention.ms"] == (str(7 * 24 * 3600 * 1000), config_api.DEFAULT_CONFIG)
    if version >= 7:
        assert (a.topic_id, b.topic_id) == (new_id, uuid.UUID(int=0))


def test_create_topics_sends_manual_assignments_and_validate_only(link, fake_forward):
    fake_forward.answer = controller_pb2.CreateTopicsResponse(
        results=[controller_pb2.CreateTopicResult(name="m", error=ok(), num_partitions=2, replication_factor=2)]
    )
    answer = run(admin_api.CreateTopicsHandler(link, config_api.topic_config_entries), 7, create_topics_body(
        7, [creatable(7, "m", assignments=[(1, [3, 1]), (0, [1, 2])])], validate_only=True,
    ))
    sent = fake_forward.calls[0][1]
    assert sent.validate_only
    assert [list(a.replicas) for a in sent.topics[0].assignments] == [[1, 2], [3, 1]]   # by partition index
    assert link._publisher.waited == []                                   # nothing was written
    assert answer.topics[0].error_code == ErrorCode.none
    assert answer.topics[0].num_partitions == 2


@pytest.mark.parametrize(
    ("topic", "code"),
    [
        pytest.param(creatable(7, "x", partitions=3, assignments=[(0, [1])]), ErrorCode.invalid_request, id="count-and-assignments"),
        pytest.param(creatable(7, "x", assignments=[(0, [1]), (2, [2])]), ErrorCode.invalid_replica_assignment, id="gap"),
    ],
)
def test_create_topics_refuses_what_kafka_refuses_before_asking_the_controller(topic, code, link, fake_forward):
    answer = run(admin_api.CreateTopicsHandler(link, config_api.topic_config_entries), 7, create_topics_body(7, [topic]))
    assert fake_forward.calls == []
    assert answer.topics[0].error_code == code
    assert answer.topics[0].error_message


def test_no_controller_before_the_timeout_is_request_timed_out_for_every_topic(link, fake_forward):
    fake_forward.answer = NotControllerError(-1, "", 0, "tried 3 times")
    answer = run(admin_api.CreateTopicsHandler(link, config_api.topic_config_entries), 4, create_topics_body(
        4, [creatable(4, "a"), creatable(4, "b")], timeout_ms=100,
    ))
    assert [t.error_code for t in answer.topics] == [ErrorCode.request_timed_out] * 2


def test_a_refused_whole_request_keeps_the_controllers_code_and_message(link, fake_forward):
    import grpc

    fake_forward.answer = ForwardedError(grpc.StatusCode.INVALID_ARGUMENT, refused(E.INVALID_REQUEST, "bad request id"), "")
    answer = run(admin_api.CreateTopicsHandler(link, config_api.topic_config_entries), 7, create_topics_body(7, [creatable(7, "a")]))
    assert (answer.topics[0].error_code, answer.topics[0].error_message) == (ErrorCode.invalid_request, "bad request id")


# -- DeleteTopics -----------------------------------------------------------------------------------


def test_delete_topics_by_name_forwards_the_names(link, fake_forward):
    fake_forward.answer = controller_pb2.DeleteTopicsResponse(
        results=[
            controller_pb2.DeleteTopicResult(name="orders", error=ok(), topic_id=TOPIC_ID),
            controller_pb2.DeleteTopicResult(name="nope", error=refused(E.UNKNOWN_TOPIC, "topic 'nope' does not exist")),
        ],
        metadata_offset=9,
    )
    body = request_body(20, 4, topic_names=("orders", "nope"), timeout=datetime.timedelta(seconds=5))
    answer = run(admin_api.DeleteTopicsHandler(link), 4, body)
    assert list(fake_forward.calls[0][1].names) == ["orders", "nope"]
    assert [(r.name, r.error_code) for r in answer.responses] == [("orders", ErrorCode.none), ("nope", ErrorCode.unknown_topic_or_partition)]
    assert link._publisher.waited == [9]


def test_delete_topics_v6_by_id_names_the_topic_from_the_image(link, fake_forward):
    fake_forward.answer = controller_pb2.DeleteTopicsResponse(
        results=[controller_pb2.DeleteTopicResult(name="orders", error=ok(), topic_id=TOPIC_ID)], metadata_offset=9
    )
    unknown = uuid.uuid4()
    state = nested_request(20, 6, "DeleteTopicState", name=None, topic_id=uuid.UUID(bytes=TOPIC_ID))
    missing = nested_request(20, 6, "DeleteTopicState", name=None, topic_id=unknown)
    body = request_body(20, 6, topics=(state, missing), timeout=datetime.timedelta(seconds=5))
    answer = run(admin_api.DeleteTopicsHandler(link), 6, body)
    assert list(fake_forward.calls[0][1].names) == ["orders"]
    first, second = answer.responses
    assert (first.name, first.topic_id, first.error_code) == ("orders", uuid.UUID(bytes=TOPIC_ID), ErrorCode.none)
    assert (second.name, second.topic_id, second.error_code) == (None, unknown, ErrorCode.unknown_topic_id)


# -- CreatePartitions -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(0, 4))
def test_create_partitions_forwards_count_assignments_and_validate_only(version, link, fake_forward):
    fake_forward.answer = controller_pb2.CreatePartitionsResponse(
        results=[controller_pb2.CreatePartitionsResult(topic="orders", error=refused(E.INVALID_PARTITIONS, "topic has 2 partitions"))]
    )
    topic = nested_request(37, version, "CreatePartitionsTopic", name="orders", count=3, assignments=(
        nested_request(37, version, "CreatePartitionsAssignment", broker_ids=(3, 1)),
    ))
    body = request_body(37, version, topics=(topic,), timeout=datetime.timedelta(seconds=5), validate_only=True)
    answer = run(admin_api.CreatePartitionsHandler(link), version, body)
    sent = fake_forward.calls[0][1]
    assert (sent.topics[0].topic, sent.topics[0].count, sent.validate_only) == ("orders", 3, True)
    assert [list(a.replicas) for a in sent.topics[0].assignments] == [[3, 1]]
    assert (answer.results[0].error_code, answer.results[0].error_message) == (ErrorCode.invalid_partitions, "topic has 2 partitions")


# -- ElectLeaders -----------------------------------------------------------------------------------


def test_elect_leaders_v0_is_preferred_and_groups_results_by_topic(link, fake_forward):
    fake_forward.answer = controller_pb2.ElectLeadersResponse(results=[
        controller_pb2.ElectLeaderResult(partition=common_pb2.TopicPartition(topic="orders", partition=0), error=ok(), leader=1),
        controller_pb2.ElectLeaderResult(
            partition=common_pb2.TopicPartition(topic="orders", partition=1),
            error=refused(E.ELECTION_NOT_NEEDED, "leader 2 is already the preferred replica"),
            leader=2,
        ),
    ])
    topic = nested_request(43, 0, "TopicPartitions", topic="orders", partitions=(0, 1))
    answer = run(admin_api.ElectLeadersHandler(link), 0, request_body(43, 0, topic_partitions=(topic,), timeout=datetime.timedelta(seconds=5)))
    sent = fake_forward.calls[0][1]
    assert sent.type == controller_pb2.ELECTION_PREFERRED
    assert [(tp.topic, tp.partition) for tp in sent.partitions] == [("orders", 0), ("orders", 1)]
    (result,) = answer.replica_election_results
    assert result.topic == "orders"
    assert [(p.partition_id, p.error_code) for p in result.partition_result] == [(0, ErrorCode.none), (1, ErrorCode.election_not_needed)]


def test_elect_leaders_unclean_of_every_partition_sends_no_partitions(link, fake_forward):
    fake_forward.answer = controller_pb2.ElectLeadersResponse()
    answer = run(admin_api.ElectLeadersHandler(link), 2, request_body(43, 2, election_type=1, topic_partitions=None, timeout=datetime.timedelta(seconds=5)))
    sent = fake_forward.calls[0][1]
    assert (sent.type, list(sent.partitions)) == (controller_pb2.ELECTION_UNCLEAN, [])
    assert (answer.error_code, answer.replica_election_results) == (ErrorCode.none, ())


# -- Reassignments ----------------------------------------------------------------------------------


def reassignable(version: int, partition: int, replicas):
    return nested_request(45, version, "ReassignablePartition", partition_index=partition, replicas=replicas)


def test_alter_reassignments_sets_and_cancels_and_refuses_an_empty_list(link, fake_forward):
    fake_forward.answer = controller_pb2.AlterPartitionReassignmentsResponse(results=[
        controller_pb2.ReassignmentResult(partition=common_pb2.TopicPartition(topic="orders", partition=0), error=ok()),
        controller_pb2.ReassignmentResult(
            partition=common_pb2.TopicPartition(topic="orders", partition=1),
            error=refused(E.NO_REASSIGNMENT_IN_PROGRESS, "no reassignment of orders-1 is in progress"),
        ),
    ])
    topic = nested_request(45, 0, "ReassignableTopic", name="orders", partitions=(
        reassignable(0, 0, (3, 2, 1)), reassignable(0, 1, None), reassignable(0, 1, ()),
    ))
    answer = run(admin_api.AlterPartitionReassignmentsHandler(link), 0, request_body(45, 0, topics=(topic,), timeout=datetime.timedelta(seconds=5)))
    sent = fake_forward.calls[0][1].reassignments
    assert [(r.partition.partition, list(r.target_replicas)) for r in sent] == [(0, [3, 2, 1]), (1, [])]
    codes = [p.error_code for p in answer.responses[0].partitions]
    assert codes == [ErrorCode.none, ErrorCode.no_reassignment_in_progress, ErrorCode.invalid_replica_assignment]
    assert answer.error_code == ErrorCode.none


def test_alter_reassignments_v1_refuses_a_replication_factor_change_when_not_allowed(link, fake_forward):
    topic = nested_request(45, 1, "ReassignableTopic", name="orders", partitions=(reassignable(1, 0, (1, 2)),))
    body = request_body(45, 1, topics=(topic,), allow_replication_factor_change=False, timeout=datetime.timedelta(seconds=5))
    answer = run(admin_api.AlterPartitionReassignmentsHandler(link), 1, body)
    assert fake_forward.calls == []
    assert answer.responses[0].partitions[0].error_code == ErrorCode.invalid_replication_factor
    assert answer.allow_replication_factor_change is False


def test_list_reassignments_reads_the_ongoing_ones_from_the_image(script, fake_forward):
    script.ok(commands.reassign_partition(script.rid(), EPOCH, TOPIC_ID, 1, [1, 3]))
    link = admin_api.ControllerLink(1, None, lambda: None, FakePublisher(script.image), 30_000)
    handler = admin_api.ListPartitionReassignmentsHandler(link)
    every = run(handler, 0, request_body(46, 0, topics=None, timeout=datetime.timedelta(seconds=5)))
    (topic,) = every.topics
    (partition,) = topic.partitions
    assert (topic.name, partition.partition_index) == ("orders", 1)
    assert set(partition.removing_replicas) == {2}
    asked = nested_request(46, 0, "ListPartitionReassignmentsTopics", name="orders", partition_indexes=(0, 7))
    unknown = nested_request(46, 0, "ListPartitionReassignmentsTopics", name="nope", partition_indexes=(0,))
    some = run(handler, 0, request_body(46, 0, topics=(asked, unknown), timeout=datetime.timedelta(seconds=5)))
    assert some.topics == () and some.error_code == ErrorCode.none
    assert fake_forward.calls == []


# -- DescribeCluster --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(0, 3))
def test_describe_cluster_lists_kafka_endpoints_and_this_broker_as_controller(version, script):
    script.ok(commands.fence_broker(script.rid(), EPOCH, 3, script.image.brokers[3].broker_epoch))
    handler = DescribeClusterHandler(2, lambda: script.image)
    fields = {"include_cluster_authorized_operations": False}
    if version >= 2:
        fields["include_fenced_brokers"] = True
    answer = run(handler, version, request_body(60, version, **fields))
    assert (answer.error_code, answer.controller_id, answer.cluster_id) == (ErrorCode.none, 2, script.image.cluster_id)
    listed = [(b.broker_id, b.host, b.port) for b in answer.brokers]
    expected = [(1, "kafka-host", 19001), (2, "kafka-host", 19002)]
    if version >= 2:
        assert listed == [*expected, (3, "kafka-host", 19003)]
        assert [b.is_fenced for b in answer.brokers] == [False, False, True]
    else:
        assert listed == expected


def test_describe_cluster_of_controller_endpoints_is_unsupported_endpoint_type(script):
    answer = run(DescribeClusterHandler(1, lambda: script.image), 1, request_body(60, 1, include_cluster_authorized_operations=False, endpoint_type=2))
    assert answer.error_code == ErrorCode.unsupported_endpoint_type
