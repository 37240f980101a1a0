"""The leader side of replication: the `Replication.ReplicaFetch` stream of each follower broker.

Owns one `FollowerSession` per open stream (one per follower broker and leader, multiplexing
every partition it follows here; replication.proto is the contract):

- positions from the follower: a reset position is validated (`check_follower_position`: topic
  id, leader epoch fencing, divergence by leader epoch, offset range) and answered with an error
  or diverging_epoch, or moves the partition's send cursor; every position is the follower's
  acknowledgement (its log end offset), which the partition's `LeaderState` turns into the high
  watermark and the ISR decisions;
- pushes: one writer task per stream builds messages from the partitions that have news (an
  append woke them, an acknowledgement freed window, the high watermark moved) and writes them
  one at a time, awaiting gRPC flow control; data is read from the log with one pread per
  partition and range, shared by every follower's session (push_reads.py), and sent as stored.
  Unacknowledged bytes are bounded per partition
  (`limits.REPLICATION_PARTITION_WINDOW_BYTES`) and per stream (`limits.REPLICATION_STREAM_WINDOW_BYTES`); a message holds at most
  `limits.REPLICATION_MESSAGE_BYTES_TARGET` of records; every data push carries the partition's
  high watermark, and a high watermark that moved without data is sent alone only once the
  partition had no data push for `HIGH_WATERMARK_PUSH_DELAY_S` (coalesced): while records flow
  (a producer sending one record at a time included) the next push carries it, so a follower's
  high watermark lags the leader's by at most one push or that delay, and no message is spent on it. Pushes to a
  replica a reassignment is adding (not in the ISR) go through the broker's replication throttle
  (throttle.py): a partition without tokens stays dirty and the writer looks again when they refill. The log start
  offset travels the same way: every push carries it, and when DeleteRecords moves it without
  data or a high watermark change it is sent alone like a high watermark;
- the follower's log start offset from every position, which DeleteRecords waits on (the low
  watermark, Kafka's lowWatermarkIfLeader).

Imports: asyncio, grpc, freshet.server, freshet.storage (errors, the log's read result), wire types.
Thread-safety: not thread-safe; grpc.aio runs the handlers on the node's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import grpc
from freshet.metadata.security import Operation, ResourceType
from freshet.server import limits, status
from freshet.server.errors import InvalidRequestError
from freshet.server.replication.core import UNKNOWN_OFFSET, PushCursor, check_follower_position
from freshet.server.replication.host import ReplicaHost
from freshet.server.replication.partition import Partition
from freshet.server.replication.push_reads import SharedPushReads
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.storage.errors import OffsetOutOfRangeError, StorageError
from freshet.storage.log import LogReadResult
from freshet.v1 import common_pb2, replication_pb2, replication_pb2_grpc

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
HIGH_WATERMARK_PUSH_DELAY_S = 0.02


def _durable_offset(position: replication_pb2.ReplicaPosition) -> int:
    """The follower's fsynced offset in `position` (UNKNOWN_OFFSET when it did not say)."""
    return position.durable_offset if position.HasField("durable_offset") else UNKNOWN_OFFSET


class FollowerSession:
    """One follower broker's ReplicaFetch stream on this leader. Not thread-safe (loop)."""

    def __init__(
        self, host: ReplicaHost, replica_id: int, broker_epoch: int, context: grpc.aio.ServicerContext,
        reads: SharedPushReads | None = None,
    ) -> None:
        """`reads`: the leader's push reads shared by all its sessions (None: this session's own)."""
        self.host = host
        self._reads = reads if reads is not None else SharedPushReads()
        self.replica_id = replica_id
        self.broker_epoch = broker_epoch
        self._context = context
        self.cursors: dict[tuple[str, int], tuple[Partition, PushCursor]] = {}
        self._answers: dict[tuple[str, int], replication_pb2.ReplicaPartitionData] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._high_watermark_dirty: set[tuple[str, int]] = set()
        self._high_watermark_timer: asyncio.TimerHandle | None = None
        self._is_high_watermark_due = False
        self._wake = asyncio.Event()
        self._throttle_timer: asyncio.TimerHandle | None = None
        self.in_flight_bytes = 0
        self.messages_sent = 0

    def __repr__(self) -> str:
        return f"FollowerSession(replica {self.replica_id}, {len(self.cursors)} partitions)"

    # -- notifications from partitions (loop) ----------------------------------------------------

    def on_append(self, partition: Partition) -> None:
        key = partition.key
        if key in self.cursors:
            self._dirty.add(key)
            self._wake.set()

    def on_high_watermark(self, partition: Partition) -> None:
        key = partition.key
        if key in self.cursors:
            self._high_watermark_dirty.add(key)
            self._defer_high_watermarks(HIGH_WATERMARK_PUSH_DELAY_S)

    def _high_watermark_due(self) -> None:
        """The timer: wake the writer if a partition's high watermark waited a quiet delay, else
        look again when the first one will have (records pushed meanwhile carried the rest)."""
        self._high_watermark_timer = None
        now_s = asyncio.get_running_loop().time()
        wait_s = None
        for key in self._high_watermark_dirty:
            entry = self.cursors.get(key)
            if entry is None:
                continue
            remaining_s = entry[1].records_sent_s + HIGH_WATERMARK_PUSH_DELAY_S - now_s
            if remaining_s <= 0:
                self._is_high_watermark_due = True
                self._wake.set()
                return
            wait_s = remaining_s if wait_s is None else min(wait_s, remaining_s)
        if wait_s is not None:
            self._defer_high_watermarks(wait_s)

    def _defer_high_watermarks(self, delay_s: float) -> None:
        """Some partitions' high watermarks wait for a quiet `delay_s` (a data push may carry them)."""
        if self._high_watermark_timer is None:
            self._high_watermark_timer = asyncio.get_running_loop().call_later(delay_s, self._high_watermark_due)

    def on_partition_change(self, partition: Partition) -> None:
        """The partition's role or leader epoch changed: the follower must start over with a
        reset position under the new state (or learn of the new leader)."""
        key = partition.key
        entry = self.cursors.get(key)
        if entry is None or entry[0] is not partition:
            return
        self._drop(key)
        if partition.is_leader:
            # Still the leader, at a newer epoch: the follower starts over once it knows it.
            detail = status.detail(
                E.FENCED_LEADER_EPOCH,
                f"{partition.topic}-{partition.partition}: the leader moved to epoch {partition.leader_epoch}",
                partition=partition.topic_partition,
                leader_id=self.host.node_id,
                leader_epoch=partition.leader_epoch,
            )
        else:
            detail = self.host.not_leader_detail(partition.topic, partition.partition)
        self._answers[key] = self._error_data(partition, detail)
        self._wake.set()

    # -- the follower's requests -----------------------------------------------------------------

    def on_request(self, request: replication_pb2.ReplicaFetchRequest) -> None:
        if request.replica_id != self.replica_id or request.broker_epoch != self.broker_epoch:
            raise InvalidRequestError(
                f"a ReplicaFetch stream belongs to one replica: got replica {request.replica_id} epoch "
                f"{request.broker_epoch} on the stream of replica {self.replica_id} epoch {self.broker_epoch}"
            )
        now_ms = self.host.clock.monotonic_ms()
        for position in request.positions:
            self._on_position(position, now_ms)
        for removed in request.removed:
            self._drop((removed.topic, removed.partition))
        # Wake the writer only when there is something to write: an acknowledgement that freed
        # no window for pending data (the common case: the follower caught up) costs no wake-up.
        if self._answers or self._dirty or self._is_high_watermark_due:
            self._wake.set()

    def _on_position(self, position: replication_pb2.ReplicaPosition, now_ms: int) -> None:
        host = self.host
        key = (position.topic, position.partition)
        partition = host.partitions.get(key)
        entry = self.cursors.get(key)
        if entry is not None and entry[0] is not partition:
            self._drop(key)
            entry = None
        if partition is None or not partition.is_leader:
            if position.is_reset:
                self._answers[key] = self._error_data(partition, host.not_leader_detail(*key), key)
            return
        partition.follower_log_start_offset(self.replica_id, position.log_start_offset)
        if not position.is_reset:
            self._on_acknowledgement(key, partition, entry, position, now_ms)
            return
        self._on_reset(key, partition, entry, position, now_ms)

    def _on_acknowledgement(
        self, key: tuple[str, int], partition: Partition, entry: tuple[Partition, PushCursor] | None,
        position: replication_pb2.ReplicaPosition, now_ms: int,
    ) -> None:
        """A follower acknowledged a push: move its cursor and the leader's view of it."""
        replica = self.replica_id
        if entry is None:
            return                       # an acknowledgement racing a refusal: the reset follows
        cursor = entry[1]
        fetch_offset = position.fetch_offset
        if (
            cursor.awaiting_reset
            or position.current_leader_epoch != partition.leader_epoch
            or fetch_offset > cursor.next_offset
            or fetch_offset < cursor.acknowledged
        ):
            return
        before = cursor.in_flight_bytes
        cursor.acknowledge(fetch_offset)
        self.in_flight_bytes -= before - cursor.in_flight_bytes
        leader = partition.leader
        assert leader is not None
        if cursor.wants_data(leader.log_end_offset, limits.REPLICATION_PARTITION_WINDOW_BYTES):
            self._dirty.add(key)         # the ack freed window for data that waited (the leader's LEO: no lock)
        if partition.follower_acknowledged(replica, fetch_offset, now_ms, _durable_offset(position)):
            self.host.request_isr_check(partition)

    def _on_reset(
        self, key: tuple[str, int], partition: Partition, entry: tuple[Partition, PushCursor] | None,
        position: replication_pb2.ReplicaPosition, now_ms: int,
    ) -> None:
        """A follower (re)starts from a position: check it (fencing, divergence, range), then push
        from there."""
        leader = partition.leader
        assert leader is not None
        replica = self.replica_id
        log = partition.log
        try:
            check = check_follower_position(
                leader_epoch=partition.leader_epoch,
                topic_id=partition.topic_id,
                is_replica=replica in leader.followers,
                log_start_offset=log.log_start_offset,
                log_end_offset=log.log_end_offset,
                end_offset_for_epoch=log.end_offset_for_epoch,
                position_topic_id=bytes(position.topic_id),
                position_leader_epoch=position.current_leader_epoch,
                fetch_offset=position.fetch_offset,
                last_fetched_epoch=position.last_fetched_epoch,
            )
        except StorageError as error:
            self._refuse(key, partition, status.detail_for(error, self.host.node_id))
            return
        if check.error_code != E.NONE:
            hints: dict = {"partition": partition.topic_partition}
            if check.error_code in (E.FENCED_LEADER_EPOCH, E.UNKNOWN_LEADER_EPOCH):
                hints["leader_id"] = self.host.node_id
                hints["leader_epoch"] = partition.leader_epoch
            self._refuse(key, partition, status.detail(check.error_code, f"{partition.topic}-{partition.partition}: {check.message}", **hints))
            return
        if check.is_diverging:
            data = self._error_data(partition, status.ok_detail())
            data.diverging_epoch.epoch = check.diverging_epoch
            data.diverging_epoch.end_offset = check.diverging_end_offset
            self._refuse(key, partition, None, data)
            logger.info(
                "%s-%d: replica %d diverges after epoch %d (it is at %d, last epoch %d): truncate to %d",
                key[0], key[1], replica, check.diverging_epoch, position.fetch_offset, position.last_fetched_epoch,
                check.diverging_end_offset,
            )
            return
        if entry is None:
            cursor = PushCursor()
            self.cursors[key] = (partition, cursor)
            partition.sessions.add(self)
        else:
            cursor = entry[1]
            self.in_flight_bytes -= cursor.in_flight_bytes
        cursor.reset(position.fetch_offset)
        self._answers.pop(key, None)
        self._dirty.add(key)
        self._high_watermark_dirty.add(key)
        self._is_high_watermark_due = True
        if partition.follower_acknowledged(replica, position.fetch_offset, now_ms, _durable_offset(position)):
            self.host.request_isr_check(partition)

    def _refuse(
        self,
        key: tuple[str, int],
        partition: Partition,
        detail: common_pb2.ErrorDetail | None,
        data: replication_pb2.ReplicaPartitionData | None = None,
    ) -> None:
        """Answer an error (or diverging_epoch) and push nothing until the next reset position."""
        entry = self.cursors.get(key)
        if entry is not None:
            cursor = entry[1]
            self.in_flight_bytes -= cursor.in_flight_bytes
            cursor.refuse()
        self._answers[key] = data if data is not None else self._error_data(partition, detail)

    def _drop(self, key: tuple[str, int]) -> None:
        entry = self.cursors.pop(key, None)
        if entry is not None:
            partition, cursor = entry
            self.in_flight_bytes -= cursor.in_flight_bytes
            partition.sessions.discard(self)
        self._dirty.discard(key)
        self._high_watermark_dirty.discard(key)

    def _error_data(
        self, partition: Partition | None, detail: common_pb2.ErrorDetail | None, key: tuple[str, int] | None = None
    ) -> replication_pb2.ReplicaPartitionData:
        if partition is None:
            assert key is not None
            return replication_pb2.ReplicaPartitionData(topic=key[0], partition=key[1], error=detail, base_offset=-1)
        log = partition.log
        try:
            start, end = log.log_start_offset, log.log_end_offset
        except StorageError:
            start = end = -1
        return replication_pb2.ReplicaPartitionData(
            topic=partition.topic,
            partition=partition.partition,
            error=detail,
            high_watermark=partition.high_watermark,
            log_start_offset=start,
            leader_log_end_offset=end,
            base_offset=-1,
            leader_epoch=partition.leader_epoch,
        )

    # -- pushes ----------------------------------------------------------------------------------

    def close(self) -> None:
        for key in list(self.cursors):
            self._drop(key)
        if self._high_watermark_timer is not None:
            self._high_watermark_timer.cancel()
            self._high_watermark_timer = None
        if self._throttle_timer is not None:
            self._throttle_timer.cancel()
            self._throttle_timer = None

    def _wake_after_throttle(self, wait_ms: int) -> None:
        """A throttled partition stays dirty; look again once the throttle has tokens."""
        if self._throttle_timer is None:
            self._throttle_timer = asyncio.get_running_loop().call_later(max(wait_ms, 1) / 1000, self._throttle_due)

    def _throttle_due(self) -> None:
        self._throttle_timer = None
        self._wake.set()

    async def run_writer(self) -> None:
        """Write messages as partitions have news, one at a time (awaiting flow control)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                message = self._build()
                if message is None:
                    break
                await self._context.write(message)
                self.messages_sent += 1
                self.host.metrics.replication_pushes.inc()

    def _build(self) -> replication_pb2.ReplicaFetchResponse | None:
        """The next message: pending answers, then records of dirty partitions (within the message
        target and the stream window), then due high watermarks; None when there is nothing to send."""
        parts: list[replication_pb2.ReplicaPartitionData] = []
        if self._answers:
            parts.extend(self._answers.values())
            self._answers.clear()
        size = self._add_records(parts)
        if self._is_high_watermark_due:
            self._is_high_watermark_due = False
            self._add_high_watermarks(parts)
        if self._dirty and size >= limits.REPLICATION_MESSAGE_BYTES_TARGET:
            self._wake.set()
        if not parts:
            return None
        return replication_pb2.ReplicaFetchResponse(partitions=parts)

    def _add_records(self, parts: list[replication_pb2.ReplicaPartitionData]) -> int:
        """Add the records of dirty partitions to `parts`; the record bytes added. A partition
        leaves the dirty set once it has nothing more to send (or is refused)."""
        size = 0
        dirty = self._dirty
        throttle = self.host.replication_throttle
        for key in list(dirty):
            entry = self.cursors.get(key)
            if entry is None or not entry[0].is_leader:
                dirty.discard(key)
                continue
            partition, cursor = entry
            if size >= limits.REPLICATION_MESSAGE_BYTES_TARGET or self.in_flight_bytes >= limits.REPLICATION_STREAM_WINDOW_BYTES:
                break                    # the rest stays dirty: the next message, or the next ack
            is_throttled = throttle.is_throttled(partition.topic, partition.partition, self.replica_id)
            allowance = throttle.allowance() if is_throttled else None
            if allowance == 0:
                self._wake_after_throttle(throttle.wait_ms())
                continue                 # stays dirty until the throttle has tokens
            try:
                read = self._read_next(partition, cursor, allowance)
            except StorageError as error:
                dirty.discard(key)
                parts.append(self._refusal(key, partition, error))
                continue
            if read is None or not read.records:
                dirty.discard(key)
                continue
            parts.append(self._records_sent(partition, cursor, read))
            size += len(read.records)
            if is_throttled:
                throttle.consume(len(read.records))
            if not cursor.wants_data(read.log_end_offset, limits.REPLICATION_PARTITION_WINDOW_BYTES):
                dirty.discard(key)
        return size

    def _read_next(self, partition: Partition, cursor: PushCursor, limit_bytes: int | None = None) -> LogReadResult | None:
        """The follower's next records within its partition window (and `limit_bytes`, the
        throttle's allowance, when given: at least one whole batch is read); None when it wants none.

        Raises:
            StorageError: the read failed (OffsetOutOfRangeError: the cursor is outside the log).
        """
        log = partition.log
        end = log.log_end_offset
        if not cursor.wants_data(end, limits.REPLICATION_PARTITION_WINDOW_BYTES):
            return None
        max_bytes = limits.REPLICATION_PARTITION_WINDOW_BYTES - cursor.in_flight_bytes
        if limit_bytes is not None:
            max_bytes = min(max_bytes, limit_bytes)
        # The other followers' sessions ask for the same range on this turn of the loop: one read.
        return self._reads.read(partition, cursor.next_offset, max_bytes)

    def _refusal(
        self, key: tuple[str, int], partition: Partition, error: StorageError
    ) -> replication_pb2.ReplicaPartitionData:
        """Refuse the partition after a failed read (see _refuse); the answer to send."""
        if isinstance(error, OffsetOutOfRangeError):
            detail = status.detail(
                E.OFFSET_OUT_OF_RANGE,
                str(error),
                log_start_offset=error.log_start_offset,
                log_end_offset=error.log_end_offset,
                partition=partition.topic_partition,
            )
        else:
            detail = status.detail_for(error, self.host.node_id)
        self._refuse(key, partition, detail)
        return self._answers.pop(key)

    def _records_sent(
        self, partition: Partition, cursor: PushCursor, read: LogReadResult
    ) -> replication_pb2.ReplicaPartitionData:
        """The records of `read` as a message part, counted as sent and in flight."""
        records = read.records
        length = len(records)
        data = replication_pb2.ReplicaPartitionData(
            topic=partition.topic,
            partition=partition.partition,
            high_watermark=partition.high_watermark,
            log_start_offset=read.log_start_offset,
            leader_log_end_offset=read.log_end_offset,
            records=records,
            base_offset=read.first_offset,
            leader_epoch=partition.leader_epoch,
        )
        cursor.on_sent(read.next_offset, length)
        cursor.records_sent_s = asyncio.get_running_loop().time()
        cursor.sent_high_watermark = partition.high_watermark
        cursor.sent_log_start_offset = read.log_start_offset
        self.in_flight_bytes += length
        partition.counters.replication_bytes_out.inc(length)
        return data

    def _add_high_watermarks(self, parts: list[replication_pb2.ReplicaPartitionData]) -> None:
        """Add a part without records for each partition whose high watermark or log start offset
        moved since sent, unless records went out for it within `HIGH_WATERMARK_PUSH_DELAY_S`
        (then it waits for the next push or a quiet delay: see the module docstring)."""
        deferred: set[tuple[str, int]] = set()
        wait_s = HIGH_WATERMARK_PUSH_DELAY_S
        now_s = asyncio.get_running_loop().time()
        for key in self._high_watermark_dirty:
            entry = self.cursors.get(key)
            if entry is None:
                continue
            partition, cursor = entry
            if cursor.awaiting_reset or not partition.is_leader:
                continue
            quiet_s = now_s - cursor.records_sent_s
            if quiet_s < HIGH_WATERMARK_PUSH_DELAY_S:
                deferred.add(key)
                wait_s = min(wait_s, HIGH_WATERMARK_PUSH_DELAY_S - quiet_s)
                continue
            data = self._error_data(partition, None)
            if (cursor.sent_high_watermark, cursor.sent_log_start_offset) == (data.high_watermark, data.log_start_offset):
                continue
            cursor.sent_high_watermark = data.high_watermark
            cursor.sent_log_start_offset = data.log_start_offset
            parts.append(data)
        self._high_watermark_dirty = deferred
        if deferred:
            self._defer_high_watermarks(wait_s)


class SeriesSource(Protocol):
    """What ConsoleSeries answers from: the node's console History (server/http/console_data/
    history.py; the HTTP layer sits above replication, so it is passed in, not imported)."""

    interval_s: float

    def export(self, kinds=(), topics=(), groups=(), since: float = 0.0) -> list: ...


class ReplicationService(replication_pb2_grpc.ReplicationServicer):
    """freshet.v1.Replication on a broker. Not thread-safe (loop)."""

    def __init__(self, host: ReplicaHost, authorizer: Authorizer | None = None, history: SeriesSource | None = None) -> None:
        """`history`: the node's console sampler (server/http/console_data/history.py), which
        ConsoleSeries answers from."""
        self.host = host
        self.node_id = host.node_id
        self.authorizer = authorizer or rules.allow_all()
        self.history = history
        #: One log read per pushed range, shared by the follower sessions of this leader.
        self.push_reads = SharedPushReads()

    @status.handler()
    async def ConsoleSeries(self, request, context):  # noqa: N802 - gRPC method name
        # The console of another node merges every broker's charts: inter-broker, as ReplicaFetch.
        self.authorizer.check(Operation.CLUSTER_ACTION, ResourceType.CLUSTER)
        self.host.metrics.count_request("ConsoleSeries")
        history = self.history
        if history is None:
            raise InvalidRequestError(f"node {self.node_id} keeps no console history")
        found = history.export(set(request.kinds), set(request.topics), set(request.groups), request.since)
        return replication_pb2.ConsoleSeriesResponse(
            node_id=self.node_id, interval_s=history.interval_s,
            series=[replication_pb2.ConsoleSeries(key=list(data.key), unit=data.unit, times=[t for t, _ in data.points],
                                                  values=[v for _, v in data.points]) for data in found],
        )

    @status.handler()
    async def RecordTimestamps(self, request, context):  # noqa: N802 - gRPC method name
        # Group coordinators ask for consumer lag in time: inter-broker, as ReplicaFetch.
        self.authorizer.check(Operation.CLUSTER_ACTION, ResourceType.CLUSTER)
        self.host.metrics.count_request("RecordTimestamps")
        return self.host.record_timestamps(request)

    @status.handler()
    async def ReplicaFetch(self, request_iterator, context):  # noqa: N802 - gRPC method name
        # Only brokers replicate (Kafka: ClusterAction on the cluster for follower fetches).
        self.authorizer.check(Operation.CLUSTER_ACTION, ResourceType.CLUSTER)
        host = self.host
        session: FollowerSession | None = None
        writer: asyncio.Task | None = None
        try:
            first = await context.read()
            if first is grpc.aio.EOF:
                return
            host.check_follower_broker(first.replica_id, first.broker_epoch)
            session = FollowerSession(host, first.replica_id, first.broker_epoch, context, self.push_reads)
            host.sessions.add(session)
            logger.info("replica %d (broker epoch %d) opened a replication stream", first.replica_id, first.broker_epoch)
            writer = asyncio.create_task(session.run_writer(), name=f"replication-push-{first.replica_id}")
            handler = asyncio.current_task()
            assert handler is not None

            def writer_ended(task: asyncio.Task) -> None:
                # A write failed (the stream broke) or a bug: end the reads too.
                if not task.cancelled() and task.exception() is not None:
                    logger.info("pushing to replica %d stopped: %r", first.replica_id, task.exception())
                    handler.cancel()

            writer.add_done_callback(writer_ended)
            session.on_request(first)
            while True:
                request = await context.read()
                if request is grpc.aio.EOF:
                    return
                host.metrics.count_request("ReplicaFetch")
                session.on_request(request)
        finally:
            if writer is not None:
                writer.cancel()
            if session is not None:
                session.close()
                host.sessions.discard(session)
                logger.info("replica %d's replication stream ended", session.replica_id)
