"""Classic groups in the GroupCoordinator: parked JoinGroup/SyncGroup answered by the barrier,
session expiry through the coordinator's clock, one group namespace shared with KIP-848 groups,
commits checked against the generation, parked requests answered NOT_COORDINATOR on resign."""

from __future__ import annotations

import asyncio

import pytest
from freshet.server import errors
from freshet.server.groups import classic
from freshet.v1 import group_pb2

from tests.unit.server.groups.test_group_coordinator import (
    Clock,
    MemoryOffsetsLog,
    commit,
    join,
    loaded,
    make,
)

RANGE = [("range", b"meta")]


def classic_join(coordinator, member_id="", instance_id="", protocols=RANGE, session=10000):
    return coordinator.classic_join(
        "g", member_id=member_id, instance_id=instance_id, protocol_type="consumer", protocols=protocols,
        session_timeout_ms=session, rebalance_timeout_ms=20000, require_known_member_id=True, client_id="c",
    )


async def new_member(coordinator) -> str:
    first = await classic_join(coordinator)
    assert first.error == classic.MEMBER_ID_REQUIRED
    return first.member_id


def test_two_members_rebalance_through_parked_requests():
    async def main():
        clock = Clock()
        coordinator = await loaded(make(MemoryOffsetsLog(), clock))
        a = await new_member(coordinator)
        first = await classic_join(coordinator, a)
        assert (first.generation_id, first.leader) == (1, a)
        assert (await coordinator.classic_sync("g", member_id=a, generation_id=1, instance_id="", assignments={a: b"x"})).assignment == b"x"
        b = await new_member(coordinator)
        parked_b = asyncio.ensure_future(classic_join(coordinator, b))
        await asyncio.sleep(0.01)
        assert not parked_b.done()
        assert coordinator.classic_heartbeat("g", member_id=a, generation_id=1, instance_id="") == classic.REBALANCE_IN_PROGRESS
        rejoined = await classic_join(coordinator, a)
        joined_b = await parked_b
        assert rejoined.generation_id == joined_b.generation_id == 2
        assert {m for m, _, _ in rejoined.members} == {a, b} and joined_b.members == ()
        parked_sync = asyncio.ensure_future(
            coordinator.classic_sync("g", member_id=b, generation_id=2, instance_id="", assignments={})
        )
        await asyncio.sleep(0.01)
        assert not parked_sync.done()
        await coordinator.classic_sync("g", member_id=a, generation_id=2, instance_id="", assignments={a: b"A", b: b"B"})
        assert (await parked_sync).assignment == b"B"
        described = coordinator.describe_group("g")
        assert (described.state, described.group_epoch, described.assignor) == ("Stable", 2, "range")
        assert len(described.members) == 2
        assert [g.state for g in coordinator.list_groups().groups] == ["Stable"]
        # b goes silent: the coordinator's expiry removes it and a must rejoin.
        clock.now_ms += 9000
        assert coordinator.classic_heartbeat("g", member_id=a, generation_id=2, instance_id="") == 0
        clock.now_ms += 2000
        await coordinator.expire_sessions()
        assert coordinator.classic_heartbeat("g", member_id=a, generation_id=2, instance_id="") == classic.REBALANCE_IN_PROGRESS
        assert coordinator.classic_heartbeat("g", member_id=b, generation_id=2, instance_id="") == classic.UNKNOWN_MEMBER_ID
        assert (await classic_join(coordinator, a)).generation_id == 3

    asyncio.run(main())


def test_one_namespace_with_consumer_protocol_groups():
    async def main():
        coordinator = await loaded(make(MemoryOffsetsLog(), Clock()))
        member = await coordinator.heartbeat(join())                 # a KIP-848 member in "g"
        with pytest.raises(errors.InconsistentGroupProtocolError):
            await classic_join(coordinator)
        await coordinator.heartbeat(join(member_id=member.member_id, epoch=-1))
        await coordinator.commit(commit("", -1, 42))                    # admin commit to the empty group
        a = await new_member(coordinator)                               # an empty group turns classic
        assert (await classic_join(coordinator, a)).generation_id == 1
        fetched = await coordinator.fetch_offsets(group_pb2.OffsetFetchRequest(group_id="g"))
        assert [r.offset for r in fetched.results] == [42]              # offsets kept
        with pytest.raises(errors.InconsistentGroupProtocolError):
            await coordinator.heartbeat(join())
        with pytest.raises(errors.IllegalGenerationError):
            await coordinator.commit(commit(a, 7, 43))
        await coordinator.commit(commit(a, 1, 43))
        await coordinator.classic_leave("g", [(a, "")])
        assert (await coordinator.heartbeat(join())).member_epoch > 0   # empty again: KIP-848 may take it

    asyncio.run(main())


def test_resign_answers_parked_joins_not_coordinator():
    async def main():
        coordinator = await loaded(make(MemoryOffsetsLog(), Clock()))
        a = await new_member(coordinator)
        await classic_join(coordinator, a)
        b = await new_member(coordinator)
        parked = asyncio.ensure_future(classic_join(coordinator, b))
        await asyncio.sleep(0.01)
        coordinator.on_resign(0)
        assert (await parked).error == classic.NOT_COORDINATOR
        with pytest.raises(errors.NotCoordinatorError):
            coordinator.classic_heartbeat("g", member_id=a, generation_id=1, instance_id="")

    asyncio.run(main())


def test_invalid_session_timeout():
    async def main():
        coordinator = await loaded(make(MemoryOffsetsLog(), Clock()))
        assert (await classic_join(coordinator, session=10)).error == 26

    asyncio.run(main())


def test_a_resent_join_replaces_the_parked_one():
    async def main():
        coordinator = await loaded(make(MemoryOffsetsLog(), Clock()))
        a = await new_member(coordinator)
        await classic_join(coordinator, a)
        await coordinator.classic_sync("g", member_id=a, generation_id=1, instance_id="", assignments={})
        b = await new_member(coordinator)
        old = asyncio.ensure_future(classic_join(coordinator, b))
        await asyncio.sleep(0.01)
        new = asyncio.ensure_future(classic_join(coordinator, b))
        assert (await asyncio.wait_for(old, 5)).error == classic.REBALANCE_IN_PROGRESS
        await asyncio.sleep(0.01)
        assert not new.done()                                         # still waiting for a
        await asyncio.wait_for(classic_join(coordinator, a), 5)
        assert (await asyncio.wait_for(new, 5)).generation_id == 2

    asyncio.run(main())
