"""Every gRPC method enforces its row of the authorization table, before any side effect.

Goal: a principal without rights is refused by every method of every service (Broker,
Controller, Group, Replication), with the operation and resource type the table
(server/security/rules.py GRPC_RULES) names, audited, and without the servicer touching what lies
behind it (data plane, controller, coordinator, replica host); a super user gets through; and the
table covers exactly the methods of the proto service descriptors, so a new RPC without a
decision fails here. Per-item rules refuse only the items denied (Kafka's per-partition answers).
Method: the real servicers over recording fakes, a FakeContext recording aborts, a Caller bound
with bind_caller, an Authorizer over an image carrying ACLs.
Reference: Kafka KafkaApis / AuthHelper (authorize, filterByAuthorized).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import types

import grpc
import pytest
from freshet.metadata.image import EMPTY_IMAGE
from freshet.metadata.security import AclBinding, AclSet, Operation, PatternType, Permission, ResourceType
from freshet.server import status
from freshet.server.broker.produce import ProducePath
from freshet.server.broker.service import BrokerService
from freshet.server.controller.service import ControllerService
from freshet.server.groups.service import GroupService
from freshet.server.http.console_data.history import History
from freshet.server.metrics import BrokerMetrics
from freshet.server.replication.leader_sessions import ReplicationService
from freshet.server.security.authorizer import (
    Authorizer,
    Caller,
    SecuritySettings,
    bind_caller,
    unbind_caller,
)
from freshet.server.security.rules import GRPC_RULES, Scope
from freshet.v1 import (
    broker_pb2,
    common_pb2,
    controller_pb2,
    group_pb2,
    metadata_pb2,
    replication_pb2,
)
from prometheus_client import CollectorRegistry

from tests.unit.server.test_server_handlers import FakeContext as HandlerContext

E = common_pb2.ErrorCode
AUTHORIZATION_CODES = {E.TOPIC_AUTHORIZATION_FAILED, E.GROUP_AUTHORIZATION_FAILED, E.CLUSTER_AUTHORIZATION_FAILED}
ADMIN, MALLORY, ALICE = "User:admin", "User:mallory", "User:alice"


def allow(principal, operation, resource_type, name, pattern=PatternType.LITERAL, permission=Permission.ALLOW):
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


ACLS = (
    allow(ALICE, Operation.READ, ResourceType.TOPIC, "a"),
    allow(ALICE, Operation.READ, ResourceType.GROUP, "g"),
    # mallory's only binding is on a topic nobody asks for: every other resource has no ACL
    allow(MALLORY, Operation.READ, ResourceType.TOPIC, "elsewhere"),
)


def make_authorizer(acls=ACLS) -> Authorizer:
    image = dataclasses.replace(EMPTY_IMAGE, acls=AclSet(acls))
    return Authorizer(SecuritySettings(enabled=True, super_users=frozenset({ADMIN})), lambda: image, CollectorRegistry())


class Recorder:
    """Records calls of `name(...)` for the names given, answering with `answers[name](*args)`."""

    def __init__(self, **answers) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self._answers = answers

    def __getattr__(self, name):
        answers = self.__dict__["_answers"]
        if name not in answers:
            raise AttributeError(name)
        answer = answers[name]

        def record(*args, **kwargs):
            self.calls.append((name, args))
            return answer(*args, **kwargs)

        return record

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


async def _value(value):
    return value


def _async(value_of):
    return lambda *args, **kwargs: _value(value_of(*args, **kwargs))


# -- the servicers over fakes ---------------------------------------------------------------------


class FakeContext(HandlerContext):
    def invocation_metadata(self):
        return ()

    def peer(self):
        return "ipv4:10.0.0.9:5000"

CONFIG = types.SimpleNamespace(node_id=1, request_timeout_ms=2000, controller_listeners={}, broker_configs={})
PUBLISHER = types.SimpleNamespace(image=EMPTY_IMAGE)


def _produce(request, done, refused=None):
    response = broker_pb2.ProduceResponse()
    for records in request.partitions:
        result = response.results.add(topic=records.topic, partition=records.partition)
        if refused and records.topic in refused:
            result.error.CopyFrom(status.detail(E.TOPIC_AUTHORIZATION_FAILED, refused[records.topic]))
        else:
            result.error.CopyFrom(status.ok_detail())
            backend.appended.append(records.topic)
    done(response)


def _fetched(request):
    return broker_pb2.FetchResponse(results=[
        broker_pb2.PartitionFetchResult(topic=p.topic, partition=p.partition, error=status.ok_detail()) for p in request.partitions
    ])


def _listed(request):
    return broker_pb2.ListOffsetsResponse(results=[
        broker_pb2.PartitionOffsetResult(topic=q.topic, partition=q.partition, error=status.ok_detail()) for q in request.partitions
    ])


class Backend:
    """Everything behind the servicers, recording what they asked."""

    def __init__(self) -> None:
        self.appended: list[str] = []
        self.data_plane = Recorder(
            fetch=_async(_fetched),
            fetch_stream=_async(lambda request, write: None),
            list_offsets=_listed,
            describe_log_dirs=lambda request: broker_pb2.DescribeLogDirsResponse(),
            broker_config=lambda: types.SimpleNamespace(auto_create_topics_enable=False),
        )
        self.data_plane.__dict__["produce_path"] = types.SimpleNamespace(produce=self._produce)
        self.data_plane.__dict__["metrics"] = types.SimpleNamespace(observe_request=lambda *a: None)
        self.producer_ids = Recorder(next_id=_async(lambda deadline: 7))
        self.data_plane.__dict__["producer_ids"] = self.producer_ids
        self.controller = Recorder(**{
            name: _async(lambda request: types.SimpleNamespace(metadata_offset=0))
            for name in ("create_topics", "delete_topics", "create_partitions", "elect_leaders", "alter_reassignments",
                         "incremental_alter_configs", "alter_partition", "allocate_producer_ids", "decommission_broker")
        }, upsert_user_scram_credentials=_async(lambda request: controller_pb2.UpsertUserScramCredentialsResponse()),
           delete_user_scram_credentials=_async(lambda request: controller_pb2.DeleteUserScramCredentialsResponse()),
           create_acls=_async(lambda request: controller_pb2.CreateAclsResponse()),
           delete_acls=_async(lambda request: controller_pb2.DeleteAclsResponse()),
           describe_quorum=_async(lambda: controller_pb2.DescribeQuorumResponse()),
           serve_heartbeats=_async(lambda context, first: None),
           disk_reports=lambda: {})
        self.controller.__dict__["is_active"] = True
        self.quorum = Recorder(recent_commands=lambda offset: None)
        self.coordinator = Recorder(
            heartbeat=_async(lambda request: group_pb2.ConsumerGroupHeartbeatResponse()),
            commit=_async(lambda request: group_pb2.OffsetCommitResponse(results=[
                group_pb2.OffsetCommitResult(topic=p.topic, partition=p.partition, error=status.ok_detail())
                for p in request.partitions
            ])),
            fetch_offsets=_async(lambda request: group_pb2.OffsetFetchResponse(results=[
                group_pb2.OffsetFetchResult(topic=topic, partition=0, offset=5, error=status.ok_detail()) for topic in "ab"
            ])),
            list_groups=lambda: group_pb2.ListGroupsResponse(groups=[
                group_pb2.ListedGroup(group_id="g"), group_pb2.ListedGroup(group_id="h"),
            ]),
            describe_group=lambda group_id: group_pb2.DescribedGroup(group_id=group_id, error=status.ok_detail()),
            delete_group=_async(lambda group_id: None),
        )
        self.locate = Recorder(locate=_async(lambda group_id: group_pb2.Coordinator(group_id=group_id, error=status.ok_detail())))
        self.host = Recorder(
            check_follower_broker=lambda replica_id, epoch: None,
            record_timestamps=lambda request: replication_pb2.RecordTimestampsResponse(),
        )
        self.host.__dict__["node_id"] = 1
        self.host.__dict__["metrics"] = types.SimpleNamespace(count_request=lambda api: None)

    def _produce(self, request, done, refused=None):
        self.data_plane.calls.append(("produce", (request,)))
        _produce(request, done, refused)

    def touched(self) -> list[str]:
        """What the servicers asked of the backend, except reads that change nothing."""
        calls = self.data_plane.names() + self.producer_ids.names() + self.controller.names() + self.coordinator.names()
        calls += self.locate.names() + self.host.names()
        # The produce path is always called (it answers refused topics itself, test below): what
        # counts is what it appended.
        return [name for name in calls if name not in ("broker_config", "produce")] + [f"append {t}" for t in self.appended]


backend = Backend()


def servicers(authorizer: Authorizer) -> dict[str, object]:
    global backend
    backend = Backend()
    broker = BrokerService(CONFIG, PUBLISHER, None, lambda: None, backend.data_plane, authorizer)
    controller = ControllerService(CONFIG, PUBLISHER, None, backend.controller, backend.quorum, lambda: 1, authorizer)
    groups = GroupService(backend.coordinator, backend.locate.locate, 1, authorizer)
    replication = ReplicationService(backend.host, authorizer, History(BrokerMetrics(CollectorRegistry()), lambda: None))
    return {"Broker": broker, "Controller": controller, "Group": groups, "Replication": replication}


TP = common_pb2.TopicPartition
TOPIC_CONFIG = metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_TOPIC, topic_name="a")

#: method -> (request; for client streams the list of messages read; whether the server streams).
CASES: dict[str, tuple[object, bool]] = {
    "/freshet.v1.Broker/Metadata": (broker_pb2.MetadataRequest(topics=["b"]), False),
    "/freshet.v1.Broker/Produce": (broker_pb2.ProduceRequest(acks=1, partitions=[broker_pb2.PartitionRecords(topic="b", partition=0)]), False),
    "/freshet.v1.Broker/ProduceStream": ([broker_pb2.ProduceRequest(acks=1, partitions=[broker_pb2.PartitionRecords(topic="b")])], True),
    "/freshet.v1.Broker/Fetch": (broker_pb2.FetchRequest(partitions=[broker_pb2.PartitionFetch(topic="b")]), False),
    "/freshet.v1.Broker/FetchStream": (broker_pb2.FetchRequest(partitions=[broker_pb2.PartitionFetch(topic="b")]), True),
    "/freshet.v1.Broker/ListOffsets": (broker_pb2.ListOffsetsRequest(partitions=[broker_pb2.PartitionOffsetQuery(topic="b")]), False),
    "/freshet.v1.Broker/DescribeLogDirs": (broker_pb2.DescribeLogDirsRequest(), False),
    "/freshet.v1.Broker/InitProducerId": (broker_pb2.InitProducerIdRequest(), False),
    "/freshet.v1.Controller/CreateTopics": (controller_pb2.CreateTopicsRequest(topics=[controller_pb2.CreatableTopic(name="b")]), False),
    "/freshet.v1.Controller/DeleteTopics": (controller_pb2.DeleteTopicsRequest(names=["a"]), False),
    "/freshet.v1.Controller/CreatePartitions": (controller_pb2.CreatePartitionsRequest(topics=[controller_pb2.PartitionsIncrease(topic="a", count=3)]), False),
    "/freshet.v1.Controller/ElectLeaders": (controller_pb2.ElectLeadersRequest(), False),
    "/freshet.v1.Controller/AlterPartitionReassignments": (controller_pb2.AlterPartitionReassignmentsRequest(), False),
    "/freshet.v1.Controller/ListPartitionReassignments": (controller_pb2.ListPartitionReassignmentsRequest(), False),
    "/freshet.v1.Controller/IncrementalAlterConfigs": (
        controller_pb2.IncrementalAlterConfigsRequest(resources=[controller_pb2.AlterConfigsResource(resource=TOPIC_CONFIG)]), False),
    "/freshet.v1.Controller/DescribeConfigs": (controller_pb2.DescribeConfigsRequest(resources=[TOPIC_CONFIG]), False),
    "/freshet.v1.Controller/DescribeCluster": (controller_pb2.DescribeClusterRequest(), False),
    "/freshet.v1.Controller/DescribeQuorum": (controller_pb2.DescribeQuorumRequest(), False),
    "/freshet.v1.Controller/DecommissionBroker": (controller_pb2.DecommissionBrokerRequest(node_id=1), False),
    # no topics: a caller who gets past the check is refused INVALID_ARGUMENT at once
    "/freshet.v1.Controller/GenerateReassignment": (controller_pb2.GenerateReassignmentRequest(), True),
    # from_offset -5 is invalid: a caller who gets past the check is refused INVALID_ARGUMENT at once
    "/freshet.v1.Controller/WatchMetadata": (controller_pb2.WatchMetadataRequest(from_offset=-5), True),
    "/freshet.v1.Controller/UpsertUserScramCredentials": (controller_pb2.UpsertUserScramCredentialsRequest(), False),
    "/freshet.v1.Controller/DeleteUserScramCredentials": (controller_pb2.DeleteUserScramCredentialsRequest(), False),
    "/freshet.v1.Controller/DescribeUserScramCredentials": (controller_pb2.DescribeUserScramCredentialsRequest(), False),
    "/freshet.v1.Controller/CreateAcls": (controller_pb2.CreateAclsRequest(), False),
    "/freshet.v1.Controller/DeleteAcls": (controller_pb2.DeleteAclsRequest(), False),
    "/freshet.v1.Controller/DescribeAcls": (controller_pb2.DescribeAclsRequest(), False),
    "/freshet.v1.Controller/BrokerHeartbeat": ([controller_pb2.BrokerHeartbeatRequest()], True),
    "/freshet.v1.Controller/AlterPartition": (controller_pb2.AlterPartitionRequest(), False),
    "/freshet.v1.Controller/AllocateProducerIds": (controller_pb2.AllocateProducerIdsRequest(), False),
    "/freshet.v1.Replication/ReplicaFetch": ([], True),
    "/freshet.v1.Replication/RecordTimestamps": (
        replication_pb2.RecordTimestampsRequest(queries=[replication_pb2.RecordTimestampQuery(topic="a")]), False),
    "/freshet.v1.Replication/ConsoleSeries": (replication_pb2.ConsoleSeriesRequest(), False),
    "/freshet.v1.Group/FindCoordinator": (group_pb2.FindCoordinatorRequest(group_ids=["h"]), False),
    "/freshet.v1.Group/ConsumerGroupHeartbeat": (group_pb2.ConsumerGroupHeartbeatRequest(group_id="h"), False),
    "/freshet.v1.Group/OffsetCommit": (group_pb2.OffsetCommitRequest(group_id="h", partitions=[group_pb2.OffsetCommitPartition(topic="a")]), False),
    "/freshet.v1.Group/OffsetFetch": (group_pb2.OffsetFetchRequest(group_id="h"), False),
    "/freshet.v1.Group/ListGroups": (group_pb2.ListGroupsRequest(), False),
    "/freshet.v1.Group/DescribeGroups": (group_pb2.DescribeGroupsRequest(group_ids=["h"]), False),
    "/freshet.v1.Group/DeleteGroups": (group_pb2.DeleteGroupsRequest(group_ids=["h"]), False),
}


def invoke(principal: str, method: str, request=None, authorizer=None):
    """Run `method` as `principal`: (the answer, the context, the audit lines)."""
    authorizer = authorizer or make_authorizer()
    service_name, name = method.rsplit("/", 1)
    servicer = servicers(authorizer)[service_name.rsplit(".", 1)[1]]
    default, _ = CASES[method]
    request = default if request is None else request
    context = FakeContext(reads=request if isinstance(request, list) else None)
    handler = getattr(servicer, name)
    audit: list[dict] = []

    class Capture(logging.Handler):
        def emit(self, record):
            audit.append(json.loads(record.getMessage()))

    capture = Capture()
    logger = logging.getLogger("freshet.audit")
    logger.addHandler(capture)
    level = logger.level
    logger.setLevel(logging.INFO)

    async def call():
        token = bind_caller(Caller(principal, "10.0.0.9"))
        try:
            return await handler(None if isinstance(request, list) else request, context)
        except grpc.aio.AbortError:
            return None
        finally:
            unbind_caller(token)

    try:
        answer = asyncio.run(call())
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
    return answer, context, audit


def refusal_codes(answer, context) -> set[int]:
    """The error codes a refused call answered with: the aborted status's, or every per-item error."""
    if context.aborts:
        code, _, trailing = context.aborts[0]
        detail = status.detail_from_metadata(trailing)
        assert code == grpc.StatusCode.PERMISSION_DENIED, context.aborts
        return {detail.code}
    messages = [answer] if answer is not None else []
    messages += context.written
    codes = set()
    for message in messages:
        for field in ("results", "topics", "coordinators", "groups", "replicas"):
            for item in getattr(message, field, ()):
                if "error" in item.DESCRIPTOR.fields_by_name:
                    codes.add(item.error.code)
    return codes


def grpc_methods() -> set[str]:
    methods = set()
    for module in (broker_pb2, controller_pb2, group_pb2, replication_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            methods |= {f"/{service.full_name}/{method.name}" for method in service.methods}
    return methods


def test_the_table_has_a_decision_for_every_grpc_method_of_every_service():
    assert set(GRPC_RULES) == grpc_methods()
    assert set(CASES) == grpc_methods(), "every method needs a denial case below"


@pytest.mark.parametrize("method", sorted(CASES))
def test_a_principal_without_rights_is_refused_by_every_method_and_nothing_happens(method):
    answer, context, audit = invoke(MALLORY, method)
    rules = GRPC_RULES[method]
    if method == "/freshet.v1.Group/ListGroups":
        assert list(answer.groups) == [] and audit == [], "listings are filtered, not refused"
        return
    assert backend.touched() == [], f"{method} reached the backend: {backend.touched()}"
    codes = refusal_codes(answer, context)
    assert codes and codes <= AUTHORIZATION_CODES, (method, codes)
    assert audit, "every denial is audited"
    for line in audit:
        assert line["principal"] == MALLORY and line["event"] == "authorization_denied"
        decided = (Operation.from_name(line["operation"]), ResourceType[line["resource_type"].upper()])
        assert decided in {(rule.operation, rule.resource_type) for rule in rules}, (method, line)


@pytest.mark.parametrize("method", sorted(CASES))
def test_a_super_user_gets_through_every_method(method):
    answer, context, audit = invoke(ADMIN, method)
    assert audit == []
    expected = [grpc.StatusCode.INVALID_ARGUMENT] if method.endswith(("/WatchMetadata", "/GenerateReassignment")) else []
    assert [code for code, _, _ in context.aborts] == expected, (method, context.aborts)
    if not context.aborts:
        assert not refusal_codes(answer, context) & AUTHORIZATION_CODES


def test_with_security_off_nothing_is_checked():
    authorizer = Authorizer(SecuritySettings(), lambda: EMPTY_IMAGE)
    for method in ("/freshet.v1.Broker/Produce", "/freshet.v1.Controller/DeleteTopics", "/freshet.v1.Group/DeleteGroups"):
        answer, context, audit = invoke(MALLORY, method, authorizer=authorizer)
        assert (context.aborts, audit) == ([], [])
        assert backend.touched(), method


def test_produce_refuses_only_the_partitions_of_unwritable_topics():
    acls = ACLS + (allow(ALICE, Operation.WRITE, ResourceType.TOPIC, "a"),)
    request = broker_pb2.ProduceRequest(acks=1, partitions=[
        broker_pb2.PartitionRecords(topic="a", partition=0), broker_pb2.PartitionRecords(topic="b", partition=0),
    ])
    answer, _, audit = invoke(ALICE, "/freshet.v1.Broker/Produce", request, make_authorizer(acls))
    assert [(r.topic, r.error.code) for r in answer.results] == [("a", E.NONE), ("b", E.TOPIC_AUTHORIZATION_FAILED)]
    assert answer.results[1].error.message == "User:alice is not authorized to Write topic 'b'"
    assert backend.appended == ["a"]
    assert [(line["operation"], line["resource"]) for line in audit] == [("Write", "b")]


def test_fetch_and_list_offsets_answer_denied_partitions_and_serve_the_others():
    request = broker_pb2.FetchRequest(partitions=[broker_pb2.PartitionFetch(topic="a"), broker_pb2.PartitionFetch(topic="b")])
    answer, _, _ = invoke(ALICE, "/freshet.v1.Broker/Fetch", request)
    assert sorted((r.topic, r.error.code) for r in answer.results) == [("a", E.NONE), ("b", E.TOPIC_AUTHORIZATION_FAILED)]
    assert [p.topic for p in backend.data_plane.calls[0][1][0].partitions] == ["a"]
    queries = broker_pb2.ListOffsetsRequest(partitions=[broker_pb2.PartitionOffsetQuery(topic=t) for t in "ba"])
    answer, _, _ = invoke(ALICE, "/freshet.v1.Broker/ListOffsets", queries)
    assert [(r.topic, r.error.code) for r in answer.results] == [("b", E.TOPIC_AUTHORIZATION_FAILED), ("a", E.NONE)]


def test_a_fetch_stream_answers_denied_partitions_once_and_streams_the_others():
    request = broker_pb2.FetchRequest(partitions=[broker_pb2.PartitionFetch(topic="a"), broker_pb2.PartitionFetch(topic="b")])
    _, context, _ = invoke(ALICE, "/freshet.v1.Broker/FetchStream", request)
    assert [(r.topic, r.error.code) for r in context.written[0].results] == [("b", E.TOPIC_AUTHORIZATION_FAILED)]
    assert [p.topic for p in backend.data_plane.calls[0][1][0].partitions] == ["a"]


def test_commits_need_read_on_the_group_and_each_topic():
    request = group_pb2.OffsetCommitRequest(group_id="g", partitions=[
        group_pb2.OffsetCommitPartition(topic="a"), group_pb2.OffsetCommitPartition(topic="b"),
    ])
    answer, context, _ = invoke(ALICE, "/freshet.v1.Group/OffsetCommit", request)
    assert sorted((r.topic, r.error.code) for r in answer.results) == [("a", E.NONE), ("b", E.TOPIC_AUTHORIZATION_FAILED)]
    assert [p.topic for p in backend.coordinator.calls[0][1][0].partitions] == ["a"]
    request.group_id = "other"
    _, context, _ = invoke(ALICE, "/freshet.v1.Group/OffsetCommit", request)
    assert refusal_codes(None, context) == {E.GROUP_AUTHORIZATION_FAILED}
    assert backend.touched() == []


def test_offset_fetch_of_every_partition_leaves_out_hidden_topics_and_list_groups_filters():
    answer, _, audit = invoke(ALICE, "/freshet.v1.Group/OffsetFetch", group_pb2.OffsetFetchRequest(group_id="g"))
    assert [r.topic for r in answer.results] == ["a"] and audit == []
    answer, _, _ = invoke(ALICE, "/freshet.v1.Group/ListGroups")
    assert [g.group_id for g in answer.groups] == ["g"]
    cluster_describer = ACLS + (allow(ALICE, Operation.DESCRIBE, ResourceType.CLUSTER, "kafka-cluster"),)
    answer, _, _ = invoke(ALICE, "/freshet.v1.Group/ListGroups", authorizer=make_authorizer(cluster_describer))
    assert [g.group_id for g in answer.groups] == ["g", "h"]


def test_deny_beats_allow_and_prefixed_patterns_match():
    acls = (
        allow(ALICE, Operation.ALL, ResourceType.TOPIC, "logs.", PatternType.PREFIXED),
        allow(ALICE, Operation.WRITE, ResourceType.TOPIC, "logs.secret", permission=Permission.DENY),
    )
    request = broker_pb2.ProduceRequest(acks=1, partitions=[
        broker_pb2.PartitionRecords(topic="logs.app"), broker_pb2.PartitionRecords(topic="logs.secret"),
        broker_pb2.PartitionRecords(topic="metrics"),
    ])
    answer, _, _ = invoke(ALICE, "/freshet.v1.Broker/Produce", request, make_authorizer(acls))
    assert [r.error.code for r in answer.results] == [E.NONE, E.TOPIC_AUTHORIZATION_FAILED, E.TOPIC_AUTHORIZATION_FAILED]
    assert backend.appended == ["logs.app"]


def test_init_producer_id_needs_idempotent_write_or_write_on_some_topic():
    method = "/freshet.v1.Broker/InitProducerId"
    answer, context, _ = invoke(ALICE, method)
    assert refusal_codes(answer, context) == {E.CLUSTER_AUTHORIZATION_FAILED}
    writer = ACLS + (allow(ALICE, Operation.WRITE, ResourceType.TOPIC, "x", PatternType.PREFIXED),)
    answer, context, _ = invoke(ALICE, method, authorizer=make_authorizer(writer))
    assert answer.producer_id == 7
    denied_everywhere = writer + (allow(ALICE, Operation.WRITE, ResourceType.TOPIC, "*", permission=Permission.DENY),)
    _, context, _ = invoke(ALICE, method, authorizer=make_authorizer(denied_everywhere))
    assert refusal_codes(None, context) == {E.CLUSTER_AUTHORIZATION_FAILED}
    idempotent = ACLS + (allow(ALICE, Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, "kafka-cluster"),)
    answer, _, _ = invoke(ALICE, method, authorizer=make_authorizer(idempotent))
    assert answer.producer_id == 7


def test_the_produce_path_appends_nothing_of_a_refused_topic():
    """The shared produce path answers refused topics before looking a partition up."""
    looked_up = []

    def leader_partition(topic, number):
        looked_up.append(topic)
        return None, status.detail(E.UNKNOWN_TOPIC, "no")

    path = ProducePath(types.SimpleNamespace(leader_partition=leader_partition), types.SimpleNamespace(monotonic_ms=lambda: 0))
    answers = []
    request = broker_pb2.ProduceRequest(acks=1, partitions=[broker_pb2.PartitionRecords(topic=t) for t in "ab"])
    path.produce(request, answers.append, {"b": "User:x is not authorized to Write topic 'b'"})
    assert looked_up == ["a"]
    assert [r.error.code for r in answers[0].results] == [E.UNKNOWN_TOPIC, E.TOPIC_AUTHORIZATION_FAILED]


def test_rules_describe_themselves():
    assert all(rule.describe() for rules in GRPC_RULES.values() for rule in rules)
    assert {rule.scope for rules in GRPC_RULES.values() for rule in rules} <= set(Scope)
