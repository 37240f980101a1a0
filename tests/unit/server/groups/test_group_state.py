"""The pure consumer-group state machine (KIP-848 reconciliation), driven by simulated members
with no network and an injected clock.

Reference: KIP-848 "The Next Generation of the Consumer Rebalance Protocol", sections "Reconciliation"
and "Member epoch"."""

from __future__ import annotations

import pytest
from freshet.server import errors as server_errors
from freshet.server.groups import state as group_state
from freshet.server.groups.state import ConsumerGroup
from hypothesis import given, settings
from hypothesis import strategies as st

COUNTS = {"orders": 6}


class SimMember:
    """A client that does what the SDK does: owns what the coordinator says, revoking first."""

    def __init__(self, group: ConsumerGroup, name: str, topics=("orders",), instance_id: str = "") -> None:
        self.group = group
        self.name = name
        self.topics = topics
        self.instance_id = instance_id
        self.member_id = ""
        self.epoch = 0
        self.owned: frozenset = frozenset()
        self.history: list[frozenset] = []

    def beat(self, now_ms: int, counts=COUNTS):
        result = self.group.heartbeat(
            member_id=self.member_id,
            member_epoch=self.epoch,
            new_member_id=f"id-{self.name}",
            partition_counts=counts,
            now_ms=now_ms,
            owned=self.owned,
            instance_id=self.instance_id,
            subscribed_topic_names=self.topics,
            session_timeout_ms=10000,
        )
        self.member_id = result.member_id
        self.epoch = result.member_epoch
        if result.assignment is not None:
            # Revoke what is no longer listed, take what is new (the SDK calls the callbacks here).
            self.owned = frozenset(result.assignment)
        self.history.append(self.owned)
        return result


def settle(group, members, now_ms, rounds=6):
    for _ in range(rounds):
        for member in members:
            member.beat(now_ms)
    return {m.name: m.owned for m in members}


def test_three_members_split_six_partitions_each_owned_once():
    group = ConsumerGroup("g")
    members = [SimMember(group, n) for n in "abc"]
    owned = settle(group, members, 0)
    all_owned = [tp for parts in owned.values() for tp in parts]
    assert sorted(all_owned) == [("orders", p) for p in range(6)]
    assert all(len(parts) == 2 for parts in owned.values())
    assert group.state == group_state.STABLE


def test_a_joining_member_gets_partitions_only_after_their_owner_revoked_them():
    group = ConsumerGroup("g")
    members = [SimMember(group, n) for n in "abc"]
    before = settle(group, members, 0)
    d = SimMember(group, "d")
    d.beat(1)
    assert d.owned == frozenset(), "nothing is free yet: the owners have not revoked"
    # Each old member keeps at least what it keeps in the end, at every step: no stop-the-world.
    for member in members:
        member.beat(2)
    after = settle(group, members + [d], 3)
    for member in members:
        kept = after[member.name]
        assert kept <= before[member.name]
        assert all(kept <= step for step in member.history[len(member.history) - 7 :])
    assert len(after["d"]) == 1 or len(after["d"]) == 2
    assert sorted(tp for parts in after.values() for tp in parts) == [("orders", p) for p in range(6)]
    group.check_invariants()


def test_a_member_whose_session_ends_loses_its_partitions_to_the_others():
    group = ConsumerGroup("g")
    members = [SimMember(group, n) for n in "abc"]
    settle(group, members, 0)
    for member in members[:2]:
        member.beat(8000)
    assert group.expire(10001, COUNTS) == ["id-c"]
    after = settle(group, members[:2], 10002)
    assert sorted(tp for parts in after.values() for tp in parts) == [("orders", p) for p in range(6)]
    with pytest.raises(server_errors.UnknownMemberError):
        members[2].beat(10003)


def test_a_stale_epoch_is_fenced_and_the_previous_epoch_is_accepted_once():
    group = ConsumerGroup("g")
    a = SimMember(group, "a")
    a.beat(0)
    epoch = a.epoch
    SimMember(group, "b").beat(1)
    a.beat(2)  # a is asked to revoke: new epoch
    assert a.epoch > epoch
    # A heartbeat that repeats the previous epoch (its answer was lost) is answered again.
    result = group.heartbeat(
        member_id=a.member_id, member_epoch=epoch, new_member_id="x", partition_counts=COUNTS, now_ms=3, owned=a.owned
    )
    assert result.assignment is not None
    with pytest.raises(server_errors.FencedMemberEpochError, match="rejoin"):
        group.heartbeat(member_id=a.member_id, member_epoch=epoch + 100, new_member_id="x", partition_counts=COUNTS, now_ms=4)


def test_a_static_member_restart_keeps_its_partitions():
    group = ConsumerGroup("g")
    a = SimMember(group, "a", instance_id="host-a")
    b = SimMember(group, "b", instance_id="host-b")
    owned = settle(group, [a, b], 0)
    group.heartbeat(member_id=a.member_id, member_epoch=-2, new_member_id="", partition_counts=COUNTS, now_ms=1)
    assert group.owner_of(sorted(owned["a"])[0]) == a.member_id, "kept while it restarts"
    restarted = SimMember(group, "a2", instance_id="host-a")
    after = settle(group, [restarted, b], 2)
    assert after["a2"] == owned["a"]
    assert after["b"] == owned["b"]
    assert a.member_id not in group.members


def test_commits_are_fenced_by_membership_and_ownership():
    group = ConsumerGroup("g")
    a, b = SimMember(group, "a"), SimMember(group, "b")
    settle(group, [a, b], 0)
    mine = sorted(a.owned)[0]
    theirs = sorted(b.owned)[0]
    assert group.validate_commit(a.member_id, a.epoch, [mine]) == {}
    refused = group.validate_commit(a.member_id, a.epoch, [theirs])
    assert isinstance(refused[theirs], server_errors.StaleMemberEpochError)
    with pytest.raises(server_errors.UnknownMemberError):
        group.validate_commit("nobody", 1, [mine])
    with pytest.raises(server_errors.FencedMemberEpochError):
        group.validate_commit(a.member_id, a.epoch + 1, [mine])
    with pytest.raises(server_errors.NonEmptyGroupError, match="2 active member"):
        group.validate_commit("", -1, [mine])


def test_persisted_membership_round_trips():
    group = ConsumerGroup("g")
    members = [SimMember(group, n) for n in "abc"]
    settle(group, members, 0)
    copy = ConsumerGroup("g")
    copy.load_record(group.to_record(), now_ms=50)
    assert copy.to_record() == group.to_record()
    # The members continue with the new coordinator without rejoining.
    for member in members:
        member.group = copy
    before = {m.name: m.owned for m in members}
    assert settle(copy, members, 60) == before


def test_bad_regex_and_assignor_are_refused_with_their_names():
    group = ConsumerGroup("g")
    with pytest.raises(server_errors.InvalidGroupRequestError, match="regex"):
        group.heartbeat(member_id="", member_epoch=0, new_member_id="m", partition_counts=COUNTS, now_ms=0,
                        subscribed_topic_regex="(")
    with pytest.raises(server_errors.InvalidGroupRequestError, match="assignor 'x'"):
        group.heartbeat(member_id="", member_epoch=0, new_member_id="m", partition_counts=COUNTS, now_ms=0,
                        assignor="x")


def test_regex_subscription_follows_new_topics():
    group = ConsumerGroup("g")
    result = group.heartbeat(member_id="", member_epoch=0, new_member_id="m", partition_counts={"o1": 1, "x": 1},
                             now_ms=0, subscribed_topic_regex="o.*", owned=[])
    assert result.assignment == {("o1", 0)}
    result = group.heartbeat(member_id="m", member_epoch=result.member_epoch, new_member_id="",
                             partition_counts={"o1": 1, "o2": 2, "x": 1}, now_ms=1, owned=[("o1", 0)])
    assert result.assignment == {("o1", 0), ("o2", 0), ("o2", 1)}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["join", "beat", "leave", "expire"]), st.integers(0, 5)), max_size=60))
def test_no_partition_is_ever_owned_by_two_members(steps):
    """Whatever the order of joins, heartbeats, leaves and expiries, what the simulated clients own
    is disjoint at every step, and once everyone heartbeats the group covers every partition."""
    group = ConsumerGroup("g")
    members: dict[int, SimMember] = {}
    now = 0
    for action, index in steps:
        now += 100
        if action == "join" and index not in members:
            members[index] = SimMember(group, f"n{index}")
            members[index].beat(now)
        elif action == "beat" and index in members:
            members[index].beat(now)
        elif action == "leave" and index in members:
            member = members.pop(index)
            group.heartbeat(member_id=member.member_id, member_epoch=-1, new_member_id="",
                            partition_counts=COUNTS, now_ms=now)
        elif action == "expire" and index in members:
            member = members.pop(index)  # it stopped without leaving: the session runs out
            for other in members.values():
                other.beat(now + 9000)
            now += 10001
            assert member.member_id in group.expire(now, COUNTS)
        owned = [tp for m in members.values() for tp in m.owned]
        assert len(owned) == len(set(owned)), f"owned twice: {owned}"
        group.check_invariants()
    if members:
        final = settle(group, list(members.values()), now + 1)
        assert sorted(tp for parts in final.values() for tp in parts) == [("orders", p) for p in range(6)]


def test_a_member_that_does_not_revoke_within_its_rebalance_timeout_is_removed():
    """KIP-848: the coordinator fences a member that keeps partitions it was asked to revoke for
    longer than its rebalance timeout, so the new owner is not blocked forever."""
    group = ConsumerGroup("g")
    stubborn = SimMember(group, "a")
    stubborn.beat(0)
    group.heartbeat(
        member_id=stubborn.member_id, member_epoch=stubborn.epoch, new_member_id="", partition_counts=COUNTS,
        now_ms=1, owned=stubborn.owned, rebalance_timeout_ms=5000,
    )
    newcomer = SimMember(group, "b")
    newcomer.beat(2)
    # a is asked to revoke half but keeps reporting every partition as owned.
    all_partitions = stubborn.owned
    for now in (100, 2000, 4000):
        group.heartbeat(
            member_id=stubborn.member_id, member_epoch=group.members[stubborn.member_id].member_epoch,
            new_member_id="", partition_counts=COUNTS, now_ms=now, owned=all_partitions, rebalance_timeout_ms=5000,
        )
        newcomer.beat(now)
        assert newcomer.owned == frozenset()
    assert group.expire(4500, COUNTS) == []
    assert group.expire(5200, COUNTS) == [stubborn.member_id]
    newcomer.beat(5300)
    assert len(newcomer.owned) == 6
