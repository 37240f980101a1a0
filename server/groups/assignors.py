"""Server-side partition assignors of consumer groups: "range" and "uniform" (cooperative-sticky).

Owns the pure functions that compute a group's *target assignment* from its members'
subscriptions and the partition counts of the subscribed topics (KIP-848: assignment is computed
on the coordinator). An assignor never sees time, I/O or randomness, and iterates in sorted
order, so the same input always gives the same output.

- `range` (Kafka's RangeAssignor): per topic, the members subscribed to it, sorted, each get a
  contiguous range of partitions; the first `partitions % members` get one more. Not sticky: a
  member joining moves partitions between existing members too.
- `uniform` (Kafka's UniformAssignor / CooperativeStickyAssignor): balanced (with identical
  subscriptions, member partition counts differ by at most one) and sticky: it starts from the
  previous target, keeps every partition that is still valid where it is, hands unassigned
  partitions to the least-loaded eligible member, then moves single partitions from the most- to
  the least-loaded eligible member while their counts differ by more than one. With identical
  subscriptions this moves the minimum: when a member joins, only the partitions it receives move;
  when a member leaves, only its partitions move.

Members are keyed by a stable id (the coordinator passes the member id). Partitions are
`(topic, partition)` tuples.

Imports: standard library only. Thread-safety: pure functions over immutable inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

TopicPartition = tuple[str, int]
Assignment = dict[str, frozenset[TopicPartition]]

RANGE = "range"
UNIFORM = "uniform"
ASSIGNORS = (UNIFORM, RANGE)


def assign(
    assignor: str,
    subscriptions: Mapping[str, Set[str]],
    partition_counts: Mapping[str, int],
    previous: Mapping[str, Set[TopicPartition]] | None = None,
) -> Assignment:
    """The target assignment of a group.

    Args:
        assignor: RANGE or UNIFORM.
        subscriptions: member id -> the topic names it subscribes to (already resolved from a regex).
        partition_counts: topic -> partition count; topics missing here do not exist and are skipped.
        previous: member id -> its previous target partitions (UNIFORM keeps what it can).

    Returns:
        member id -> its partitions; every member of `subscriptions` has an entry, and every
        partition of a subscribed existing topic is in exactly one entry.

    Raises:
        ValueError: an unknown assignor name.
    """
    if assignor == RANGE:
        return range_assign(subscriptions, partition_counts)
    if assignor == UNIFORM:
        return uniform_assign(subscriptions, partition_counts, previous or {})
    raise ValueError(f"unknown assignor {assignor!r}; use one of {', '.join(ASSIGNORS)}")


def range_assign(subscriptions: Mapping[str, Set[str]], partition_counts: Mapping[str, int]) -> Assignment:
    """Kafka's RangeAssignor, per topic (see the module docstring)."""
    result: dict[str, set[TopicPartition]] = {member: set() for member in subscriptions}
    topics = sorted({topic for topics in subscriptions.values() for topic in topics if topic in partition_counts})
    for topic in topics:
        members = sorted(member for member, wanted in subscriptions.items() if topic in wanted)
        count = partition_counts[topic]
        share, extra = divmod(count, len(members))
        start = 0
        for position, member in enumerate(members):
            length = share + (1 if position < extra else 0)
            result[member].update((topic, partition) for partition in range(start, start + length))
            start += length
        assert start == count
    return {member: frozenset(partitions) for member, partitions in result.items()}


def uniform_assign(
    subscriptions: Mapping[str, Set[str]],
    partition_counts: Mapping[str, int],
    previous: Mapping[str, Set[TopicPartition]],
) -> Assignment:
    """Balanced and sticky (see the module docstring)."""
    members = sorted(subscriptions)
    owned: dict[str, set[TopicPartition]] = {member: set() for member in members}
    owner: dict[TopicPartition, str] = {}

    def is_valid(member: str, tp: TopicPartition) -> bool:
        topic, partition = tp
        return topic in subscriptions[member] and 0 <= partition < partition_counts.get(topic, 0)

    # 1. Keep every previous partition that is still valid for its member (the first claim wins if
    #    a broken input names a partition twice).
    for member in members:
        for tp in sorted(previous.get(member, ())):
            if tp not in owner and is_valid(member, tp):
                owned[member].add(tp)
                owner[tp] = member
    # 2. Hand out the rest to the least-loaded eligible member.
    eligible: dict[str, list[str]] = {}
    for topic in sorted({topic for wanted in subscriptions.values() for topic in wanted}):
        if topic in partition_counts:
            eligible[topic] = [member for member in members if topic in subscriptions[member]]
    for topic, candidates in eligible.items():
        for partition in range(partition_counts[topic]):
            tp = (topic, partition)
            if tp in owner:
                continue
            member = min(candidates, key=lambda m: (len(owned[m]), m))
            owned[member].add(tp)
            owner[tp] = member
    # 3. Balance: move one partition at a time from a most-loaded member to a least-loaded member
    #    that may take it, while their counts differ by more than one.
    while True:
        move = _best_move(members, owned, is_valid)
        if move is None:
            break
        source, target, tp = move
        owned[source].discard(tp)
        owned[target].add(tp)
        owner[tp] = target
    return {member: frozenset(partitions) for member, partitions in owned.items()}


def _best_move(members, owned, is_valid):
    """(source, target, partition) that reduces imbalance, or None. Prefers the largest gap."""
    by_load = sorted(members, key=lambda m: (len(owned[m]), m))
    for target in by_load:
        for source in reversed(by_load):
            if len(owned[source]) - len(owned[target]) <= 1:
                break
            for tp in sorted(owned[source], reverse=True):
                if is_valid(target, tp):
                    return source, target, tp
    return None
