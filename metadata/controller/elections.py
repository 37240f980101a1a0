"""Leader elections and ISR changes, as pure functions of the image: who may lead, who leads next.

Owns eligibility (registered, unfenced, not shutting down), election order (target replicas,
preferred first, then replicas a reassignment removes), the partition changes that take a broker
out of every ISR and leadership (fencing and controlled shutdown build on them), elections for
leaderless partitions, preferred-leader elections (requested, and the imbalance measure behind the
automatic ones), reassignment completion (add -> all adding replicas in the ISR -> leader moved
off removed replicas -> final replica set), and the validation of AlterPartition (an ISR change
asked by a leader), of requested preferred/unclean elections and of reassignment targets.

Nothing here decides when: broker_sessions.ControllerCore calls these and proposes the commands.

Imports only the standard library, freshet.metadata (commands, errors, image) and wire types.
Forbidden: grpc, storage, server, client, cli, pysyncobj.
Thread-safety: functions are pure and thread-safe; PartitionChange is immutable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from freshet.metadata import commands
from freshet.metadata.errors import ControllerRequestError, StaleBrokerEpochError
from freshet.metadata.image import NO_LEADER, BrokerRegistration, MetadataImage, PartitionImage, TopicImage
from freshet.v1 import common_pb2, metadata_pb2

E = common_pb2.ErrorCode
MetadataCommand = metadata_pb2.MetadataCommand


def is_available(broker: BrokerRegistration | None) -> bool:
    """Registered, unfenced and not shutting down: may lead, join an ISR, get new replicas."""
    return broker is not None and not broker.is_fenced and not broker.in_controlled_shutdown


def available_brokers(image: MetadataImage) -> list[BrokerRegistration]:
    """Brokers that may take new replicas and leadership, by id."""
    return [image.brokers[node_id] for node_id in sorted(image.brokers) if is_available(image.brokers[node_id])]


def placement_brokers(image: MetadataImage) -> list[BrokerRegistration]:
    """Brokers that may receive new replicas (new topics, new partitions, the balancer's moves):
    available and not decommissioning, by id. A decommissioning broker may still lead."""
    return [broker for broker in available_brokers(image) if not broker.is_decommissioning]


def election_order(partition: PartitionImage) -> tuple[int, ...]:
    """Replicas in the order leaders are chosen: the target replicas (preferred first), then
    replicas being removed by a reassignment."""
    target = partition.target_replicas
    return target + tuple(r for r in partition.replicas if r not in target)


def elect_leader(
    image: MetadataImage,
    partition: PartitionImage,
    isr: Sequence[int],
    allow_unclean: bool,
    excluded: frozenset[int] = frozenset(),
) -> tuple[int, bool]:
    """(leader, is_unclean): the first replica in election order that is in `isr` and available;
    failing that, when `allow_unclean`, the first available replica outside the ISR; else
    (NO_LEADER, False). Brokers in `excluded` are treated as unavailable."""
    order = election_order(partition)
    for replica in order:
        if replica in isr and replica not in excluded and is_available(image.brokers.get(replica)):
            return replica, False
    if allow_unclean:
        for replica in order:
            if replica not in excluded and is_available(image.brokers.get(replica)):
                return replica, True
    return NO_LEADER, False


def is_unclean_allowed(image: MetadataImage, topic: TopicImage) -> bool:
    config = image.topic_config(topic.topic_id)
    assert config is not None
    return config.unclean_leader_election_enable


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionChange:
    """One partition change the controller wants (an inner ChangePartition). Thread-safe."""

    topic: TopicImage
    partition: PartitionImage
    leader: int
    isr: tuple[int, ...]
    is_unclean: bool
    replicas: tuple[int, ...] | None = None

    @property
    def is_election(self) -> bool:
        return self.leader != NO_LEADER and self.leader != self.partition.leader

    def command(self, request_id: str = "", controller_epoch: int = 0) -> MetadataCommand:
        return commands.change_partition(
            request_id,
            controller_epoch,
            self.topic.topic_id,
            self.partition.partition,
            self.partition.partition_epoch,
            leader=self.leader,
            isr=self.isr,
            replicas=self.replicas,
            is_unclean=self.is_unclean,
        )


def changes_without_broker(image: MetadataImage, node_id: int) -> list[PartitionChange]:
    """Remove `node_id` from every ISR and give every partition it leads another leader.

    KRaft's rule: the last member of an ISR stays (the partition becomes leaderless instead), so
    the replica most likely to have every acknowledged record can come back as leader. A new
    leader comes from the remaining ISR (election order), or from outside it when the topic allows
    unclean elections (the ISR then restarts as the new leader alone).

    The partitions it leads come first (then those it only follows, each group by topic name and
    partition): when the changes do not fit in one batch, leadership moves in the first.
    """
    excluded = frozenset({node_id})
    changes = []
    for topic in image.topics():
        allow_unclean: bool | None = None
        for partition in topic.partitions:
            if node_id not in partition.isr and partition.leader != node_id:
                continue
            isr = tuple(r for r in partition.isr if r != node_id) or partition.isr
            leader, is_unclean = partition.leader, False
            if leader == node_id:
                if allow_unclean is None:
                    allow_unclean = is_unclean_allowed(image, topic)
                leader, is_unclean = elect_leader(image, partition, isr, allow_unclean, excluded)
                if is_unclean:
                    isr = (leader,)
            if (leader, isr) != (partition.leader, partition.isr):
                changes.append(PartitionChange(topic, partition, leader, isr, is_unclean))
    changes.sort(key=lambda change: change.partition.leader != node_id)       # stable
    return changes


def broker_needing_repair(image: MetadataImage) -> int | None:
    """The first unavailable broker (fenced or shutting down) that still leads a partition or is
    in an ISR with other members, or None. Fencing moves everything at once unless a broker is in
    more ISRs than one batch holds; this finds what is left (and anything else that would leave
    a fenced leader in place)."""
    unavailable = {node_id for node_id, broker in image.brokers.items() if not is_available(broker)}
    if not unavailable:
        return None
    found: set[int] = set()
    for topic in image.topics_by_id.values():
        for partition in topic.partitions:
            if partition.leader in unavailable:
                found.add(partition.leader)
            if len(partition.isr) > 1:
                found.update(unavailable.intersection(partition.isr))
    return min(found) if found else None


def leaderless_elections(image: MetadataImage) -> list[PartitionChange]:
    """Elections for partitions without a leader that now have an eligible replica (an ISR member
    came back, or the topic allows unclean election and some replica is available)."""
    changes = []
    for topic in image.topics():
        allow_unclean: bool | None = None
        for partition in topic.partitions:
            if partition.leader != NO_LEADER:
                continue
            leader, is_unclean = elect_leader(image, partition, partition.isr, False)
            if leader == NO_LEADER:
                if allow_unclean is None:
                    allow_unclean = is_unclean_allowed(image, topic)
                if not allow_unclean:
                    continue
                leader, is_unclean = elect_leader(image, partition, partition.isr, True)
                if leader == NO_LEADER:
                    continue
            isr = (leader,) if is_unclean else partition.isr
            changes.append(PartitionChange(topic, partition, leader, isr, is_unclean))
    return changes


def preferred_leader_change(image: MetadataImage, topic: TopicImage, partition: PartitionImage) -> PartitionChange | None:
    """Move leadership to the preferred replica when it is in the ISR and available; else None."""
    order = election_order(partition)
    preferred = order[0]
    if partition.leader == preferred:
        return None
    if preferred not in partition.isr or not is_available(image.brokers.get(preferred)):
        return None
    return PartitionChange(topic, partition, preferred, partition.isr, False)


def imbalanced_brokers(image: MetadataImage, percentage: int) -> list[int]:
    """Brokers leading too few of the partitions they are preferred for (Kafka's
    checkAndTriggerAutoLeaderRebalance): for each preferred leader B, the share of B's partitions
    led by someone else, among those B could lead (B available and in the ISR), exceeds
    percentage / 100."""
    preferred_total: dict[int, int] = {}
    not_led: dict[int, int] = {}
    for topic in image.topics_by_id.values():
        for partition in topic.partitions:
            if not partition.replicas:
                continue
            preferred = election_order(partition)[0]
            preferred_total[preferred] = preferred_total.get(preferred, 0) + 1
            if (
                partition.leader != preferred
                and preferred in partition.isr
                and is_available(image.brokers.get(preferred))
            ):
                not_led[preferred] = not_led.get(preferred, 0) + 1
    return sorted(
        broker
        for broker, count in not_led.items()
        if count * 100 > percentage * preferred_total[broker]
    )


def reassignment_completions(image: MetadataImage) -> list[PartitionChange]:
    """Partitions whose reassignment can complete: every adding replica is in the ISR, and the
    leader is (or can be moved to) a target replica in the ISR. The change sets the final replica
    set, drops removed replicas from the ISR and moves the leader if it was being removed
    (Kafka's reassignment steps: add, catch up, move leader, remove)."""
    changes = []
    for topic in image.topics():
        for partition in topic.partitions:
            if not partition.is_reassigning:
                continue
            if any(replica not in partition.isr for replica in partition.adding_replicas):
                continue
            target = partition.target_replicas
            isr = tuple(r for r in partition.isr if r in target)
            if not isr:
                continue
            leader = partition.leader
            if leader not in target:
                leader = next((r for r in target if r in isr and is_available(image.brokers.get(r))), NO_LEADER)
                if leader == NO_LEADER:
                    continue
            changes.append(PartitionChange(topic, partition, leader, isr, False, replicas=target))
    return changes


def preferred_election(image: MetadataImage, topic: TopicImage, partition: PartitionImage) -> PartitionChange:
    """A requested preferred-leader election for one partition.

    Raises:
        ControllerRequestError: ELECTION_NOT_NEEDED (the preferred replica leads already),
            PREFERRED_LEADER_NOT_AVAILABLE (it is not in the ISR or not available).
    """
    what = f"{topic.name}-{partition.partition}"
    preferred = election_order(partition)[0]
    if partition.leader == preferred:
        raise ControllerRequestError(E.ELECTION_NOT_NEEDED, f"{what}: the preferred replica {preferred} is the leader already")
    change = preferred_leader_change(image, topic, partition)
    if change is None:
        reason = "is not in the ISR" if preferred not in partition.isr else "is fenced or shutting down"
        raise ControllerRequestError(E.PREFERRED_LEADER_NOT_AVAILABLE, f"{what}: the preferred replica {preferred} {reason}")
    return change


def unclean_election(image: MetadataImage, topic: TopicImage, partition: PartitionImage) -> PartitionChange:
    """A requested unclean election: a leaderless partition gets a leader from its ISR if one is
    available, else any available replica (the operator accepts losing data; the topic config is
    not consulted, as Kafka's ElectLeaders UNCLEAN).

    Raises:
        ControllerRequestError: ELECTION_NOT_NEEDED (it has a leader),
            ELIGIBLE_LEADERS_NOT_AVAILABLE (no replica is available).
    """
    what = f"{topic.name}-{partition.partition}"
    if partition.leader != NO_LEADER:
        raise ControllerRequestError(E.ELECTION_NOT_NEEDED, f"{what}: broker {partition.leader} is the leader")
    leader, is_unclean = elect_leader(image, partition, partition.isr, True)
    if leader == NO_LEADER:
        raise ControllerRequestError(E.ELIGIBLE_LEADERS_NOT_AVAILABLE, f"{what}: no replica of {list(partition.replicas)} is available")
    return PartitionChange(topic, partition, leader, (leader,) if is_unclean else partition.isr, is_unclean)


def check_reassignment_targets(image: MetadataImage, topic: TopicImage, partition: PartitionImage, targets: Sequence[int]) -> None:
    """Validate the target replicas of a reassignment (empty: a cancellation).

    Raises:
        ControllerRequestError: NO_REASSIGNMENT_IN_PROGRESS (cancel with none),
            INVALID_REPLICA_ASSIGNMENT (duplicates, unregistered brokers).
    """
    what = f"{topic.name}-{partition.partition}"
    if not targets:
        if not partition.is_reassigning:
            raise ControllerRequestError(E.NO_REASSIGNMENT_IN_PROGRESS, f"{what}: no reassignment in progress to cancel")
        return
    if len(set(targets)) != len(targets):
        raise ControllerRequestError(E.INVALID_REPLICA_ASSIGNMENT, f"{what}: duplicate broker in {list(targets)}")
    for replica in targets:
        if replica not in image.brokers:
            raise ControllerRequestError(E.INVALID_REPLICA_ASSIGNMENT, f"{what}: broker {replica} is not registered")


def alter_partition_change(
    image: MetadataImage,
    broker_id: int,
    broker_epoch: int,
    topic_id: bytes,
    partition_number: int,
    leader_epoch: int,
    partition_epoch: int,
    new_isr: Sequence[int],
) -> PartitionChange:
    """Validate an ISR change asked by a partition leader (Kafka's AlterPartition).

    Raises:
        StaleBrokerEpochError: the leader's broker epoch is not its current registration's.
        ControllerRequestError: UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC (no such partition),
            NOT_LEADER (the asker does not lead it), FENCED_LEADER_EPOCH (older leader epoch),
            UNKNOWN_LEADER_EPOCH (newer), INVALID_UPDATE_VERSION (partition epoch differs),
            INVALID_REQUEST (the ISR does not hold the leader, holds non-replicas, duplicates, or a
            fenced / shutting-down broker: KIP-841's ineligible replicas).
    """
    broker = image.brokers.get(broker_id)
    current_epoch = -1 if broker is None else broker.broker_epoch
    if broker is None or broker_epoch != current_epoch:
        raise StaleBrokerEpochError(broker_id, broker_epoch, current_epoch)
    topic = image.topic_by_id(topic_id)
    if topic is None:
        raise ControllerRequestError(E.UNKNOWN_TOPIC_ID, f"no topic has id {topic_id.hex()}")
    if not 0 <= partition_number < len(topic.partitions):
        raise ControllerRequestError(E.UNKNOWN_TOPIC, f"topic {topic.name!r} has no partition {partition_number}")
    partition = topic.partitions[partition_number]
    what = f"{topic.name}-{partition_number}"
    if partition.leader != broker_id:
        raise ControllerRequestError(E.NOT_LEADER, f"{what}: broker {broker_id} is not the leader (the leader is {partition.leader})")
    if leader_epoch < partition.leader_epoch:
        raise ControllerRequestError(E.FENCED_LEADER_EPOCH, f"{what}: leader epoch {leader_epoch} is older than {partition.leader_epoch}")
    if leader_epoch > partition.leader_epoch:
        raise ControllerRequestError(E.UNKNOWN_LEADER_EPOCH, f"{what}: leader epoch {leader_epoch} is newer than {partition.leader_epoch}")
    if partition_epoch != partition.partition_epoch:
        raise ControllerRequestError(
            E.INVALID_UPDATE_VERSION, f"{what}: partition epoch is {partition.partition_epoch}, not {partition_epoch}"
        )
    isr = tuple(new_isr)
    if len(set(isr)) != len(isr):
        raise ControllerRequestError(E.INVALID_REQUEST, f"{what}: duplicate replica in the new ISR {list(isr)}")
    if broker_id not in isr:
        raise ControllerRequestError(E.INVALID_REQUEST, f"{what}: the new ISR {list(isr)} does not hold the leader {broker_id}")
    for replica in isr:
        if replica not in partition.replicas:
            raise ControllerRequestError(E.INVALID_REQUEST, f"{what}: {replica} in the new ISR is not a replica ({list(partition.replicas)})")
        if replica not in partition.isr and not is_available(image.brokers.get(replica)):
            raise ControllerRequestError(E.INVALID_REQUEST, f"{what}: broker {replica} is fenced or shutting down and cannot join the ISR")
    return PartitionChange(topic, partition, partition.leader, isr, False)

