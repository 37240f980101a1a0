"""GroupCoordinator over an in-memory offsets log: commits are answered only after their record
is appended, a new coordinator rebuilds groups from the log (failover), losing leadership drops the
groups (NOT_COORDINATOR), reset offsets are refused while members are active."""

from __future__ import annotations

import asyncio

import pytest
from freshet.server import errors
from freshet.server.groups import records as group_records
from freshet.server.groups.coordinator import CoordinatorConfig, GroupCoordinator
from freshet.v1 import common_pb2, group_pb2


class MemoryOffsetsLog:
    def __init__(self) -> None:
        self.batches: dict[int, list[bytes]] = {}
        self.fail_next: Exception | None = None

    async def append(self, partition: int, leader_epoch: int, batch: bytes) -> None:
        await asyncio.sleep(0)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.batches.setdefault(partition, []).append(batch)

    def read_committed(self, partition: int):
        return list(self.batches.get(partition, []))


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1000

    def __call__(self) -> int:
        return self.now_ms


def make(log, clock, counts=None):
    ids = iter(f"member-{i}" for i in range(1000))
    return GroupCoordinator(
        log,
        num_partitions=lambda: 1,
        partition_counts=lambda: counts or {"orders": 4},
        clock_ms=clock,
        config=CoordinatorConfig(),
        new_member_id=lambda: next(ids),
    )


async def loaded(coordinator):
    coordinator.on_become_leader(0, 1)
    for _ in range(100):
        if coordinator.is_loaded(0):
            return coordinator
        await asyncio.sleep(0.01)
    raise AssertionError("never loaded")


def join(group="g", member_id="", epoch=0, owned=()):
    return group_pb2.ConsumerGroupHeartbeatRequest(
        group_id=group,
        member_id=member_id,
        member_epoch=epoch,
        subscribed_topic_names=["orders"],
        has_subscription=True,
        has_owned_partitions=True,
        owned_partitions=[common_pb2.TopicPartition(topic=t, partition=p) for t, p in owned],
        session_timeout_ms=10000,
    )


def commit(member_id, epoch, offset, partition=0):
    return group_pb2.OffsetCommitRequest(
        group_id="g",
        member_id=member_id,
        member_epoch=epoch,
        partitions=[group_pb2.OffsetCommitPartition(topic="orders", partition=partition, offset=offset)],
    )


def test_failover_rebuilds_members_and_offsets_from_the_log():
    async def scenario():
        log, clock = MemoryOffsetsLog(), Clock()
        first = await loaded(make(log, clock))
        joined = await first.heartbeat(join())
        assert joined.has_assignment and len(joined.assignment) == 4
        answer = await first.commit(commit(joined.member_id, joined.member_epoch, 42))
        assert answer.results[0].error.code == common_pb2.NONE
        first.on_resign(0)
        with pytest.raises(errors.NotCoordinatorError):
            await first.heartbeat(join(member_id=joined.member_id, epoch=joined.member_epoch))
        second = await loaded(make(log, clock))
        fetched = await second.fetch_offsets(group_pb2.OffsetFetchRequest(group_id="g"))
        assert [(r.topic, r.partition, r.offset) for r in fetched.results] == [("orders", 0, 42)]
        owned = [(tp.topic, tp.partition) for tp in joined.assignment]
        again = await second.heartbeat(join(member_id=joined.member_id, epoch=joined.member_epoch, owned=owned))
        assert again.member_id == joined.member_id, "the member continues without rejoining"
        described = second.describe_group("g")
        assert [m.member_id for m in described.members] == [joined.member_id]

    asyncio.run(scenario())


def test_a_commit_whose_append_fails_is_not_applied():
    async def scenario():
        log, clock = MemoryOffsetsLog(), Clock()
        coordinator = await loaded(make(log, clock))
        joined = await coordinator.heartbeat(join())
        await coordinator.commit(commit(joined.member_id, joined.member_epoch, 10))
        log.fail_next = errors.RequestTimedOutError("append", 1.0)
        with pytest.raises(errors.RequestTimedOutError):
            await coordinator.commit(commit(joined.member_id, joined.member_epoch, 20))
        fetched = await coordinator.fetch_offsets(group_pb2.OffsetFetchRequest(group_id="g"))
        assert fetched.results[0].offset == 10

    asyncio.run(scenario())


def test_expired_members_are_removed_and_persisted():
    async def scenario():
        log, clock = MemoryOffsetsLog(), Clock()
        coordinator = await loaded(make(log, clock))
        a = await coordinator.heartbeat(join())
        b = await coordinator.heartbeat(join())
        clock.now_ms += 10001
        await coordinator.expire_sessions()
        assert coordinator.list_groups().groups[0].member_count == 0
        snapshot = group_records.GroupSnapshot()
        for batch in log.read_committed(0):
            for _, key, value in group_records.decode_records(batch):
                snapshot.apply(key, value)
        assert snapshot.build(0)["g"].members == {}
        assert {a.member_id, b.member_id} == {"member-0", "member-1"}

    asyncio.run(scenario())


def test_reset_and_delete_need_a_group_without_members():
    async def scenario():
        log, clock = MemoryOffsetsLog(), Clock()
        coordinator = await loaded(make(log, clock))
        joined = await coordinator.heartbeat(join())
        with pytest.raises(errors.NonEmptyGroupError, match="1 active member"):
            await coordinator.commit(commit("", -1, 0))
        with pytest.raises(errors.NonEmptyGroupError):
            await coordinator.delete_group("g")
        leave = join(member_id=joined.member_id, epoch=-1)
        await coordinator.heartbeat(leave)
        answer = await coordinator.commit(commit("", -1, 7))
        assert answer.results[0].error.code == common_pb2.NONE
        await coordinator.delete_group("g")
        with pytest.raises(errors.GroupIdNotFoundError):
            coordinator.describe_group("g")
        fresh = await loaded(make(log, clock))
        assert fresh.list_groups().groups == []

    asyncio.run(scenario())


def test_session_timeout_outside_the_broker_bounds_is_refused():
    async def scenario():
        coordinator = await loaded(make(MemoryOffsetsLog(), Clock()))
        request = join()
        request.session_timeout_ms = 100
        with pytest.raises(errors.InvalidRequestError, match="session_timeout_ms 100"):
            await coordinator.heartbeat(request)

    asyncio.run(scenario())


def test_offsets_of_an_empty_group_expire_after_the_retention_period():
    """offsets.retention.minutes: counted from the group's newest commit (wall clock, persisted);
    groups with members keep their offsets whatever their age."""

    async def scenario():
        log, clock = MemoryOffsetsLog(), Clock()
        wall = Clock()
        coordinator = GroupCoordinator(
            log, num_partitions=lambda: 1, partition_counts=lambda: {"orders": 4}, clock_ms=clock,
            wall_clock_ms=wall, config=CoordinatorConfig(offsets_retention_ms=60000),
        )
        await loaded(coordinator)
        await coordinator.commit(commit("", -1, 5))  # an empty group ("simple" commit)
        joined = await coordinator.heartbeat(join(group="busy"))
        busy = group_pb2.OffsetCommitRequest(
            group_id="busy", member_id=joined.member_id, member_epoch=joined.member_epoch,
            partitions=[group_pb2.OffsetCommitPartition(topic="orders", partition=0, offset=1)],
        )
        await coordinator.commit(busy)
        wall.now_ms += 59000
        assert await coordinator.expire_offsets() == []
        wall.now_ms += 2000
        clock.now_ms += 1000  # the busy member keeps its session
        await coordinator.heartbeat(join(group="busy", member_id=joined.member_id, epoch=joined.member_epoch))
        assert await coordinator.expire_offsets() == ["g"]
        fresh = await loaded(make(log, clock))
        assert [g.group_id for g in fresh.list_groups().groups] == ["busy"]

    asyncio.run(scenario())


def test_deleted_offsets_stay_deleted_after_failover_and_subscribed_topics_are_kept():
    async def scenario():
        log, clock = MemoryOffsetsLog(), Clock()
        first = await loaded(make(log, clock, counts={"orders": 4, "other": 1}))
        for topic in ("orders", "other"):
            await first.commit(group_pb2.OffsetCommitRequest(group_id="g", member_epoch=-1, partitions=[
                group_pb2.OffsetCommitPartition(topic=topic, partition=0, offset=5),
                group_pb2.OffsetCommitPartition(topic=topic, partition=1, offset=6),
            ]))
        assert await first.delete_offsets("g", [("other", 0), ("other", 3)]) == set()
        joined = await first.heartbeat(join())                       # subscribes to "orders"
        assert await first.delete_offsets("g", [("orders", 0), ("other", 1)]) == {("orders", 0)}
        with pytest.raises(errors.GroupIdNotFoundError):
            await first.delete_offsets("missing", [("orders", 0)])
        first.on_resign(0)
        second = await loaded(make(log, clock, counts={"orders": 4, "other": 1}))
        fetched = await second.fetch_offsets(group_pb2.OffsetFetchRequest(group_id="g"))
        assert [(r.topic, r.partition, r.offset) for r in fetched.results] == [("orders", 0, 5), ("orders", 1, 6)]
        assert joined.member_id

    asyncio.run(scenario())
