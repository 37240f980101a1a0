"""ConsumerGroupHeartbeat (KIP-848) and the minimal FindCoordinator over the Kafka protocol.

Goal: a Kafka heartbeat is mapped onto the one coordinator heartbeat path (the real
GroupCoordinator and ConsumerGroup, with a manual clock) and its answer back with Kafka's codes:
member ids (server-given at v0, client-generated at v1), "null: unchanged" fields, topic ids
<-> names, assignor names, Kafka's request validation, and the coordinator's errors. A Kafka
member and a gRPC (SDK) member share one group. Every response is encoded with its version's kio
writer, so a wrong field type fails here and not in a client.

Reference: KIP-848 (ConsumerGroupHeartbeat), KIP-1082 (client-generated member ids), Kafka's
GroupMetadataManager request checks; KIP-699 (batched FindCoordinator).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import uuid

import pytest
from freshet.server.groups.coordinator import CoordinatorConfig, GroupCoordinator
from freshet.server.kafka import codec
from freshet.server.kafka.consumer_group_api import ConsumerGroupHeartbeatHandler
from freshet.v1 import group_pb2
from kio.index import load_request_schema

from tests.unit.server.groups.test_group_coordinator import Clock, MemoryOffsetsLog, loaded

ORDERS_ID = uuid.UUID(int=0xA1)
AUDIT_ID = uuid.UUID(int=0xB2)
UNKNOWN_MEMBER_ID = 25
FENCED_MEMBER_EPOCH = 110
NOT_COORDINATOR = 16
COORDINATOR_LOAD_IN_PROGRESS = 14
GROUP_MAX_SIZE_REACHED = 81
INVALID_REQUEST = 42
UNSUPPORTED_ASSIGNOR = 112


@dataclasses.dataclass
class Topic:
    name: str
    topic_id: bytes
    partitions: tuple = ()


class Image:
    """The two things the handlers read of a MetadataImage: topics by id and by name."""

    def __init__(self, topics: dict[str, uuid.UUID]) -> None:
        self.topics_by_id = {tid.bytes: Topic(name, tid.bytes) for name, tid in topics.items()}

    def topic(self, name):
        return next((t for t in self.topics_by_id.values() if t.name == name), None)


IMAGE = Image({"orders": ORDERS_ID, "audit": AUDIT_ID})


def coordinator(clock, max_group_size=1000):
    ids = iter(f"server-{i}" for i in range(1000))
    return GroupCoordinator(
        MemoryOffsetsLog(),
        num_partitions=lambda: 1,
        partition_counts=lambda: {"orders": 4, "audit": 2},
        clock_ms=clock,
        config=CoordinatorConfig(max_group_size=max_group_size),
        new_member_id=lambda: next(ids),
    )


def heartbeat(version=1, *, member_id="m1", epoch=0, owned=(), names=("orders",), assignor=None, regex=None,
              rebalance_ms=60000, instance_id=None, rack_id=None, group="g"):
    schema = load_request_schema(68, version)
    partitions = codec.nested(schema, "TopicPartitions")
    owned_field = None if owned is None else tuple(
        partitions(topic_id=tid, partitions=tuple(ps)) for tid, ps in owned
    )
    fields = dict(
        group_id=group, member_id=member_id, member_epoch=epoch, instance_id=instance_id, rack_id=rack_id,
        rebalance_timeout=datetime.timedelta(milliseconds=rebalance_ms),
        subscribed_topic_names=None if names is None else tuple(names), server_assignor=assignor,
        topic_partitions=owned_field,
    )
    if version >= 1:
        fields["subscribed_topic_regex"] = regex
    body = schema(**fields)
    return codec.Request(api_key=68, api_version=version, correlation_id=7, client_id="rdkafka", body=body, size=0)


async def call(handler, request):
    """The handler's answer, after checking that it encodes at the request's version."""
    body = await handler.handle(request)
    codec.encode_response(request.api_key, request.api_version, request.correlation_id, body)
    return body


def assigned(body) -> dict[uuid.UUID, tuple[int, ...]]:
    assert body.assignment is not None
    return {tp.topic_id: tuple(tp.partitions) for tp in body.assignment.topic_partitions}


async def ready_handler(clock, **kwargs):
    group_coordinator = await loaded(coordinator(clock, **kwargs))
    return group_coordinator, ConsumerGroupHeartbeatHandler(group_coordinator, lambda: IMAGE, node_id=1)


def test_members_get_assignments_by_topic_id_and_a_partition_moves_only_once_released():
    async def scenario():
        clock = Clock()
        group_coordinator, handler = await ready_handler(clock)
        first = await call(handler, heartbeat(member_id="m1"))
        assert (first.error_code, first.member_id, first.member_epoch) == (0, "m1", 1)
        assert codec.milliseconds(first.heartbeat_interval) == group_coordinator.config.heartbeat_interval_ms
        assert assigned(first) == {ORDERS_ID: (0, 1, 2, 3)}

        second = await call(handler, heartbeat(member_id="m2"))
        assert second.error_code == 0 and second.member_epoch == 2
        assert assigned(second) == {}                   # m1 still owns everything
        # m1 learns its new (smaller) assignment; it still owns all four until it says otherwise.
        m1 = await call(handler, heartbeat(member_id="m1", epoch=1, owned=[(ORDERS_ID, (0, 1, 2, 3))], names=None))
        kept = assigned(m1)[ORDERS_ID]
        assert len(kept) == 2
        again = await call(handler, heartbeat(member_id="m2", epoch=2, owned=[], names=None))
        assert again.assignment is None or assigned(again).get(ORDERS_ID, ()) == ()
        # m1 released the others: now m2 gets them.
        await call(handler, heartbeat(member_id="m1", epoch=m1.member_epoch, owned=[(ORDERS_ID, kept)], names=None))
        moved = await call(handler, heartbeat(member_id="m2", epoch=again.member_epoch, owned=[], names=None))
        assert set(assigned(moved)[ORDERS_ID]) == {0, 1, 2, 3} - set(kept)
        group_coordinator._partitions[0].groups["g"].check_invariants()
    asyncio.run(scenario())


def test_v0_gives_an_id_to_a_member_joining_without_one_and_v1_requires_the_client_id():
    async def scenario():
        _, handler = await ready_handler(Clock())
        body = await call(handler, heartbeat(0, member_id=""))
        assert (body.error_code, body.member_id, body.member_epoch) == (0, "server-0", 1)
        refused = await call(handler, heartbeat(1, member_id=""))
        assert refused.error_code == INVALID_REQUEST and "MemberId" in refused.error_message
    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (dict(rebalance_ms=-1), "RebalanceTimeoutMs"),
        (dict(owned=[(ORDERS_ID, (0,))]), "TopicPartitions must be empty"),
        (dict(owned=None), "TopicPartitions must be empty"),
        (dict(names=None), "SubscribedTopicNames or SubscribedTopicRegex"),
        (dict(epoch=-3), "MemberEpoch is invalid"),
        (dict(epoch=-2), "InstanceId can't be null"),
        (dict(rack_id=""), "RackId can't be empty"),
        (dict(instance_id=""), "InstanceId can't be empty"),
        (dict(group=""), "GroupId can't be empty"),
    ],
)
def test_kafka_request_checks_answer_invalid_request(fields, reason):
    async def scenario():
        _, handler = await ready_handler(Clock())
        body = await call(handler, heartbeat(**fields))
        assert body.error_code == INVALID_REQUEST
        assert reason in body.error_message
    asyncio.run(scenario())


def test_server_assignor_names_map_to_ours_and_unknown_ones_are_unsupported():
    async def scenario():
        group_coordinator, handler = await ready_handler(Clock())
        body = await call(handler, heartbeat(member_id="m1", assignor="range"))
        assert body.error_code == 0
        assert group_coordinator._partitions[0].groups["g"].assignor == "range"
        unknown = await call(handler, heartbeat(member_id="m2", assignor="cooperative-sticky"))
        assert unknown.error_code == UNSUPPORTED_ASSIGNOR
        assert "uniform" in unknown.error_message and unknown.member_id is None
    asyncio.run(scenario())


def test_coordinator_errors_leave_with_kafka_codes():
    async def scenario():
        clock = Clock()
        group_coordinator, handler = await ready_handler(clock, max_group_size=1)
        joined = await call(handler, heartbeat(member_id="m1"))
        assert joined.error_code == 0
        fenced = await call(handler, heartbeat(member_id="m1", epoch=joined.member_epoch + 5, names=None, owned=None))
        assert fenced.error_code == FENCED_MEMBER_EPOCH
        unknown = await call(handler, heartbeat(member_id="ghost", epoch=3, names=None, owned=None))
        assert unknown.error_code == UNKNOWN_MEMBER_ID
        full = await call(handler, heartbeat(member_id="m2"))
        assert full.error_code == GROUP_MAX_SIZE_REACHED
        group_coordinator.on_resign(0)
        moved = await call(handler, heartbeat(member_id="m1", epoch=1, names=None, owned=None))
        assert moved.error_code == NOT_COORDINATOR
    asyncio.run(scenario())


def test_a_partition_being_loaded_is_coordinator_load_in_progress():
    async def scenario():
        group_coordinator = GroupCoordinator(MemoryOffsetsLog(), num_partitions=lambda: 1, partition_counts=dict, clock_ms=Clock())
        handler = ConsumerGroupHeartbeatHandler(group_coordinator, lambda: IMAGE)
        group_coordinator.on_become_leader(0, 1)        # loads on a task that has not run yet
        assert not group_coordinator.is_loaded(0)
        body = await call(handler, heartbeat())
        assert body.error_code == COORDINATOR_LOAD_IN_PROGRESS
        await loaded(group_coordinator)
    asyncio.run(scenario())


def test_leaving_answers_epoch_minus_one_and_frees_the_partitions():
    async def scenario():
        group_coordinator, handler = await ready_handler(Clock())
        await call(handler, heartbeat(member_id="m1"))
        left = await call(handler, heartbeat(member_id="m1", epoch=-1, names=None, owned=None))
        assert (left.error_code, left.member_id, left.member_epoch) == (0, "m1", -1)
        assert not group_coordinator._partitions[0].groups["g"].members
        static = await call(handler, heartbeat(member_id="s1", instance_id="i-1"))
        assert static.error_code == 0
        gone = await call(handler, heartbeat(member_id="s1", epoch=-2, instance_id="i-1", names=None, owned=None))
        assert (gone.error_code, gone.member_epoch) == (0, -2)
    asyncio.run(scenario())


def test_regex_subscription_and_owned_partitions_of_unknown_topic_ids():
    async def scenario():
        _, handler = await ready_handler(Clock())
        body = await call(handler, heartbeat(member_id="m1", names=None, regex="aud.*"))
        assert assigned(body) == {AUDIT_ID: (0, 1)}
        again = await call(handler, heartbeat(
            member_id="m1", epoch=body.member_epoch, names=None,
            owned=[(AUDIT_ID, (0, 1)), (uuid.UUID(int=0xDEAD), (0,))],
        ))
        assert again.error_code == 0
    asyncio.run(scenario())


def test_a_kafka_member_and_an_sdk_member_share_one_group():
    async def scenario():
        group_coordinator, handler = await ready_handler(Clock())
        kafka = await call(handler, heartbeat(member_id="kafka-member"))
        sdk = await group_coordinator.heartbeat(group_pb2.ConsumerGroupHeartbeatRequest(
            group_id="g", member_epoch=0, subscribed_topic_names=["orders"], has_subscription=True,
            has_owned_partitions=True,
        ))
        kafka = await call(handler, heartbeat(
            member_id="kafka-member", epoch=kafka.member_epoch, names=None, owned=[(ORDERS_ID, (0, 1, 2, 3))]
        ))
        kept = assigned(kafka)[ORDERS_ID]
        await call(handler, heartbeat(
            member_id="kafka-member", epoch=kafka.member_epoch, names=None, owned=[(ORDERS_ID, kept)]
        ))
        sdk = await group_coordinator.heartbeat(group_pb2.ConsumerGroupHeartbeatRequest(
            group_id="g", member_id=sdk.member_id, member_epoch=sdk.member_epoch, has_owned_partitions=True,
        ))
        sdk_partitions = {tp.partition for tp in sdk.assignment}
        assert sdk_partitions == {0, 1, 2, 3} - set(kept) and len(kept) == 2
        group = group_coordinator._partitions[0].groups["g"]
        assert set(group.members) == {"kafka-member", sdk.member_id}
        group.check_invariants()
    asyncio.run(scenario())
