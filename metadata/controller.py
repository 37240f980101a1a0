"""The active controller's decisions, as pure functions of (image, broker sessions, now): commands.

Owns everything the active controller decides, with no I/O, no threads and no wall clock:

- broker sessions (held in memory only, as KRaft): registration, heartbeats, the reconnect grace
  after a broken stream, expiry, and the fresh session every broker gets from a new controller;
- fencing: one AtomicBatch fences a broker, removes it from every ISR it is in (KRaft keeps the
  last member of an ISR so that it can come back as leader) and elects a new leader for every
  partition it led (preferred replica first among the ISR on live brokers; outside the ISR only
  when `unclean.leader.election.enable`);
- unfencing (the broker caught up to its registration offset), controlled shutdown (one batch
  moves leaderships away, leaves ISRs and fences; then the broker may shut down);
- elections for leaderless partitions, preferred-leader elections (on request, and automatically
  when a broker's imbalance exceeds `leader.imbalance.per.broker.percentage`), reassignment
  progress (add -> all adding replicas in the ISR -> leader moved off removed replicas -> final
  replica set), AlterPartition validation;
- validation and command building for the admin requests (topics, partitions, configs,
  reassignments, producer ids).

The server (server/active_controller.py) proposes the commands and feeds the results back as new
images. Time enters only through the injected `Clock` (monotonic milliseconds); request ids come
from an injected factory, so tests are deterministic.

Imports only the standard library, freshet.metadata (commands, configs, errors, image, placement,
topic_rules) and wire types. Forbidden: grpc, storage, server, client, cli, pysyncobj.

Thread-safety: module functions are pure and thread-safe. `ControllerCore` and `BrokerSession`
are not thread-safe: one owner (the node's event loop) calls them.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from freshet.metadata import commands, configs, placement, topic_rules
from freshet.metadata.clock import Clock
from freshet.metadata.errors import (
    ControllerRequestError,
    InvalidReplicationFactorError,
    StaleBrokerEpochError,
)
from freshet.metadata.image import NO_LEADER, BrokerRegistration, MetadataImage, PartitionImage, TopicImage
from freshet.v1 import common_pb2, metadata_pb2

E = common_pb2.ErrorCode
MetadataCommand = metadata_pb2.MetadataCommand

# Default partition changes per AtomicBatch (COMMAND_BYTES_MAX is 512 KiB; a ChangePartition is
# ~45 bytes). A broker in more ISRs is fenced with the first ones; the repair scan moves the rest.
CHANGES_PER_BATCH_MAX = 5_000
REQUEST_ID_PREFIX_LENGTH_MAX = 180
INTERNAL_TOPIC_PREFIX = "__"


# ---------------------------------------------------------------------------------------------
# Eligibility and elections
# ---------------------------------------------------------------------------------------------


def is_available(broker: BrokerRegistration | None) -> bool:
    """Registered, unfenced and not shutting down: may lead, join an ISR, get new replicas."""
    return broker is not None and not broker.is_fenced and not broker.in_controlled_shutdown


def available_brokers(image: MetadataImage) -> list[BrokerRegistration]:
    """Brokers that may take new replicas and leadership, by id."""
    return [image.brokers[node_id] for node_id in sorted(image.brokers) if is_available(image.brokers[node_id])]


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


# ---------------------------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class BrokerSession:
    """A broker's liveness as the active controller sees it (memory only). Not thread-safe.

    Attributes:
        node_id, incarnation_id, broker_epoch: whose session (the registration it belongs to).
        deadline_ms: monotonic time after which the broker is fenced.
        metadata_offset: the offset of the broker's metadata image at its last heartbeat (-1: none).
        want_shutdown: the broker asked for a controlled shutdown.
        is_connected: a heartbeat stream is open.
    """

    node_id: int
    incarnation_id: bytes
    broker_epoch: int
    deadline_ms: int
    metadata_offset: int = -1
    want_shutdown: bool = False
    is_connected: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class HeartbeatReply:
    """What the controller answers a broker's heartbeat. Thread-safe (immutable)."""

    broker_epoch: int
    is_fenced: bool
    should_shut_down: bool
    is_caught_up: bool


class ActionKind(enum.Enum):
    FENCE = "fence"                        # session expired
    UNFENCE = "unfence"
    CONTROLLED_SHUTDOWN = "controlled_shutdown"
    ELECT_LEADERLESS = "elect_leaderless"
    COMPLETE_REASSIGNMENT = "complete_reassignment"
    REBALANCE = "rebalance"                # automatic preferred-leader election
    REGISTER = "register"
    REPAIR = "repair"                      # a fenced broker still leads or is in an ISR


@dataclasses.dataclass(frozen=True, slots=True)
class ControllerAction:
    """A command the controller wants proposed, with what it is for. Thread-safe (immutable).

    Attributes:
        kind: why.
        command: the command (request id and controller epoch filled in).
        description: one line for the log.
        node_id: the broker concerned (-1 when none).
        clean_elections, unclean_elections: leader elections the command makes (for metrics).
    """

    kind: ActionKind
    command: MetadataCommand
    description: str
    node_id: int = -1
    clean_elections: int = 0
    unclean_elections: int = 0


def _count_elections(changes: Iterable[PartitionChange]) -> tuple[int, int]:
    clean = unclean = 0
    for change in changes:
        if change.is_election:
            if change.is_unclean:
                unclean += 1
            else:
                clean += 1
    return clean, unclean


@dataclasses.dataclass(frozen=True, slots=True)
class ControllerSettings:
    """Static settings of the active controller. Thread-safe (immutable).

    Attributes:
        node_id: the controller's node id.
        static_broker_configs: broker-scope keys from the node's config file / --set: the layer
            between schema defaults and dynamic (cluster, then per-broker) values, as Kafka.
        reconnect_grace_ms: how long a broker whose heartbeat stream broke has to reconnect; also
            what a new controller gives a broker on a voter it cannot reach at takeover.
        changes_per_batch_max: partition changes per AtomicBatch (commands are at most 512 KiB);
            a broker in more ISRs is fenced with the first ones and the repair scan of `poll`
            moves the rest right after.
    """

    node_id: int
    static_broker_configs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    reconnect_grace_ms: int = 1000
    changes_per_batch_max: int = CHANGES_PER_BATCH_MAX

    def __post_init__(self) -> None:
        assert self.reconnect_grace_ms > 0
        assert self.changes_per_batch_max > 0


class ControllerCore:
    """The active controller's state for one controller epoch: broker sessions and timers.

    Created when this node's ClaimController is applied; discarded when it stops leading. Every
    method takes the current image (the caller passes the newest after each applied command).

    Not thread-safe: one owner (the node's event loop).
    """

    def __init__(
        self,
        settings: ControllerSettings,
        controller_epoch: int,
        clock: Clock,
        new_request_id: Callable[[], str] = commands.new_request_id,
    ) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.controller_epoch = controller_epoch
        self._clock = clock
        self._new_request_id = new_request_id
        self.sessions: dict[int, BrokerSession] = {}
        self._scanned_offset = -1
        self._next_rebalance_ms: int | None = None

    # -- configuration ---------------------------------------------------------------------------

    def broker_config(self, image: MetadataImage, node_id: int) -> configs.BrokerConfig:
        """Effective config of broker `node_id`: default < static < dynamic cluster < dynamic broker."""
        layered = dict(self.settings.static_broker_configs)
        layered.update(image.cluster_configs)
        return configs.broker_config(layered, image.broker_configs.get(node_id, {}))

    def _rid(self) -> str:
        return self._new_request_id()

    # -- activation and sessions -----------------------------------------------------------------

    def activate(self, image: MetadataImage, unreachable_nodes: Iterable[int] = ()) -> None:
        """Give every registered broker a fresh session before judging anyone (a new controller
        knows nothing of the old one's heartbeats). A broker on a voter node this controller
        cannot reach at takeover (its process is most likely gone: it died with the old
        controller) is treated as a broker whose stream broke: it gets the reconnect grace to
        open a stream, not a whole session. Live brokers reconnect well within it (they retry
        every 100 ms), and a reachable voter's broker always gets the whole session."""
        now = self._clock.monotonic_ms()
        unreachable = set(unreachable_nodes)
        self.sessions.clear()
        for broker in image.brokers.values():
            timeout = self.broker_config(image, broker.node_id).broker_session_timeout_ms
            if broker.node_id in unreachable:
                timeout = min(timeout, self.settings.reconnect_grace_ms)
            self.sessions[broker.node_id] = BrokerSession(
                broker.node_id, broker.incarnation_id, broker.broker_epoch, now + timeout
            )
        self._scanned_offset = -1
        interval_s = self.broker_config(image, self.node_id).leader_imbalance_check_interval_seconds
        self._next_rebalance_ms = now + interval_s * 1000

    def registration(
        self, image: MetadataImage, node_id: int, incarnation_id: bytes, host: str, port: int, rack: str
    ) -> ControllerAction | None:
        """The command registering this broker incarnation, or None when it is registered already.

        A new incarnation replaces the old one; if the old one is still unfenced (or in ISRs), the
        same batch first fences it and moves its leaderships away, so that no reader ever sees a
        leader whose process is gone.
        """
        existing = image.brokers.get(node_id)
        if existing is not None and existing.incarnation_id == incarnation_id:
            return None
        register = commands.register_broker(*commands.INNER, node_id, incarnation_id, host, port, rack)
        changes = [] if existing is None else changes_without_broker(image, node_id)
        if existing is None or (existing.is_fenced and not changes):
            command = commands.register_broker(self._rid(), self.controller_epoch, node_id, incarnation_id, host, port, rack)
            return ControllerAction(ActionKind.REGISTER, command, f"registering broker {node_id} at {host}:{port}", node_id)
        changes = changes[: self.settings.changes_per_batch_max]
        inner = []
        if not existing.is_fenced:
            inner.append(commands.fence_broker(*commands.INNER, node_id, existing.broker_epoch))
        inner.extend(change.command() for change in changes)
        inner.append(register)
        clean, unclean = _count_elections(changes)
        command = commands.atomic_batch(self._rid(), self.controller_epoch, inner)
        return ControllerAction(
            ActionKind.REGISTER,
            command,
            f"broker {node_id} registers a new incarnation at {host}:{port}; the old one (epoch "
            f"{existing.broker_epoch}) is fenced and {len(changes)} partitions change",
            node_id,
            clean,
            unclean,
        )

    def open_session(self, image: MetadataImage, node_id: int) -> BrokerSession:
        """Start (or renew) the session of `node_id`'s current registration after it registered on
        a heartbeat stream."""
        broker = image.brokers[node_id]
        timeout = self.broker_config(image, node_id).broker_session_timeout_ms
        session = BrokerSession(
            node_id, broker.incarnation_id, broker.broker_epoch, self._clock.monotonic_ms() + timeout, is_connected=True
        )
        self.sessions[node_id] = session
        return session

    def heartbeat(
        self, image: MetadataImage, node_id: int, broker_epoch: int, metadata_offset: int, want_shutdown: bool
    ) -> BrokerSession:
        """Record a heartbeat: the session is renewed for a whole session timeout.

        Raises:
            StaleBrokerEpochError: broker_epoch is not the current registration's (a replaced
                incarnation, or a broker this controller has no session for).
        """
        broker = image.brokers.get(node_id)
        current = -1 if broker is None else broker.broker_epoch
        session = self.sessions.get(node_id)
        if broker is None or broker_epoch != current or session is None or session.broker_epoch != broker_epoch:
            raise StaleBrokerEpochError(node_id, broker_epoch, current)
        timeout = self.broker_config(image, node_id).broker_session_timeout_ms
        session.deadline_ms = self._clock.monotonic_ms() + timeout
        session.metadata_offset = max(session.metadata_offset, metadata_offset)
        session.want_shutdown = session.want_shutdown or want_shutdown
        session.is_connected = True
        return session

    def stream_closed(self, node_id: int, broker_epoch: int) -> None:
        """The heartbeat stream of this registration broke: it has a short grace to reconnect."""
        session = self.sessions.get(node_id)
        if session is None or session.broker_epoch != broker_epoch:
            return
        session.is_connected = False
        session.deadline_ms = min(session.deadline_ms, self._clock.monotonic_ms() + self.settings.reconnect_grace_ms)

    def reply(self, image: MetadataImage, node_id: int) -> HeartbeatReply:
        """The state to tell broker `node_id` (its current registration)."""
        broker = image.brokers[node_id]
        session = self.sessions.get(node_id)
        offset = -1 if session is None else session.metadata_offset
        return HeartbeatReply(
            broker_epoch=broker.broker_epoch,
            is_fenced=broker.is_fenced,
            should_shut_down=broker.in_controlled_shutdown and broker.is_fenced and not _leads_anything(image, node_id),
            is_caught_up=offset >= broker.broker_epoch,
        )

    def broker_action(self, image: MetadataImage, node_id: int) -> ControllerAction | None:
        """What a heartbeat calls for: a controlled shutdown, an unfence, or nothing."""
        session = self.sessions.get(node_id)
        broker = image.brokers.get(node_id)
        if session is None or broker is None or broker.broker_epoch != session.broker_epoch:
            return None
        if session.want_shutdown:
            if broker.in_controlled_shutdown and broker.is_fenced:
                return None
            return self._controlled_shutdown(image, broker)
        if broker.is_fenced and not broker.in_controlled_shutdown and session.metadata_offset >= broker.broker_epoch:
            command = commands.unfence_broker(self._rid(), self.controller_epoch, node_id, broker.broker_epoch)
            return ControllerAction(
                ActionKind.UNFENCE, command, f"unfencing broker {node_id}: caught up to offset {session.metadata_offset}", node_id
            )
        return None

    def _controlled_shutdown(self, image: MetadataImage, broker: BrokerRegistration) -> ControllerAction:
        inner = []
        if not broker.in_controlled_shutdown:
            inner.append(commands.begin_controlled_shutdown(*commands.INNER, broker.node_id, broker.broker_epoch))
        changes = changes_without_broker(image, broker.node_id)[: self.settings.changes_per_batch_max]
        inner.extend(change.command() for change in changes)
        if not broker.is_fenced:
            inner.append(commands.fence_broker(*commands.INNER, broker.node_id, broker.broker_epoch))
        clean, unclean = _count_elections(changes)
        moved = sum(1 for change in changes if change.partition.leader == broker.node_id)
        return ControllerAction(
            ActionKind.CONTROLLED_SHUTDOWN,
            commands.atomic_batch(self._rid(), self.controller_epoch, inner),
            f"controlled shutdown of broker {broker.node_id}: leadership of {moved} partitions moves, "
            f"{len(changes)} partitions change",
            broker.node_id,
            clean,
            unclean,
        )

    def expired(self, image: MetadataImage) -> list[int]:
        """Brokers whose session expired and that are still unfenced, by id."""
        now = self._clock.monotonic_ms()
        expired = []
        for node_id, session in sorted(self.sessions.items()):
            broker = image.brokers.get(node_id)
            if broker is None or broker.broker_epoch != session.broker_epoch or broker.is_fenced:
                continue
            if now >= session.deadline_ms:
                expired.append(node_id)
        return expired

    def fence(self, image: MetadataImage, node_id: int) -> ControllerAction:
        """Fence broker `node_id`, remove it from every ISR and move everything it led: one atomic
        batch (for a broker in more than changes_per_batch_max ISRs, the first ones; `poll`'s
        repair scan moves the rest right after)."""
        broker = image.brokers[node_id]
        changes = changes_without_broker(image, node_id)[: self.settings.changes_per_batch_max]
        inner = [commands.fence_broker(*commands.INNER, node_id, broker.broker_epoch)]
        inner.extend(change.command() for change in changes)
        clean, unclean = _count_elections(changes)
        moved = sum(1 for change in changes if change.partition.leader == node_id)
        return ControllerAction(
            ActionKind.FENCE,
            commands.atomic_batch(self._rid(), self.controller_epoch, inner),
            f"fencing broker {node_id} (session expired): {moved} partitions get new leaders "
            f"({unclean} unclean), {len(changes)} partitions change",
            node_id,
            clean,
            unclean,
        )

    # -- periodic work ---------------------------------------------------------------------------

    def poll(self, image: MetadataImage) -> ControllerAction | None:
        """The next thing to do, most urgent first: fence an expired broker, elect leaders for
        leaderless partitions, complete reassignments, rebalance preferred leaders (at most once
        per leader.imbalance.check.interval.seconds). Call again with the new image after each
        action is applied; None when there is nothing to do now."""
        for node_id in self.expired(image):
            return self.fence(image, node_id)
        if image.offset != self._scanned_offset:
            action = self._scan(image)
            if action is not None:
                return action
            self._scanned_offset = image.offset
        return self._maybe_rebalance(image)

    def _scan(self, image: MetadataImage) -> ControllerAction | None:
        limit = self.settings.changes_per_batch_max
        node_id = broker_needing_repair(image)
        if node_id is not None:
            changes = changes_without_broker(image, node_id)[:limit]
            clean, unclean = _count_elections(changes)
            return ControllerAction(
                ActionKind.REPAIR,
                commands.atomic_batch(self._rid(), self.controller_epoch, [c.command() for c in changes]),
                f"broker {node_id} is fenced or shutting down: {len(changes)} more partitions change",
                node_id,
                clean,
                unclean,
            )
        elections = leaderless_elections(image)[:limit]
        if elections:
            clean, unclean = _count_elections(elections)
            return ControllerAction(
                ActionKind.ELECT_LEADERLESS,
                commands.atomic_batch(self._rid(), self.controller_epoch, [c.command() for c in elections]),
                f"electing leaders for {len(elections)} leaderless partitions ({unclean} unclean)",
                clean_elections=clean,
                unclean_elections=unclean,
            )
        completions = reassignment_completions(image)[:limit]
        if completions:
            clean, unclean = _count_elections(completions)
            names = ", ".join(f"{c.topic.name}-{c.partition.partition}" for c in completions[:5])
            return ControllerAction(
                ActionKind.COMPLETE_REASSIGNMENT,
                commands.atomic_batch(self._rid(), self.controller_epoch, [c.command() for c in completions]),
                f"completing the reassignment of {len(completions)} partitions ({names})",
                clean_elections=clean,
                unclean_elections=unclean,
            )
        return None

    def _maybe_rebalance(self, image: MetadataImage) -> ControllerAction | None:
        now = self._clock.monotonic_ms()
        if self._next_rebalance_ms is None or now < self._next_rebalance_ms:
            return None
        config = self.broker_config(image, self.node_id)
        self._next_rebalance_ms = now + config.leader_imbalance_check_interval_seconds * 1000
        if not config.auto_leader_rebalance_enable:
            return None
        return self.rebalance(image, config.leader_imbalance_per_broker_percentage)

    def rebalance(self, image: MetadataImage, percentage: int) -> ControllerAction | None:
        """Preferred-leader elections for every partition whose preferred leader is an imbalanced
        broker (Kafka's auto leader rebalance); None when no broker is imbalanced."""
        brokers = set(imbalanced_brokers(image, percentage))
        if not brokers:
            return None
        changes = []
        for topic in image.topics():
            for partition in topic.partitions:
                if partition.replicas and election_order(partition)[0] in brokers:
                    change = preferred_leader_change(image, topic, partition)
                    if change is not None:
                        changes.append(change)
        changes = changes[: self.settings.changes_per_batch_max]
        if not changes:
            return None
        return ControllerAction(
            ActionKind.REBALANCE,
            commands.atomic_batch(self._rid(), self.controller_epoch, [c.command() for c in changes]),
            f"leader imbalance above {percentage}% on brokers {sorted(brokers)}: "
            f"moving {len(changes)} partitions to their preferred leaders",
            clean_elections=len(changes),
        )


def _leads_anything(image: MetadataImage, node_id: int) -> bool:
    return any(
        partition.leader == node_id for topic in image.topics_by_id.values() for partition in topic.partitions
    )


# ---------------------------------------------------------------------------------------------
# Admin requests: validation and commands (raise ControllerRequestError)
# ---------------------------------------------------------------------------------------------


def item_request_id(request_id: str, item: int) -> str:
    """The command request id of item `item` of a request: "<request_id>/<item>"."""
    return f"{request_id}/{item}"


def check_request_id(request_id: str) -> None:
    if not 0 < len(request_id) <= REQUEST_ID_PREFIX_LENGTH_MAX:
        raise ControllerRequestError(
            E.INVALID_REQUEST, f"request_id must be 1..{REQUEST_ID_PREFIX_LENGTH_MAX} characters, not {len(request_id)}"
        )


def _reject(code: int, message: str) -> ControllerRequestError:
    return ControllerRequestError(code, message)


def topic_by_name(image: MetadataImage, name: str) -> TopicImage:
    topic = image.topic(name)
    if topic is None:
        raise _reject(E.UNKNOWN_TOPIC, f"topic {name!r} does not exist")
    return topic


def _raise_problem(problem: topic_rules.Problem | None) -> None:
    if problem is not None:
        raise _reject(problem.code, problem.message)


def _initial_state(image: MetadataImage, replicas: Sequence[int], what: str) -> commands.Assignment:
    """ISR = the available replicas; leader = the first of them (KRaft's createTopic)."""
    isr = [r for r in replicas if is_available(image.brokers.get(r))]
    if not isr:
        raise _reject(
            E.INVALID_REPLICA_ASSIGNMENT,
            f"{what}: every broker of the assignment {list(replicas)} is fenced or shutting down",
        )
    return list(replicas), isr, isr[0]


def _explicit_assignment(
    image: MetadataImage, assignments: Sequence[Sequence[int]], replication_factor: int | None, first_partition: int
) -> list[tuple[int, ...]]:
    result = []
    for number, replicas in enumerate(assignments, start=first_partition):
        what = f"partition {number}"
        replicas = tuple(replicas)
        if not replicas:
            raise _reject(E.INVALID_REPLICA_ASSIGNMENT, f"{what}: the replica list is empty")
        if len(set(replicas)) != len(replicas):
            raise _reject(E.INVALID_REPLICA_ASSIGNMENT, f"{what}: duplicate broker in {list(replicas)}")
        if replication_factor is None:
            replication_factor = len(replicas)
        if len(replicas) != replication_factor:
            raise _reject(
                E.INVALID_REPLICA_ASSIGNMENT,
                f"{what}: {len(replicas)} replicas, but the replication factor is {replication_factor}",
            )
        for replica in replicas:
            if replica not in image.brokers:
                raise _reject(E.INVALID_REPLICA_ASSIGNMENT, f"{what}: broker {replica} is not registered")
        result.append(replicas)
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class TopicPlan:
    """A validated topic creation. Thread-safe (immutable)."""

    name: str
    assignments: tuple[commands.Assignment, ...]
    configs: Mapping[str, str]

    @property
    def replication_factor(self) -> int:
        return len(self.assignments[0][0])

    def command(self, request_id: str, controller_epoch: int, topic_id: bytes) -> MetadataCommand:
        return commands.create_topic(request_id, controller_epoch, topic_id, self.name, self.assignments, self.configs)


def plan_topic(
    image: MetadataImage,
    name: str,
    num_partitions: int | None,
    replication_factor: int | None,
    assignments: Sequence[Sequence[int]],
    topic_configs: Mapping[str, str],
    defaults: configs.BrokerConfig,
) -> TopicPlan:
    """Validate a topic creation and place its replicas.

    Checks, in Kafka's order: the name (legal characters, length, not "."/"..", no '.'/'_'
    collision), that it does not exist, partitions >= 1, 1 <= replication factor <= available
    brokers (INVALID_REPLICATION_FACTOR with Kafka's message), the explicit assignment if any,
    and the configs.

    Args:
        defaults: the controller's effective broker config (num.partitions,
            default.replication.factor apply when the request leaves them out).

    Raises:
        ControllerRequestError: naming the problem (INVALID_TOPIC, TOPIC_ALREADY_EXISTS,
            INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT, INVALID_CONFIG).
    """
    _raise_problem(topic_rules.new_topic_name_problem(image, name))
    available = available_brokers(image)
    if assignments:
        if num_partitions is not None and num_partitions != len(assignments):
            raise _reject(
                E.INVALID_REQUEST, f"{num_partitions} partitions asked, but the assignment has {len(assignments)}"
            )
        replicas = _explicit_assignment(image, assignments, replication_factor, 0)
    else:
        partitions = defaults.num_partitions if num_partitions is None else num_partitions
        if partitions < 1:
            raise _reject(E.INVALID_PARTITIONS, f"number of partitions must be at least 1, not {partitions}")
        factor = defaults.default_replication_factor if replication_factor is None else replication_factor
        if factor < 1 or factor > len(available):
            raise InvalidReplicationFactorError(factor, len(available))
        racks = [(broker.node_id, broker.rack) for broker in available]
        start, shift = placement.spread_start(image, placement.placement_order(racks))
        replicas = placement.assign_replicas(racks, partitions, factor, start, shift)
    _raise_problem(topic_rules.config_problem(configs.ConfigScope.TOPIC, topic_configs))
    initial = tuple(_initial_state(image, r, f"partition {n}") for n, r in enumerate(replicas))
    return TopicPlan(name, initial, dict(topic_configs))


def plan_partitions(
    image: MetadataImage, name: str, count: int, assignments: Sequence[Sequence[int]]
) -> tuple[TopicImage, tuple[commands.Assignment, ...]]:
    """Validate adding partitions to `name` up to `count` in total; the new partitions' states.

    Raises:
        ControllerRequestError: UNKNOWN_TOPIC, INVALID_PARTITIONS (count not larger),
            INVALID_REPLICATION_FACTOR (not enough available brokers), INVALID_REPLICA_ASSIGNMENT.
    """
    topic = topic_by_name(image, name)
    current = len(topic.partitions)
    if count <= current:
        raise _reject(
            E.INVALID_PARTITIONS, f"topic {name!r} has {current} partitions; the count can only increase (asked {count})"
        )
    added = count - current
    factor = topic.replication_factor
    if assignments:
        if len(assignments) != added:
            raise _reject(
                E.INVALID_REPLICA_ASSIGNMENT,
                f"{added} new partitions, but the assignment has {len(assignments)}",
            )
        replicas = _explicit_assignment(image, assignments, factor, current)
    else:
        available = available_brokers(image)
        if factor > len(available):
            raise InvalidReplicationFactorError(factor, len(available))
        racks = [(broker.node_id, broker.rack) for broker in available]
        start, shift = placement.spread_start(image, placement.placement_order(racks))
        replicas = placement.assign_replicas(racks, added, factor, start, shift, first_partition=current)
    states = tuple(_initial_state(image, r, f"partition {n}") for n, r in enumerate(replicas, start=current))
    return topic, states


def partition_of(image: MetadataImage, topic_name: str, partition: int) -> tuple[TopicImage, PartitionImage]:
    topic = topic_by_name(image, topic_name)
    if not 0 <= partition < len(topic.partitions):
        raise _reject(E.UNKNOWN_TOPIC, f"topic {topic_name!r} has no partition {partition} (it has {len(topic.partitions)})")
    return topic, topic.partitions[partition]


def all_partitions(image: MetadataImage) -> Iterator[tuple[TopicImage, PartitionImage]]:
    for topic in image.topics():
        for partition in topic.partitions:
            yield topic, partition


def preferred_election(image: MetadataImage, topic: TopicImage, partition: PartitionImage) -> PartitionChange:
    """A requested preferred-leader election for one partition.

    Raises:
        ControllerRequestError: ELECTION_NOT_NEEDED (the preferred replica leads already),
            PREFERRED_LEADER_NOT_AVAILABLE (it is not in the ISR or not available).
    """
    what = f"{topic.name}-{partition.partition}"
    preferred = election_order(partition)[0]
    if partition.leader == preferred:
        raise _reject(E.ELECTION_NOT_NEEDED, f"{what}: the preferred replica {preferred} is the leader already")
    change = preferred_leader_change(image, topic, partition)
    if change is None:
        reason = "is not in the ISR" if preferred not in partition.isr else "is fenced or shutting down"
        raise _reject(E.PREFERRED_LEADER_NOT_AVAILABLE, f"{what}: the preferred replica {preferred} {reason}")
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
        raise _reject(E.ELECTION_NOT_NEEDED, f"{what}: broker {partition.leader} is the leader")
    leader, is_unclean = elect_leader(image, partition, partition.isr, True)
    if leader == NO_LEADER:
        raise _reject(E.ELIGIBLE_LEADERS_NOT_AVAILABLE, f"{what}: no replica of {list(partition.replicas)} is available")
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
            raise _reject(E.NO_REASSIGNMENT_IN_PROGRESS, f"{what}: no reassignment in progress to cancel")
        return
    if len(set(targets)) != len(targets):
        raise _reject(E.INVALID_REPLICA_ASSIGNMENT, f"{what}: duplicate broker in {list(targets)}")
    for replica in targets:
        if replica not in image.brokers:
            raise _reject(E.INVALID_REPLICA_ASSIGNMENT, f"{what}: broker {replica} is not registered")


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
        raise _reject(E.UNKNOWN_TOPIC_ID, f"no topic has id {topic_id.hex()}")
    if not 0 <= partition_number < len(topic.partitions):
        raise _reject(E.UNKNOWN_TOPIC, f"topic {topic.name!r} has no partition {partition_number}")
    partition = topic.partitions[partition_number]
    what = f"{topic.name}-{partition_number}"
    if partition.leader != broker_id:
        raise _reject(E.NOT_LEADER, f"{what}: broker {broker_id} is not the leader (the leader is {partition.leader})")
    if leader_epoch < partition.leader_epoch:
        raise _reject(E.FENCED_LEADER_EPOCH, f"{what}: leader epoch {leader_epoch} is older than {partition.leader_epoch}")
    if leader_epoch > partition.leader_epoch:
        raise _reject(E.UNKNOWN_LEADER_EPOCH, f"{what}: leader epoch {leader_epoch} is newer than {partition.leader_epoch}")
    if partition_epoch != partition.partition_epoch:
        raise _reject(
            E.INVALID_UPDATE_VERSION, f"{what}: partition epoch is {partition.partition_epoch}, not {partition_epoch}"
        )
    isr = tuple(new_isr)
    if len(set(isr)) != len(isr):
        raise _reject(E.INVALID_REQUEST, f"{what}: duplicate replica in the new ISR {list(isr)}")
    if broker_id not in isr:
        raise _reject(E.INVALID_REQUEST, f"{what}: the new ISR {list(isr)} does not hold the leader {broker_id}")
    for replica in isr:
        if replica not in partition.replicas:
            raise _reject(E.INVALID_REQUEST, f"{what}: {replica} in the new ISR is not a replica ({list(partition.replicas)})")
        if replica not in partition.isr and not is_available(image.brokers.get(replica)):
            raise _reject(E.INVALID_REQUEST, f"{what}: broker {replica} is fenced or shutting down and cannot join the ISR")
    return PartitionChange(topic, partition, partition.leader, isr, False)


def config_resource_scope(image: MetadataImage, resource: metadata_pb2.ConfigResource) -> tuple[configs.ConfigScope, TopicImage | None]:
    """The scope of a config resource (and its topic).

    Raises:
        ControllerRequestError: UNKNOWN_TOPIC, INVALID_REQUEST (bad type or broker id).
    """
    kind = resource.type
    if kind == metadata_pb2.CONFIG_RESOURCE_CLUSTER:
        return configs.ConfigScope.CLUSTER, None
    if kind == metadata_pb2.CONFIG_RESOURCE_BROKER:
        if resource.broker_id < 0:
            raise _reject(E.INVALID_REQUEST, f"broker id {resource.broker_id} is negative")
        return configs.ConfigScope.BROKER, None
    if kind == metadata_pb2.CONFIG_RESOURCE_TOPIC:
        if resource.topic_id:
            topic = image.topic_by_id(bytes(resource.topic_id))
            if topic is None:
                raise _reject(E.UNKNOWN_TOPIC_ID, f"no topic has id {bytes(resource.topic_id).hex()}")
            return configs.ConfigScope.TOPIC, topic
        return configs.ConfigScope.TOPIC, topic_by_name(image, resource.topic_name)
    raise _reject(E.INVALID_REQUEST, "config resource type must be cluster, broker or topic")


def check_config_changes(
    image: MetadataImage,
    resource: metadata_pb2.ConfigResource,
    to_set: Mapping[str, str],
    to_delete: Sequence[str],
    static_broker_configs: Mapping[str, str],
) -> None:
    """Validate an IncrementalAlterConfigs item against the schema and the relationships that must
    hold afterwards (heartbeat interval < session timeout for every broker affected).

    Raises:
        ControllerRequestError: INVALID_CONFIG naming the key, UNKNOWN_TOPIC, INVALID_REQUEST.
    """
    scope, _ = config_resource_scope(image, resource)
    both = sorted(set(to_set) & set(to_delete))
    if both:
        raise _reject(E.INVALID_REQUEST, f"configuration {both[0]!r} is both set and deleted")
    _raise_problem(topic_rules.config_problem(scope, to_set, to_delete))
    if scope is configs.ConfigScope.TOPIC:
        return
    cluster = dict(image.cluster_configs)
    if scope is configs.ConfigScope.CLUSTER:
        cluster.update(to_set)
        for key in to_delete:
            cluster.pop(key, None)
    affected = sorted(image.brokers) if scope is configs.ConfigScope.CLUSTER else [resource.broker_id]
    for node_id in affected or [-1]:
        own = dict(image.broker_configs.get(node_id, {}))
        if scope is configs.ConfigScope.BROKER:
            own.update(to_set)
            for key in to_delete:
                own.pop(key, None)
        effective = configs.broker_config({**static_broker_configs, **cluster}, own)
        if effective.broker_heartbeat_interval_ms >= effective.broker_session_timeout_ms:
            raise _reject(
                E.INVALID_CONFIG,
                f"broker.heartbeat.interval.ms ({effective.broker_heartbeat_interval_ms}) must be less than "
                f"broker.session.timeout.ms ({effective.broker_session_timeout_ms})"
                + ("" if node_id < 0 else f" for broker {node_id}"),
            )


class ConfigSource(enum.Enum):
    """Where an effective config value comes from (lowest to highest precedence)."""

    DEFAULT = "default"
    STATIC_BROKER = "static"
    DYNAMIC_CLUSTER = "cluster"
    DYNAMIC_BROKER = "broker"
    DYNAMIC_TOPIC = "topic"


@dataclasses.dataclass(frozen=True, slots=True)
class DescribedConfig:
    """One effective config value. Thread-safe (immutable)."""

    key: str
    value: str
    source: ConfigSource
    doc: str


def _default_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe_configs(
    image: MetadataImage,
    resource: metadata_pb2.ConfigResource,
    keys: Sequence[str] = (),
    static_broker_configs: Mapping[str, str] | None = None,
) -> list[DescribedConfig]:
    """Effective values of a resource's keys with their source, sorted by key.

    Topic: default < cluster < topic. Broker: default < static (only when `static_broker_configs`
    is given: the answering node describes itself) < cluster < broker. Cluster: default < cluster.

    Raises:
        ControllerRequestError: UNKNOWN_TOPIC, INVALID_REQUEST, INVALID_CONFIG (unknown key asked).
    """
    scope, topic = config_resource_scope(image, resource)
    layers: list[tuple[ConfigSource, Mapping[str, str]]] = []
    if scope is configs.ConfigScope.TOPIC:
        assert topic is not None
        names = configs.TOPIC_KEYS
        layers = [(ConfigSource.DYNAMIC_CLUSTER, image.cluster_configs), (ConfigSource.DYNAMIC_TOPIC, topic.configs)]
    elif scope is configs.ConfigScope.BROKER:
        names = configs.BROKER_KEYS
        if static_broker_configs is not None:
            layers.append((ConfigSource.STATIC_BROKER, static_broker_configs))
        layers += [
            (ConfigSource.DYNAMIC_CLUSTER, image.cluster_configs),
            (ConfigSource.DYNAMIC_BROKER, image.broker_configs.get(resource.broker_id, {})),
        ]
    else:
        names = tuple(name for name in configs.SCHEMA if configs.ConfigScope.CLUSTER in configs.SCHEMA[name].scopes)
        layers = [(ConfigSource.DYNAMIC_CLUSTER, image.cluster_configs)]
    if keys:
        for key in keys:
            if key not in names:
                raise _reject(E.INVALID_CONFIG, f"configuration {key!r}: not a {scope.value} configuration key")
        names = tuple(keys)
    described = []
    for name in sorted(set(names)):
        spec = configs.SCHEMA[name]
        value, source = _default_text(spec.default), ConfigSource.DEFAULT
        for layer_source, values in layers:
            if name in values:
                value, source = values[name], layer_source
        described.append(DescribedConfig(name, value, source, spec.doc))
    return described


def is_internal_topic(name: str) -> bool:
    """Internal topics (e.g. __consumer_offsets) start with two underscores."""
    return name.startswith(INTERNAL_TOPIC_PREFIX)
