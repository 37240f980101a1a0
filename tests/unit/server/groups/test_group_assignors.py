"""Assignors: every partition exactly once, balance, and stickiness (KIP-848's server-side
assignors; Kafka's RangeAssignor and UniformAssignor). Property-based with hypothesis."""

from __future__ import annotations

import pytest
from freshet.server.groups import assignors as group_assignors
from freshet.server.groups.assignors import RANGE, UNIFORM, assign
from hypothesis import given, settings
from hypothesis import strategies as st

topics_strategy = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]), st.integers(min_value=0, max_value=24), min_size=1, max_size=4
)


def members_strategy(max_members=8):
    return st.integers(min_value=1, max_value=max_members).map(lambda n: [f"m{i:02d}" for i in range(n)])


def _check_exactly_once(result, subscriptions, counts):
    seen = {}
    for member, partitions in result.items():
        for tp in partitions:
            assert tp not in seen, f"{tp} assigned to {seen[tp]} and {member}"
            seen[tp] = member
            assert tp[0] in subscriptions[member]
    wanted = {(t, p) for subs in subscriptions.values() for t in subs if t in counts for p in range(counts[t])}
    assert set(seen) == wanted
    assert set(result) == set(subscriptions)


@settings(max_examples=200, deadline=None)
@given(counts=topics_strategy, members=members_strategy(), assignor=st.sampled_from([RANGE, UNIFORM]))
def test_identical_subscriptions_are_balanced_and_complete(counts, members, assignor):
    subscriptions = {m: set(counts) for m in members}
    result = assign(assignor, subscriptions, counts)
    _check_exactly_once(result, subscriptions, counts)
    if assignor == UNIFORM:
        sizes = [len(p) for p in result.values()]
        assert max(sizes) - min(sizes) <= 1
    else:
        for topic, count in counts.items():
            per_member = [sum(1 for t, _ in result[m] if t == topic) for m in members]
            assert max(per_member) - min(per_member) <= 1, topic
            assert sum(per_member) == count


@settings(max_examples=200, deadline=None)
@given(
    counts=topics_strategy,
    data=st.data(),
    members=members_strategy(),
)
def test_mixed_subscriptions_assign_every_partition_once_to_a_subscriber(counts, data, members):
    names = sorted(counts)
    subscriptions = {m: set(data.draw(st.lists(st.sampled_from(names), min_size=1), label=m)) for m in members}
    for assignor in (RANGE, UNIFORM):
        _check_exactly_once(assign(assignor, subscriptions, counts), subscriptions, counts)


@settings(max_examples=200, deadline=None)
@given(counts=topics_strategy, members=members_strategy(9))
def test_uniform_is_sticky_when_a_member_joins(counts, members):
    """Only the partitions the new member receives move; it receives a fair share."""
    before_subs = {m: set(counts) for m in members}
    before = assign(UNIFORM, before_subs, counts)
    after_subs = dict(before_subs, new=set(counts))
    after = assign(UNIFORM, after_subs, counts, before)
    _check_exactly_once(after, after_subs, counts)
    for member in members:
        assert after[member] <= before[member], f"{member} gained partitions when another joined"
    moved = sum(len(before[m] - after[m]) for m in members)
    assert moved == len(after["new"])
    total = sum(counts.values())
    assert len(after["new"]) == total // (len(members) + 1)


@settings(max_examples=200, deadline=None)
@given(counts=topics_strategy, members=members_strategy(9), data=st.data())
def test_uniform_is_sticky_when_a_member_leaves(counts, members, data):
    """Only the leaving member's partitions move."""
    subscriptions = {m: set(counts) for m in members}
    before = assign(UNIFORM, subscriptions, counts)
    leaving = data.draw(st.sampled_from(members))
    if len(members) == 1:
        return
    rest = {m: s for m, s in subscriptions.items() if m != leaving}
    after = assign(UNIFORM, rest, counts, before)
    _check_exactly_once(after, rest, counts)
    for member in rest:
        assert before[member] <= after[member], f"{member} lost partitions when {leaving} left"
    sizes = [len(p) for p in after.values()]
    assert max(sizes) - min(sizes) <= 1


def test_range_gives_the_first_members_the_extra_partitions():
    result = assign(RANGE, {"a": {"t"}, "b": {"t"}}, {"t": 5})
    assert result == {"a": frozenset({("t", 0), ("t", 1), ("t", 2)}), "b": frozenset({("t", 3), ("t", 4)})}


def test_unknown_assignor_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown assignor 'sticky'"):
        assign("sticky", {"a": {"t"}}, {"t": 1})
    assert group_assignors.ASSIGNORS == (UNIFORM, RANGE)
