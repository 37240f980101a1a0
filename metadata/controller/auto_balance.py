"""When the active controller balances replicas: the trigger, the batch, the wait.

Owns `AutoBalancer`, the active controller's schedule for the balancer planner (balancer.py):

- What: `balance_plan` (decommission moves only while a non-decommissioning broker is fenced).
- Triggers: a broker starts or stops decommissioning; an available broker without any replica
  appears (a new broker, once unfenced); the end of a batch (the next one is planned); a new
  controller with a decommission under way; otherwise every auto.balance.check.interval.seconds.
  A broker restart or a controller failover alone is not a trigger: it changes no load, and
  moving data then would only add to the disturbance.
- A batch: at most auto.balance.max.concurrent.moves partition reassignments in one AtomicBatch
  of ReassignPartition commands (decommission moves first). The next batch is planned only when
  no partition of the cluster is being reassigned any more, so the balancer never has more than
  one batch in flight and never plans around a user's reassignment (whose partitions it would
  skip anyway). After a failover the new controller sees the same rule in the image.
- Off switch: auto.balance.enable=false (cluster config) stops new batches; reassignments already
  started finish (or are cancelled with `freshet partition reassign --cancel`).

Time enters through the injected Clock; request ids through an injected factory.
Imports only the standard library and freshet.metadata. Forbidden: grpc, storage, server,
client, cli, pysyncobj. Thread-safety: not thread-safe (one owner: the ControllerCore).
"""

from __future__ import annotations

from collections.abc import Callable

from freshet.metadata import commands, configs
from freshet.metadata.clock import Clock
from freshet.metadata.controller.balancer import Move, broker_loads, plan_moves
from freshet.metadata.controller.elections import placement_brokers
from freshet.metadata.image import MetadataImage


def _watched(image: MetadataImage) -> tuple[frozenset[int], frozenset[int]]:
    """(decommissioning brokers, available non-decommissioning brokers that hold no replica)."""
    hosting, _ = broker_loads(image)
    decommissioning = frozenset(node_id for node_id, b in image.brokers.items() if b.is_decommissioning)
    empty = frozenset(b.node_id for b in placement_brokers(image) if b.node_id not in hosting)
    return decommissioning, empty


def is_reassigning(image: MetadataImage) -> bool:
    """Whether any partition of the cluster is being reassigned."""
    return any(p.is_reassigning for topic in image.topics_by_id.values() for p in topic.partitions)


def balance_plan(image: MetadataImage, threshold_percentage: int) -> list[Move]:
    """The balancer's whole plan for `image`: eligible brokers are the available, not
    decommissioning ones; every decommissioning broker is emptied. While a broker that is not
    decommissioning is fenced (most likely restarting) only decommission moves are planned:
    balancing around it would move data twice (Cruise Control likewise waits before it heals a
    broker failure). A broker that is gone for good is decommissioned to move its replicas."""
    eligible = [(broker.node_id, broker.rack) for broker in placement_brokers(image)]
    brokers = [image.brokers[node_id] for node_id in sorted(image.brokers)]
    decommissioning = [b.node_id for b in brokers if b.is_decommissioning]
    is_balancing = not any(b.is_fenced and not b.is_decommissioning for b in brokers)
    return plan_moves(image, eligible, decommissioning, threshold_percentage, is_balancing=is_balancing)


class AutoBalancer:
    """The balancer's schedule for one controller activation (module docstring). Not thread-safe."""

    def __init__(self, clock: Clock, new_request_id: Callable[[], str]) -> None:
        self._clock = clock
        self._new_request_id = new_request_id
        self._is_due = False
        self._next_check_ms: int | None = None
        self._seen_offset = -1
        self._decommissioning: frozenset[int] | None = None
        self._empty: frozenset[int] = frozenset()
        self.batches_started = 0
        self.moves_started = 0
        self.last_plan_size = 0
        self._has_unsettled_batches = False

    def take_settled(self) -> bool:
        """True once after the batches started so far are done and the plan came back empty:
        the moment to elect the preferred leaders the moves chose."""
        if self._has_unsettled_batches and not self._is_due:
            self._has_unsettled_batches = False
            return True
        return False

    def poll(self, image: MetadataImage, config: configs.BrokerConfig, controller_epoch: int) -> tuple[commands.MetadataCommand, list[Move]] | None:
        """The next batch to propose (an AtomicBatch of reassignments and its moves), or None."""
        now = self._clock.monotonic_ms()
        if image.offset != self._seen_offset:
            self._seen_offset = image.offset
            decommissioning, empty = _watched(image)
            if self._decommissioning is None:
                self._is_due = bool(decommissioning)            # a new controller resumes a decommission
            elif decommissioning != self._decommissioning or empty - self._empty:
                self._is_due = True                              # (un)marked, or a new, empty broker
            self._decommissioning, self._empty = decommissioning, empty
        if self._next_check_ms is None:
            self._next_check_ms = now + config.auto_balance_check_interval_seconds * 1000
        if now >= self._next_check_ms:
            self._is_due = True
        if not config.auto_balance_enable or not self._is_due or is_reassigning(image):
            return None
        self._next_check_ms = now + config.auto_balance_check_interval_seconds * 1000
        moves = balance_plan(image, config.auto_balance_threshold_percentage)
        self.last_plan_size = len(moves)
        if not moves:
            self._is_due = False
            return None
        batch = moves[: config.auto_balance_max_concurrent_moves]
        inner = [
            commands.reassign_partition(*commands.INNER, move.topic_id, move.partition, move.target_replicas, by_balancer=True)
            for move in batch
        ]
        # Still due: once this batch completes (no partition reassigning) the next one is planned.
        self.batches_started += 1
        self.moves_started += len(batch)
        self._has_unsettled_batches = True
        return commands.atomic_batch(self._new_request_id(), controller_epoch, inner), batch
