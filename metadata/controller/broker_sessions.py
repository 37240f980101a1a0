"""Broker sessions and the active controller's timers: the one stateful part of the controller.

Owns the broker sessions (held in memory only, as KRaft): registration, heartbeats, the reconnect
grace after a broken stream, expiry, and the fresh session every broker gets from a new
controller; fencing (one AtomicBatch fences a broker, removes it from every ISR it is in and
elects a new leader for every partition it led), unfencing (the broker caught up to its
registration offset), controlled shutdown (one batch moves leaderships away, leaves ISRs and
fences; then the broker may shut down); and `poll`, which turns the image into the next action:
fence an expired broker, repair what a fencing left, elect leaders for leaderless partitions,
complete reassignments, rebalance preferred leaders (the choices themselves are elections.py's),
start the replica balancer's next batch (auto_balance.py decides when, balancer.py what).

Time enters only through the injected `Clock` (monotonic milliseconds); request ids come from an
injected factory, so tests and transcripts are deterministic.

Imports only the standard library, freshet.metadata (clock, commands, configs, errors, image,
controller.elections) and wire types. Forbidden: grpc, storage, server, client, cli, pysyncobj.
Thread-safety: `ControllerCore` and `BrokerSession` are not thread-safe: one owner (the node's
event loop) calls them. The other classes are immutable and thread-safe.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping

from freshet.metadata import commands, configs
from freshet.metadata.clock import Clock
from freshet.metadata.controller.auto_balance import AutoBalancer
from freshet.metadata.controller.elections import (
    PartitionChange,
    broker_needing_repair,
    changes_without_broker,
    election_order,
    imbalanced_brokers,
    leaderless_elections,
    preferred_leader_change,
    reassignment_completions,
)
from freshet.metadata.errors import StaleBrokerEpochError
from freshet.metadata.image import BrokerRegistration, MetadataImage
from freshet.v1 import metadata_pb2

MetadataCommand = metadata_pb2.MetadataCommand

# Default partition changes per AtomicBatch (COMMAND_BYTES_MAX is 512 KiB; a ChangePartition is
# ~45 bytes). A broker in more ISRs is fenced with the first ones; the repair scan moves the rest.
CHANGES_PER_BATCH_MAX = 5_000


@dataclasses.dataclass(slots=True)
class BrokerSession:
    """A broker's liveness as the active controller sees it (memory only). Not thread-safe.

    Attributes:
        node_id, incarnation_id, broker_epoch: whose session (the registration it belongs to).
        deadline_ms: monotonic time after which the broker is fenced.
        metadata_offset: the offset of the broker's metadata image at its last heartbeat (-1: none).
        want_shutdown: the broker asked for a controlled shutdown.
        is_connected: a heartbeat stream is open.
        disk: (free bytes, total bytes, is full) of the broker's log directory at its last
            heartbeat, None before a heartbeat reported one (for DescribeCluster only).
    """

    node_id: int
    incarnation_id: bytes
    broker_epoch: int
    deadline_ms: int
    metadata_offset: int = -1
    want_shutdown: bool = False
    is_connected: bool = False
    disk: tuple[int, int, bool] | None = None


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
    BALANCE = "balance"                    # a batch of the replica balancer's reassignments


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
        self.balancer = AutoBalancer(clock, new_request_id)

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
        self,
        image: MetadataImage,
        node_id: int,
        incarnation_id: bytes,
        host: str,
        port: int,
        rack: str,
        listeners: tuple[tuple[str, str, int], ...] = (),
    ) -> ControllerAction | None:
        """The command registering this broker incarnation, or None when it is registered already.

        A new incarnation replaces the old one; if the old one is still unfenced (or in ISRs), the
        same batch first fences it and moves its leaderships away, so that no reader ever sees a
        leader whose process is gone.
        """
        existing = image.brokers.get(node_id)
        if existing is not None and existing.incarnation_id == incarnation_id:
            return None
        register = commands.register_broker(*commands.INNER, node_id, incarnation_id, host, port, rack, listeners)
        changes = [] if existing is None else changes_without_broker(image, node_id)
        if existing is None or (existing.is_fenced and not changes):
            command = commands.register_broker(self._rid(), self.controller_epoch, node_id, incarnation_id, host, port, rack, listeners)
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
        per leader.imbalance.check.interval.seconds), start the replica balancer's next batch.
        Call again with the new image after each action is applied; None when there is nothing
        to do now."""
        for node_id in self.expired(image):
            return self.fence(image, node_id)
        if image.offset != self._scanned_offset:
            action = self._scan(image)
            if action is not None:
                return action
            self._scanned_offset = image.offset
        action = self._maybe_rebalance(image)
        if action is not None:
            return action
        return self._maybe_balance(image)

    def _maybe_balance(self, image: MetadataImage) -> ControllerAction | None:
        planned = self.balancer.poll(image, self.broker_config(image, self.node_id), self.controller_epoch)
        if planned is None:
            if self.balancer.take_settled():
                self._next_rebalance_ms = self._clock.monotonic_ms()   # elect the new preferred leaders now
            return None
        command, moves = planned
        described = ", ".join(
            f"{m.topic}-{m.partition} {list(m.current_replicas)}->{list(m.target_replicas)} ({m.reason})" for m in moves[:5]
        )
        return ControllerAction(
            ActionKind.BALANCE,
            command,
            f"balancer: {len(moves)} of {self.balancer.last_plan_size} planned moves start: {described}",
        )

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

