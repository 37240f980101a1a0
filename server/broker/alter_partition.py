"""ISR maintenance on the leader: decide ISR changes and ask the controller (AlterPartition).

Owns (Kafka's AlterPartitionManager plus the ISR expiration task): a periodic pass every
replica.lag.time.max.ms / 4 (between `limits.ISR_CHECK_INTERVAL_MS_MIN` and `_MAX`), plus an
immediate pass, coalesced, for a partition whose follower may just have caught up. Every decision
is `LeaderState.alter_isr` (pure, server/replication/core.py); the AlterPartition requests go to
the active controller, at most one in flight per partition; the answer is applied through
`Partition.alter_isr_answered`.

Issue 16 (availability after short partitions): a shrink of every follower of a partition at once
is decided only while this broker has contact with a controller (`controller_contact`, from its
heartbeats), and when contact comes back after a silence such partitions' followers get a fresh
lag window (`LeaderState.restart_lag_clocks`): a leader cut off cannot tell its followers' lag
from its own isolation, and a shrink queued then was committed the moment the cut healed, so
acks=all answered NOT_ENOUGH_REPLICAS although every follower had caught up. A leader that still
hears some follower shrinks the lagging ones as before, with or without controller contact (when
the controller was the node cut off, its followers must not wait for the next one). Each (re)send
recomputes the pending change from the followers' current state (`LeaderState.refresh_pending`).
A partition is checked again at once after a committed change, after metadata changed its ISR,
and when a broker becomes eligible again (unfenced), so that a caught-up follower is re-added
without waiting for the next periodic pass.

Imports: asyncio, grpc (errors only), freshet.metadata (commands), freshet.server (broker, cluster,
replication, limits), wire types.
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc
from freshet.metadata import commands, configs
from freshet.metadata.image import MetadataImage
from freshet.server import limits
from freshet.server.broker.partition_table import PartitionTable, TopicPartition
from freshet.server.cluster.channels import ControllerChannels, forward
from freshet.server.errors import ForwardedError, NotControllerError, RequestTimedOutError
from freshet.server.replication.core import AlterIsr, LeaderState
from freshet.server.replication.partition import Partition
from freshet.server.tasks import cancel_quietly
from freshet.storage.clock import Clock
from freshet.v1 import common_pb2, controller_pb2

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
Change = tuple[Partition, LeaderState, AlterIsr]


class _NothingToSend(Exception):
    """Every change of a request became unnecessary before an attempt (followers caught up)."""


class AlterPartitionManager:
    """The leader's ISR maintenance (module docstring). Not thread-safe (loop)."""

    def __init__(
        self,
        table: PartitionTable,
        channels: ControllerChannels,
        controller_hint: Callable[[], int | None],
        broker_epoch: Callable[[], int],
        broker_config: Callable[[], configs.BrokerConfig],
        clock: Clock,
        controller_contact: Callable[[], int | None] = lambda: 0,
    ) -> None:
        """`controller_contact`: None while this broker has no contact with a controller, else a
        number that changes each time contact comes back (BrokerLifecycle.controller_contact)."""
        self._table = table
        self._channels = channels
        self._controller_hint = controller_hint
        self._broker_epoch = broker_epoch
        self._broker_config = broker_config
        self._clock = clock
        self._controller_contact = controller_contact
        self._contact: int | None = controller_contact()
        self._due: set[TopicPartition] = set()
        self._is_flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._requests: set[asyncio.Task] = set()
        self._is_closed = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._task = loop.create_task(self._periodic(), name="isr-maintenance")

    async def close(self) -> None:
        """Stop the periodic pass and drop requests in flight (their answers no longer matter)."""
        self._is_closed = True
        await cancel_quietly(self._task, *self._requests)

    def request_check(self, partition: Partition) -> None:
        """A follower of `partition` may have caught up: check its ISR soon (coalesced)."""
        leader = partition.leader
        if leader is None or leader.pending is not None or leader.awaiting_metadata:
            return
        self._due.add(partition.key)
        if not self._is_flush_scheduled:
            self._is_flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._is_flush_scheduled = False
        keys, self._due = self._due, set()
        partitions = self._table.partitions
        self.check([partitions[key] for key in keys if key in partitions])

    async def _periodic(self) -> None:
        while True:
            lag_max_ms = self._broker_config().replica_lag_time_max_ms
            interval_ms = min(max(lag_max_ms // 4, limits.ISR_CHECK_INTERVAL_MS_MIN), limits.ISR_CHECK_INTERVAL_MS_MAX)
            await asyncio.sleep(interval_ms / 1000)
            try:
                self.check(list(self._table.partitions.values()))
            except Exception:
                logger.exception("ISR maintenance failed")

    def check(self, partitions: list[Partition]) -> None:
        """Decide ISR changes for `partitions` and send one AlterPartition for all of them."""
        if self._is_closed:
            return
        lag_max_ms = self._broker_config().replica_lag_time_max_ms
        now_ms = self._clock.monotonic_ms()
        may_shrink = self._may_shrink(now_ms)
        changes: list[Change] = []
        for partition in partitions:
            leader = partition.leader
            if leader is None:
                continue
            action = leader.alter_isr(now_ms, lag_max_ms, self._is_eligible, may_shrink)
            if action is not None:
                changes.append((partition, leader, action))
        if not changes:
            return
        assert self._loop is not None
        task = self._loop.create_task(self._send(changes), name="alter-partition")
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    def _may_shrink(self, now_ms: int) -> bool:
        """Whether this broker has controller contact; when contact came back since the last call,
        every led partition whose followers all lag first gives them a fresh lag window."""
        contact = self._controller_contact()
        if contact is not None and contact != self._contact:
            for partition in self._table.partitions.values():
                if partition.leader is not None:
                    partition.leader.restart_lag_clocks(now_ms, self._broker_config().replica_lag_time_max_ms)
        if contact is not None:
            self._contact = contact
        return contact is not None

    def on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        """A broker became eligible (unfenced, not shutting down): check every partition soon, so
        that its caught-up replicas rejoin their ISRs without waiting for the periodic pass."""
        if self._is_closed or self._loop is None or old.brokers is new.brokers:
            return
        if any(_is_eligible_in(new, node_id) and not _is_eligible_in(old, node_id) for node_id in new.brokers):
            for partition in list(self._table.partitions.values()):
                self.request_check(partition)

    def _is_eligible(self, replica: int) -> bool:
        return _is_eligible_in(self._table.image, replica)

    def _request(self, changes: list[Change]) -> controller_pb2.AlterPartitionRequest:
        request = controller_pb2.AlterPartitionRequest(
            request_id=commands.new_request_id(), broker_id=self._table.node_id, broker_epoch=self._broker_epoch()
        )
        for partition, leader, action in changes:
            logger.info(
                "%s-%d: asking to change the ISR from %s to %s (leader epoch %d, partition epoch %d%s%s)",
                partition.topic, partition.partition, list(leader.isr), list(action.new_isr), action.leader_epoch,
                action.partition_epoch,
                f"; not caught up: {list(action.removed)}" if action.removed else "",
                f"; caught up: {list(action.added)}" if action.added else "",
            )
            request.changes.add(
                topic_id=partition.topic_id,
                partition=partition.partition,
                leader_epoch=action.leader_epoch,
                partition_epoch=action.partition_epoch,
                new_isr=action.new_isr,
            )
        return request

    def _refreshed(self, changes: list[Change]) -> list[Change]:
        """The changes still to send, each recomputed from the followers' current state."""
        lag_max_ms = self._broker_config().replica_lag_time_max_ms
        now_ms = self._clock.monotonic_ms()
        may_shrink = self._may_shrink(now_ms)
        refreshed: list[Change] = []
        for partition, leader, action in changes:
            if leader.pending is not action:
                continue                                   # metadata moved on: nothing pending
            current = leader.refresh_pending(now_ms, lag_max_ms, may_shrink)
            if current is None:
                logger.info("%s-%d: the ISR change is no longer needed (followers caught up)", partition.topic, partition.partition)
            else:
                refreshed.append((partition, leader, current))
        return refreshed

    async def _send(self, changes: list[Change]) -> None:
        metrics = self._table.metrics
        sending = changes
        built: list = []                                  # [actions, request] of the last attempt

        def build() -> controller_pb2.AlterPartitionRequest:
            """The request of one attempt: recomputed (forward retries), the same request (and
            request id: the controller deduplicates) while nothing changed."""
            nonlocal sending
            sending = self._refreshed(sending)
            if not sending:
                raise _NothingToSend
            actions = [action for _, _, action in sending]
            if not built or built[0] != actions:
                built[:] = [actions, self._request(sending)]
            return built[1]

        try:
            response = await forward(
                self._channels,
                "AlterPartition",
                build,
                time.monotonic() + limits.ALTER_PARTITION_TIMEOUT_MS / 1000,
                self._controller_hint,
                skip_self=False,
            )
        except _NothingToSend:
            return
        except (ForwardedError, NotControllerError, RequestTimedOutError, grpc.aio.AioRpcError) as error:
            logger.warning("AlterPartition for %d partitions got no answer: %s", len(sending), error)
            for _, leader, action in sending:
                leader.on_alter_isr_lost(action)
            metrics.alter_partition_failures.inc(len(sending))
            return
        results = {(bytes(result.topic_id), result.partition): result for result in response.results}
        now_ms = self._clock.monotonic_ms()
        for partition, leader, action in sending:
            result = results.get((partition.topic_id, partition.partition))
            if result is None:
                leader.on_alter_isr_lost(action)
                continue
            code = result.error.code
            state = result.partition_state
            partition.alter_isr_answered(leader, action, now_ms, code, state.partition_epoch, state.isr, state.leader_epoch)
            if code == E.NONE:
                if action.removed:
                    metrics.isr_shrinks.inc()
                if action.added:
                    metrics.isr_expands.inc()
                logger.info("%s-%d: ISR is now %s (partition epoch %d)",
                            partition.topic, partition.partition, list(state.isr), state.partition_epoch)
                self.request_check(partition)   # a follower that caught up meanwhile rejoins now
            else:
                metrics.alter_partition_failures.inc()
                logger.info(
                    "%s-%d: the controller refused the ISR change: %s %s",
                    partition.topic, partition.partition, common_pb2.ErrorCode.Name(code), result.error.message,
                )


def _is_eligible_in(image: MetadataImage, replica: int) -> bool:
    """KIP-841: a replica may join an ISR only while its broker is registered, unfenced and not
    in controlled shutdown."""
    broker = image.brokers.get(replica)
    return broker is not None and not broker.is_fenced and not broker.in_controlled_shutdown
