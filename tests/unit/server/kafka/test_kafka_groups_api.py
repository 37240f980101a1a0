"""The Kafka consumer-group APIs (server/kafka/groups_api.py) over a real GroupCoordinator.

Goal: each handler maps a Kafka request onto the coordinator operation the gRPC Group service uses
and its answer back with Kafka's error codes, for every version it advertises. Method: the real
GroupCoordinator over the in-memory offsets log of test_group_coordinator.py, requests built as kio
entities of a given version, every response encoded with that version's kio writer (a field a
version lacks, or a wrong type, fails here and not in a client).

Reference: Kafka protocol guide (OffsetCommit, OffsetFetch, FindCoordinator, ...), KIP-699
(batched FindCoordinator), KIP-709 (batched OffsetFetch), KIP-848 (member epochs in commits).
"""

from __future__ import annotations

import asyncio
import struct
import types

import pytest
from freshet.server import status
from freshet.server.config import KAFKA_LISTENER
from freshet.server.kafka import codec, groups_api
from freshet.v1 import common_pb2, group_pb2
from kio.index import load_request_schema

from tests.unit.server.groups.test_group_coordinator import Clock, MemoryOffsetsLog, join, loaded, make

E = common_pb2.ErrorCode


def entity(api_key: int, version: int, class_name: str | None = None, **fields):
    schema = load_request_schema(api_key, version)
    return codec.build(codec.nested(schema, class_name) if class_name else schema, **fields)


def call(handler, version: int, body):
    async def run():
        answer = handler.handle(codec.Request(handler.api_key, version, 1, "test", body, 0))
        return await answer if asyncio.iscoroutine(answer) else answer

    answer = asyncio.get_event_loop().run_until_complete(run())
    codec.encode_response(handler.api_key, version, 1, answer)      # every answer is a valid response
    return answer


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()


@pytest.fixture
def coordinator(loop):
    return loop.run_until_complete(loaded(make(MemoryOffsetsLog(), Clock())))


def commit_body(version, group="g", offset=42, member_id="", epoch=-1, topic="orders", partitions=(0,)):
    parts = tuple(
        entity(8, version, "OffsetCommitRequestPartition", partition_index=p, committed_offset=offset + p,
               committed_leader_epoch=3, committed_metadata="meta", commit_timestamp=-1)
        for p in partitions
    )
    topics = (entity(8, version, "OffsetCommitRequestTopic", name=topic, partitions=parts),)
    return entity(8, version, group_id=group, generation_id_or_member_epoch=epoch, generation_id=epoch,
                  member_id=member_id, group_instance_id=None, retention_time=-1, topics=topics)


def fetch_body(version, group="g", topics=((("orders"), (0, 1)),)):
    if topics is not None:
        topics = tuple(
            entity(9, version, "OffsetFetchRequestTopics" if version >= 8 else "OffsetFetchRequestTopic",
                   name=name, partition_indexes=indexes)
            for name, indexes in topics
        )
    if version >= 8:
        groups = (entity(9, version, "OffsetFetchRequestGroup", group_id=group, topics=topics),)
        return entity(9, version, groups=groups, require_stable=True)
    return entity(9, version, group_id=group, topics=topics, require_stable=False)


def fetched(answer, version):
    """({(topic, partition): (offset, leader epoch, metadata, error)}, group-level error)."""
    if version >= 8:
        [group] = answer.groups
        topics, error = group.topics, group.error_code
    else:
        topics, error = answer.topics, getattr(answer, "error_code", 0)
    found = {
        (topic.name, p.partition_index): (p.committed_offset, getattr(p, "committed_leader_epoch", -1), p.metadata,
                                          int(p.error_code))
        for topic in topics for p in topic.partitions
    }
    return found, int(error)


def commit_codes(answer):
    return {(t.name, p.partition_index): int(p.error_code) for t in answer.topics for p in t.partitions}


@pytest.mark.parametrize("version", range(2, 10))
def test_a_standalone_commit_is_fetched_back_at_every_version(coordinator, version):
    commit = groups_api.OffsetCommitHandler(coordinator, 1)
    fetch = groups_api.OffsetFetchHandler(coordinator, 1)
    assert commit_codes(call(commit, version, commit_body(version))) == {("orders", 0): 0}
    for fetch_version in range(1, 10):
        found, error = fetched(call(fetch, fetch_version, fetch_body(fetch_version)), fetch_version)
        assert error == 0
        epoch = 3 if version >= 6 and fetch_version >= 5 else -1
        assert found[("orders", 0)] == (42, epoch, "meta", 0)
        assert found[("orders", 1)] == (-1, -1, "", 0)
    # The same offsets through the coordinator operation the gRPC service calls.
    response = asyncio.get_event_loop().run_until_complete(
        coordinator.fetch_offsets(group_pb2.OffsetFetchRequest(group_id="g"))
    )
    assert [(r.topic, r.partition, r.offset) for r in response.results] == [("orders", 0, 42)]


@pytest.mark.parametrize("version", range(2, 10))
def test_null_topics_fetches_every_committed_partition(coordinator, version):
    call(groups_api.OffsetCommitHandler(coordinator, 1), 8, commit_body(8, partitions=(0, 2)))
    found, error = fetched(call(groups_api.OffsetFetchHandler(coordinator, 1), version, fetch_body(version, topics=None)), version)
    assert error == 0
    assert {tp: value[0] for tp, value in found.items()} == {("orders", 0): 42, ("orders", 2): 44}


def test_member_commits_are_checked_against_the_member_epoch(coordinator, loop):
    joined = loop.run_until_complete(coordinator.heartbeat(join()))
    owned: list = []
    for _ in range(3):
        owned = [(tp.topic, tp.partition) for tp in joined.assignment] if joined.has_assignment else owned
        joined = loop.run_until_complete(coordinator.heartbeat(join(member_id=joined.member_id, epoch=joined.member_epoch, owned=owned)))
    member, epoch = joined.member_id, joined.member_epoch
    handler = groups_api.OffsetCommitHandler(coordinator, 1)
    assert commit_codes(call(handler, 9, commit_body(9, member_id=member, epoch=epoch))) == {("orders", 0): 0}
    assert commit_codes(call(handler, 9, commit_body(9, member_id=member, epoch=epoch + 1))) == {("orders", 0): E.FENCED_MEMBER_EPOCH}
    assert commit_codes(call(handler, 9, commit_body(9, member_id="nobody", epoch=1))) == {("orders", 0): E.UNKNOWN_MEMBER}
    # A simple-consumer commit (no member) while the group has members.
    assert commit_codes(call(handler, 7, commit_body(7))) == {("orders", 0): E.NON_EMPTY_GROUP}
    # DescribeGroups shows the member with its assignment in ConsumerProtocol format.
    for version in range(0, 7):
        [group] = call(groups_api.DescribeGroupsHandler(coordinator, 1), version, entity(15, version, groups=("g",), include_authorized_operations=False)).groups
        assert (int(group.error_code), group.group_state, group.protocol_type) == (0, "Stable", "consumer")
        [described] = group.members
        assert described.member_id == member
        data = described.member_assignment
        version_, topics, name_length = struct.unpack_from(">hih", data)
        assert (version_, topics, data[8:8 + name_length]) == (0, 1, b"orders")
        (count,) = struct.unpack_from(">i", data, 8 + name_length)
        assert sorted(struct.unpack_from(f">{count}i", data, 12 + name_length)) == [0, 1, 2, 3]
        assert described.member_metadata == groups_api.consumer_subscription(["orders"])
    # OffsetDelete keeps partitions of a topic the member subscribes to.
    call(groups_api.OffsetCommitHandler(coordinator, 1), 9, commit_body(9, member_id=member, epoch=epoch, partitions=(1,)))
    answer = call(groups_api.OffsetDeleteHandler(coordinator, 1), 0, entity(47, 0, group_id="g", topics=(
        entity(47, 0, "OffsetDeleteRequestTopic", name="orders", partitions=(entity(47, 0, "OffsetDeleteRequestPartition", partition_index=1),)),
    )))
    assert commit_codes(answer) == {("orders", 1): groups_api.GROUP_SUBSCRIBED_TO_TOPIC}
    # DeleteGroups: NON_EMPTY_GROUP while it has members.
    [result] = call(groups_api.DeleteGroupsHandler(coordinator, 1), 2, entity(42, 2, groups_names=("g",))).results
    assert int(result.error_code) == E.NON_EMPTY_GROUP


def test_a_broker_that_is_not_the_coordinator_answers_not_coordinator(loop):
    coordinator = make(MemoryOffsetsLog(), Clock())            # leads no __consumer_offsets partition
    assert commit_codes(call(groups_api.OffsetCommitHandler(coordinator, 1), 8, commit_body(8))) == {("orders", 0): E.NOT_COORDINATOR}
    for version in range(1, 10):
        answer = call(groups_api.OffsetFetchHandler(coordinator, 1), version, fetch_body(version))
        found, error = fetched(answer, version)
        if version == 1:
            assert {value[3] for value in found.values()} == {E.NOT_COORDINATOR}
        else:
            assert error == E.NOT_COORDINATOR
    [group] = call(groups_api.DescribeGroupsHandler(coordinator, 1), 5, entity(15, 5, groups=("g",), include_authorized_operations=False)).groups
    assert int(group.error_code) == E.NOT_COORDINATOR
    [result] = call(groups_api.DeleteGroupsHandler(coordinator, 1), 1, entity(42, 1, groups_names=("g",))).results
    assert int(result.error_code) == E.NOT_COORDINATOR


def test_delete_groups_and_offsets_of_an_empty_group(coordinator):
    call(groups_api.OffsetCommitHandler(coordinator, 1), 8, commit_body(8, partitions=(0, 1)))
    call(groups_api.OffsetCommitHandler(coordinator, 1), 8, commit_body(8, topic="other", partitions=(0,)))
    answer = call(groups_api.OffsetDeleteHandler(coordinator, 1), 0, entity(47, 0, group_id="g", topics=(
        entity(47, 0, "OffsetDeleteRequestTopic", name="orders", partitions=(entity(47, 0, "OffsetDeleteRequestPartition", partition_index=1),)),
    )))
    assert (int(answer.error_code), commit_codes(answer)) == (0, {("orders", 1): 0})
    found, _ = fetched(call(groups_api.OffsetFetchHandler(coordinator, 1), 8, fetch_body(8, topics=None)), 8)
    assert sorted(found) == [("orders", 0), ("other", 0)]
    # ListGroups: state filter (case-insensitive), types filter.
    listed = call(groups_api.ListGroupsHandler(coordinator), 5, entity(16, 5, states_filter=("EMPTY",), types_filter=()))
    assert [(g.group_id, g.group_state, g.protocol_type, g.group_type) for g in listed.groups] == [("g", "Empty", "consumer", "consumer")]
    assert call(groups_api.ListGroupsHandler(coordinator), 4, entity(16, 4, states_filter=("Stable",))).groups == ()
    assert [g.group_id for g in call(groups_api.ListGroupsHandler(coordinator), 0, entity(16, 0)).groups] == ["g"]
    results = call(groups_api.DeleteGroupsHandler(coordinator, 1), 2, entity(42, 2, groups_names=("g", "missing"))).results
    assert [(r.group_id, int(r.error_code)) for r in results] == [("g", 0), ("missing", E.GROUP_ID_NOT_FOUND)]
    found, _ = fetched(call(groups_api.OffsetFetchHandler(coordinator, 1), 8, fetch_body(8, topics=None)), 8)
    assert found == {}
    [group] = call(groups_api.DescribeGroupsHandler(coordinator, 1), 6, entity(15, 6, groups=("g",), include_authorized_operations=False)).groups
    assert int(group.error_code) == E.GROUP_ID_NOT_FOUND
    answer = call(groups_api.OffsetDeleteHandler(coordinator, 1), 0, entity(47, 0, group_id="g", topics=()))
    assert int(answer.error_code) == E.GROUP_ID_NOT_FOUND


def kafka_image(node_ids=(1, 2)):
    brokers = {
        node_id: types.SimpleNamespace(rack="", listener=lambda name, n=node_id: ("kafka-host", 9090 + n) if name == KAFKA_LISTENER else None)
        for node_id in node_ids
    }
    return types.SimpleNamespace(active_broker_ids=lambda: sorted(brokers), brokers=brokers)


def test_find_coordinator_answers_the_kafka_address_of_the_offsets_partition_leader(loop):
    async def locate(group_id):
        if group_id == "leaderless":
            return group_pb2.Coordinator(group_id=group_id, error=status.detail(E.COORDINATOR_NOT_AVAILABLE, "no leader"))
        node = 2 if group_id == "g" else 3                       # broker 3 has no Kafka listener
        return group_pb2.Coordinator(group_id=group_id, coordinator=common_pb2.BrokerEndpoint(node_id=node, host="grpc", port=1),
                                     error=status.ok_detail())

    handler = groups_api.FindCoordinatorHandler(locate, kafka_image)
    for version in range(0, 4):
        answer = call(handler, version, entity(10, version, key="g", key_type=0))
        assert (int(answer.error_code), answer.node_id, answer.host, answer.port) == (0, 2, "kafka-host", 9092)
        answer = call(handler, version, entity(10, version, key="leaderless", key_type=0))
        assert (int(answer.error_code), answer.node_id) == (E.COORDINATOR_NOT_AVAILABLE, -1)
    for version in range(1, 4):
        answer = call(handler, version, entity(10, version, key="t", key_type=1))
        assert int(answer.error_code) == groups_api.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    for version in range(4, 7):
        answer = call(handler, version, entity(10, version, key_type=0, coordinator_keys=("g", "leaderless", "elsewhere")))
        assert [(c.key, int(c.error_code), c.node_id, c.port) for c in answer.coordinators] == [
            ("g", 0, 2, 9092), ("leaderless", E.COORDINATOR_NOT_AVAILABLE, -1, -1), ("elsewhere", E.COORDINATOR_NOT_AVAILABLE, -1, -1),
        ]
        answer = call(handler, version, entity(10, version, key_type=1, coordinator_keys=("t",)))
        assert [int(c.error_code) for c in answer.coordinators] == [groups_api.TRANSACTIONAL_ID_AUTHORIZATION_FAILED]


def test_consumer_protocol_assignment_layout():
    data = groups_api.consumer_assignment([("b", 1), ("a", 2), ("a", 0)])
    assert data == (struct.pack(">hi", 0, 2) + struct.pack(">h", 1) + b"a" + struct.pack(">iii", 2, 0, 2)
                    + struct.pack(">h", 1) + b"b" + struct.pack(">ii", 1, 1) + struct.pack(">i", -1))
