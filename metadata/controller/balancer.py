"""The replica balancer's planner: which partitions move where, as a pure function of the image.

Owns `plan_moves`: given the image, the brokers that may receive replicas and the brokers being
emptied, the smallest list of partition moves (new target replica lists) that

1. empties the decommissioning brokers: each of their replicas goes to the least loaded eligible
   broker that keeps the partition's racks distinct (one move per replica: the fewest possible);
2. brings every eligible broker's replica count within the threshold of the mean (new, empty
   brokers get their share this way): one replica at a time from the most loaded broker to the
   least loaded, a follower rather than a leader, never lowering a partition's rack spread;
3. brings preferred-leader counts (first replicas) within the threshold too, by reordering the
   replicas of a partition (no data moves; a preferred-leader election then moves leadership).

It never changes a partition's replication factor, never touches a partition being reassigned or
without a leader, and is deterministic (sorted iteration, ties broken by broker id), so a
balanced cluster yields no moves and running it again after its moves yields none either.
A count is "within the threshold" when it lies in [min(floor(mean), ceil(mean * (1 - t))),
max(ceil(mean), floor(mean * (1 + t)))]; moves only happen between brokers whose counts differ by
two or more, so small clusters do not churn over a difference of one.

Kafka's kafka-reassign-partitions --generate and Cruise Control's goals (RackAwareGoal,
ReplicaDistributionGoal, LeaderReplicaDistributionGoal) are the references; unlike --generate,
which computes a fresh assignment and so moves most replicas, this moves as few as it can.

Also owns `broker_loads` (replica and leader counts per broker, for `broker list`, the console and
the balancer's triggers) and `generate_reassignment` (kafka-reassign-partitions --generate on the same planner).

Imports only the standard library, freshet.metadata (errors, image) and wire types. Forbidden: grpc, storage, server,
client, cli, pysyncobj. Thread-safety: pure functions; `Move` is immutable.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

from freshet.metadata.errors import ControllerRequestError
from freshet.metadata.image import NO_LEADER, MetadataImage
from freshet.v1 import common_pb2

E = common_pb2.ErrorCode

DECOMMISSION = "decommission"
REPLICA_BALANCE = "replica balance"
LEADER_BALANCE = "leader balance"
_REASON_ORDER = {DECOMMISSION: 0, REPLICA_BALANCE: 1, LEADER_BALANCE: 2}

PartitionKey = tuple[str, int]           # (topic name, partition number)


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    """One partition's new replica list. Thread-safe (immutable).

    Attributes:
        topic, topic_id, partition: which partition.
        current_replicas: its target replicas now (first = preferred leader).
        target_replicas: the proposed list, same length.
        reason: the first step that changed it (DECOMMISSION, REPLICA_BALANCE, LEADER_BALANCE).
    """

    topic: str
    topic_id: bytes
    partition: int
    current_replicas: tuple[int, ...]
    target_replicas: tuple[int, ...]
    reason: str

    @property
    def moved_replicas(self) -> int:
        """Replicas that must be copied to a new broker (0 for a reordering)."""
        return len(set(self.target_replicas) - set(self.current_replicas))


class _Plan:
    """Working state of one planning run: replica lists and per-broker counts. Not thread-safe
    (local to plan_moves)."""

    def __init__(self, image: MetadataImage, eligible: Mapping[int, str], topics: Collection[str] | None) -> None:
        self.rack_of = {node_id: broker.rack for node_id, broker in image.brokers.items()}
        self.rack_of.update(eligible)
        self.is_rack_aware = any(self.rack_of.values())
        self.eligible = sorted(eligible)
        self.original: dict[PartitionKey, tuple[int, ...]] = {}
        self.topic_ids: dict[str, bytes] = {}
        self.working: dict[PartitionKey, list[int]] = {}
        self.movable: set[PartitionKey] = set()
        self.leaders: dict[PartitionKey, int] = {}
        self.reasons: dict[PartitionKey, str] = {}
        for topic in image.topics():
            if topics is not None and topic.name not in topics:
                continue
            self.topic_ids[topic.name] = topic.topic_id
            for partition in topic.partitions:
                key = (topic.name, partition.partition)
                self.original[key] = partition.target_replicas
                self.working[key] = list(partition.target_replicas)
                self.leaders[key] = partition.leader
                if not partition.is_reassigning and partition.leader != NO_LEADER:
                    self.movable.add(key)
        self.replicas = dict.fromkeys(self.eligible, 0)
        self.preferred = dict.fromkeys(self.eligible, 0)
        for replicas in self.working.values():
            for position, replica in enumerate(replicas):
                if replica in self.replicas:
                    self.replicas[replica] += 1
                    if position == 0:
                        self.preferred[replica] += 1

    def rack_spread(self, replicas: Iterable[int]) -> int:
        return len({self.rack_of.get(r, "") for r in replicas}) if self.is_rack_aware else 0

    def replace(self, key: PartitionKey, source: int, target: int, reason: str) -> None:
        replicas = self.working[key]
        position = replicas.index(source)
        replicas[position] = target
        for broker, delta in ((source, -1), (target, 1)):
            if broker in self.replicas:
                self.replicas[broker] += delta
                if position == 0:
                    self.preferred[broker] += delta
        self.reasons.setdefault(key, reason)

    def make_preferred(self, key: PartitionKey, replica: int) -> None:
        replicas = self.working[key]
        old_first = replicas[0]
        replicas.remove(replica)
        replicas.insert(0, replica)
        self.preferred[old_first] -= 1
        self.preferred[replica] += 1
        self.reasons.setdefault(key, LEADER_BALANCE)

    def moves(self) -> list[Move]:
        changed = [key for key, replicas in self.working.items() if tuple(replicas) != self.original[key]]
        changed.sort(key=lambda key: (_REASON_ORDER[self.reasons[key]], key))
        return [
            Move(key[0], self.topic_ids[key[0]], key[1], self.original[key], tuple(self.working[key]), self.reasons[key])
            for key in changed
        ]


def broker_loads(image: MetadataImage) -> tuple[Counter[int], Counter[int]]:
    """(replicas, leaders) per broker id: partitions with a replica on it (including replicas being
    added) and partitions it leads. Brokers with neither are absent (a Counter answers 0)."""
    replicas: Counter[int] = Counter()
    leaders: Counter[int] = Counter()
    for topic in image.topics_by_id.values():
        for partition in topic.partitions:
            replicas.update(partition.replicas)
            if partition.leader != NO_LEADER:
                leaders[partition.leader] += 1
    return replicas, leaders


def _bounds(counts: Mapping[int, int], threshold_percentage: int) -> tuple[int, int]:
    """[lower, upper]: the counts within the threshold of the mean (see the module docstring)."""
    mean = sum(counts.values()) / len(counts)
    ratio = threshold_percentage / 100
    lower = min(math.floor(mean), math.ceil(mean * (1 - ratio)))
    upper = max(math.ceil(mean), math.floor(mean * (1 + ratio)))
    return lower, upper


def _pairs(counts: Mapping[int, int], lower: int, upper: int) -> list[tuple[int, int]]:
    """(source, target) broker pairs worth a move, most promising first: the source has at least
    two more than the target and one of them is outside [lower, upper]."""
    by_most = sorted(counts, key=lambda b: (-counts[b], b))
    by_least = sorted(counts, key=lambda b: (counts[b], b))
    return [
        (source, target)
        for source in by_most
        for target in by_least
        if counts[source] - counts[target] >= 2 and (counts[source] > upper or counts[target] < lower)
    ]


def _empty_decommissioning(plan: _Plan, decommissioning: Collection[int]) -> None:
    """Step 1: every replica on a decommissioning broker goes to the best eligible broker."""
    for key in sorted(plan.movable):
        for source in [r for r in plan.working[key] if r in decommissioning and r not in plan.replicas]:
            replicas = plan.working[key]
            others = [r for r in replicas if r != source]
            candidates = [b for b in plan.eligible if b not in replicas]
            if not candidates:
                continue                      # not enough brokers: nothing can take it
            target = min(
                candidates,
                key=lambda b: (
                    -plan.rack_spread([*others, b]),      # racks stay distinct where they can
                    plan.replicas[b],
                    plan.preferred[b],
                    b,
                ),
            )
            plan.replace(key, source, target, DECOMMISSION)


def _balance_replicas(plan: _Plan, threshold_percentage: int) -> None:
    """Step 2: move followers from the most to the least loaded eligible brokers."""
    if len(plan.eligible) < 2:
        return
    for _ in range(sum(plan.replicas.values()) + 1):
        lower, upper = _bounds(plan.replicas, threshold_percentage)
        for source, target in _pairs(plan.replicas, lower, upper):
            key = _replica_to_move(plan, source, target)
            if key is not None:
                plan.replace(key, source, target, REPLICA_BALANCE)
                break
        else:
            return


def _replica_to_move(plan: _Plan, source: int, target: int) -> PartitionKey | None:
    """The partition whose replica on `source` moves best to `target`: a follower that is not the
    preferred leader if possible, never lowering the partition's rack spread."""
    best: tuple[tuple, PartitionKey] | None = None
    for key in sorted(plan.movable):
        replicas = plan.working[key]
        if source not in replicas or target in replicas:
            continue
        others = [r for r in replicas if r != source]
        if plan.rack_spread([*others, target]) < plan.rack_spread(replicas):
            continue
        rank = (plan.leaders[key] == source, replicas[0] == source, key in plan.reasons)
        if best is None or rank < best[0]:
            best = (rank, key)
            if rank == (False, False, False):
                break
    return None if best is None else best[1]


def _balance_preferred_leaders(plan: _Plan, threshold_percentage: int) -> None:
    """Step 3: reorder replicas so that preferred-leader counts are within the threshold."""
    if len(plan.eligible) < 2:
        return
    for _ in range(len(plan.working) + 1):
        lower, upper = _bounds(plan.preferred, threshold_percentage)
        for source, target in _pairs(plan.preferred, lower, upper):
            candidates = [
                key for key in sorted(plan.movable) if plan.working[key][0] == source and target in plan.working[key]
            ]
            if candidates:
                # A partition the plan moves anyway costs no extra reassignment.
                key = min(candidates, key=lambda k: (k not in plan.reasons, k))
                plan.make_preferred(key, target)
                break
        else:
            return


def plan_moves(
    image: MetadataImage,
    eligible: Sequence[tuple[int, str]],
    decommissioning: Collection[int] = (),
    threshold_percentage: int = 10,
    topics: Collection[str] | None = None,
    is_balancing: bool = True,
) -> list[Move]:
    """The moves that balance the cluster (see the module docstring), decommission moves first.

    Args:
        image: the metadata image.
        eligible: (node id, rack) of the brokers that may receive replicas (the balancer passes
            the available, non-decommissioning brokers; --generate passes its --broker-list).
        decommissioning: brokers to empty (any replica on a broker outside `eligible` that is
            not listed here stays where it is: a fenced broker may come back).
        threshold_percentage: allowed distance of a broker's count from the mean, in percent.
        topics: only these topics' partitions are counted and moved (None: every topic).
        is_balancing: False plans the decommission moves only (steps 2 and 3 are skipped).

    Returns:
        The moves in order: decommissioning, then replica balance, then leader balance; each
        ordered by (topic, partition). Empty when nothing needs to move.
    """
    assert 0 <= threshold_percentage <= 100
    plan = _Plan(image, dict(eligible), topics)
    _empty_decommissioning(plan, decommissioning)
    if is_balancing:
        _balance_replicas(plan, threshold_percentage)
        _balance_preferred_leaders(plan, threshold_percentage)
    moves = plan.moves()
    for move in moves:
        assert len(move.target_replicas) == len(move.current_replicas)
        assert len(set(move.target_replicas)) == len(move.target_replicas)
    return moves


def generate_reassignment(
    image: MetadataImage, topics: Sequence[str], broker_ids: Sequence[int], threshold_percentage: int
) -> list[tuple[str, int, tuple[int, ...], tuple[int, ...]]]:
    """Kafka's --generate on the balancer's planner: every partition of `topics` as (topic,
    partition, current replicas, proposed replicas), the proposal keeping the topics' replicas on
    `broker_ids` only, balanced among them, with as few moves as possible.

    Raises:
        ControllerRequestError: INVALID_REQUEST (no topics or brokers, duplicates),
            UNKNOWN_TOPIC, BROKER_ID_NOT_REGISTERED, INVALID_REPLICATION_FACTOR (a topic has more
            replicas than the broker list has brokers).
    """
    if not topics or not broker_ids:
        raise ControllerRequestError(E.INVALID_REQUEST, "give at least one topic and one broker id")
    if len(set(broker_ids)) != len(broker_ids) or len(set(topics)) != len(topics):
        raise ControllerRequestError(E.INVALID_REQUEST, "a topic or broker id appears twice")
    for node_id in broker_ids:
        if node_id not in image.brokers:
            raise ControllerRequestError(E.BROKER_ID_NOT_REGISTERED, f"broker {node_id} is not registered")
    replicas_now: set[int] = set()
    for name in topics:
        topic = image.topic(name)
        if topic is None:
            raise ControllerRequestError(E.UNKNOWN_TOPIC, f"topic {name!r} does not exist")
        if topic.replication_factor > len(broker_ids):
            raise ControllerRequestError(
                E.INVALID_REPLICATION_FACTOR,
                f"replication factor: {topic.replication_factor} larger than available brokers: {len(broker_ids)} "
                f"(topic {name!r})",
            )
        replicas_now.update(r for p in topic.partitions for r in p.target_replicas)
    eligible = [(node_id, image.brokers[node_id].rack) for node_id in sorted(broker_ids)]
    leaving = replicas_now - set(broker_ids)
    moves = {(m.topic, m.partition): m for m in plan_moves(image, eligible, leaving, threshold_percentage, set(topics))}
    proposal = []
    for name in sorted(topics):
        for partition in image.topic(name).partitions:
            current = partition.target_replicas
            move = moves.get((name, partition.partition))
            proposal.append((name, partition.partition, current, current if move is None else move.target_replicas))
    return proposal
