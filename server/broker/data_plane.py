"""The broker's data plane: partition roles, produce, fetch, offsets, ISR maintenance, checkpoints.

Owns, on the node's event loop (Kafka's HostedReplicas + Partition + purgatories):

- roles: the `HostedReplicas` (server/broker/hosted_replicas.py) reports every hosted replica and its
  metadata state; the data plane applies them, but only once this broker's metadata has caught
  up to its registration (a restarted broker's stale image must not make it act as a leader):
  * become leader: stop fetching, record where the leader epoch starts
    (`assign_epoch_start_offset` at the log end), start a `LeaderState` whose high watermark is the
    replica's own (checkpointed or last known) and frozen until every ISR member has reported;
  * become follower: answer waiting acks=all requests NOT_LEADER with the new leader, and fetch
    from the new leader (truncation happens through diverging_epoch on the first reset position,
    never by high watermark alone);
  * removed (topic deleted, replica moved): stop fetching, fail waiters; the HostedReplicas
    deletes the log;
- produce (`produce`): per partition NOT_LEADER with the leader hint, exactly one batch (else
  INVALID_RECORD), NOT_ENOUGH_REPLICAS before appending for acks=all with a short ISR, then
  `append_as_leader` (CRC, size, sequences in storage), wake the follower sessions, answer acks=0/1
  at once and acks=all through the produce purgatory (server/replication/partition.py);
- fetch (`fetch`, `fetch_stream`) bounded by the high watermark, with long polls that wait on the
  partitions' high watermark futures (no polling), and `list_offsets`;
- ISR maintenance: a periodic pass (every replica.lag.time.max.ms / 4, between 50 ms and 2.5 s)
  plus an immediate pass for a partition whose follower just caught up; every decision is
  `LeaderState.alter_isr` (pure); the AlterPartition requests go to the active controller, at most
  one in flight per partition;
- the internal API for internal-topic owners such as the group coordinator:
  `append_as_leader` (one batch through the produce path, awaiting acks), `read_committed`
  (committed batches from the local log), `add_leadership_listener` (became / stopped being
  leader, with the leader epoch);
- high-watermark checkpoints (every 5 s and at close), retention (every 5 minutes) and the
  flush.ms policy (every second), run on a worker thread; the compaction cleaner thread.

Imports: asyncio, grpc, freshet.metadata (configs, image), freshet.server, freshet.storage, wire types.
Thread-safety: not thread-safe; everything runs on the node's event loop except the HostedReplicas
listener, which only hops onto the loop (call_soon_threadsafe), and the HTTP readers of plain
counters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable

import grpc
from freshet.metadata import commands, configs
from freshet.metadata.errors import StaleBrokerEpochError
from freshet.metadata.image import NO_LEADER, MetadataImage
from freshet.server import status
from freshet.server.broker.hosted_replicas import HostedReplica, HostedReplicas
from freshet.server.broker.producer_ids import ProducerIdManager
from freshet.server.cluster.channels import ControllerChannels, ForwardedError, forward
from freshet.server.cluster.publisher import MetadataPublisher
from freshet.server.config import NodeConfig
from freshet.server.errors import (
    InvalidRequestError,
    InvalidRequiredAcksError,
    NotControllerError,
    PartitionRequestError,
    RequestTimedOutError,
)
from freshet.server.metrics import BrokerMetrics, TopicCounters
from freshet.server.replication.core import AlterIsr, LeaderState
from freshet.server.replication.fetcher import ReplicaFetcherManager
from freshet.server.replication.partition import (
    FOLLOWER,
    LEADER,
    STOPPED,
    Partition,
    ProduceOperation,
    ProduceWaiter,
)
from freshet.storage.errors import OffsetOutOfRangeError, StorageError
from freshet.storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from freshet.storage.log_manager import LogManager
from freshet.storage.record_batch import LOG_OVERHEAD
from freshet.v1 import broker_pb2, common_pb2, controller_pb2

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
ACKS_ALL = -1
FETCH_MAX_BYTES_DEFAULT = 50 * 1024 * 1024       # Kafka's fetch.max.bytes
FETCH_MAX_BYTES_LIMIT = 32 * 1024 * 1024          # half the gRPC message limit
HIGH_WATERMARK_CHECKPOINT_S = 5.0                 # Kafka's replica.high.watermark.checkpoint.interval.ms
RETENTION_CHECK_S = 300.0                         # Kafka's log.retention.check.interval.ms
FLUSH_CHECK_S = 1.0
ISR_CHECK_MIN_S = 0.05
ISR_CHECK_MAX_S = 2.5
ALTER_PARTITION_TIMEOUT_S = 10.0
_OK = status.ok_detail()


class DataPlane:
    """The broker's data plane (see the module docstring). Not thread-safe (loop)."""

    def __init__(
        self,
        config: NodeConfig,
        log_manager: LogManager,
        publisher: MetadataPublisher,
        hosted_replicas: HostedReplicas,
        channels: ControllerChannels,
        controller_hint: Callable[[], int | None],
        broker_epoch: Callable[[], int],
        may_act: Callable[[MetadataImage], bool],
        metrics: BrokerMetrics,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.log_manager = log_manager
        self._publisher = publisher
        self._hosted_replicas = hosted_replicas
        self._channels = channels
        self._controller_hint = controller_hint
        self.broker_epoch = broker_epoch
        self._may_act = may_act
        self.metrics = metrics
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.sessions: set = set()                         # leader side: FollowerSession per stream
        self.fetcher = ReplicaFetcherManager(self, config.node_id, broker_epoch)
        self.producer_ids = ProducerIdManager(
            channels, config.node_id, broker_epoch, controller_hint, config.request_timeout_ms / 1000
        )
        self.is_active = False
        self.fetch_waiting = 0
        self._hosted: dict[tuple[str, int], HostedReplica] = {}
        self._checkpointed: dict[tuple[str, int], int] = {}
        self._topic_counters: dict[str, TopicCounters] = {}
        self._isr_due: set[tuple[str, int]] = set()
        self._isr_flush_scheduled = False
        self._isr_wake = asyncio.Event()
        self._broker_config_key: tuple | None = None
        self._broker_config: configs.BrokerConfig = config.static_broker_config
        self._tasks: list[asyncio.Task] = []
        self._alter_tasks: set[asyncio.Task] = set()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"data-plane-{config.node_id}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._is_closed = False
        self._leadership_listeners: list[Callable[[str, int, bool, int], None]] = []

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def image(self) -> MetadataImage:
        return self._publisher.image

    async def start(self) -> None:
        """Read the high-watermark checkpoint, follow role changes, start the periodic tasks.
        Call before the HostedReplicas starts, so that no role change is missed."""
        self._loop = asyncio.get_running_loop()
        try:
            self._checkpointed = await self._loop.run_in_executor(self._executor, self.log_manager.read_high_watermarks)
        except StorageError as error:
            logger.error("the high-watermark checkpoint is unreadable (%s): high watermarks start at 0", error)
            self._checkpointed = {}
        self._hosted_replicas.add_role_listener(self._on_replica_change_thread)
        self._publisher.add_listener(self._on_image)
        self.log_manager.start_cleaner()
        self._tasks = [
            self._loop.create_task(self._isr_loop(), name="isr-maintenance"),
            self._loop.create_task(self._housekeeping_loop(), name="data-plane-housekeeping"),
        ]
        self._maybe_activate()

    async def close(self) -> None:
        """Stop fetching and pushing, answer every waiter, checkpoint high watermarks. The logs are
        closed by the LogManager afterwards."""
        if self._is_closed:
            return
        self._is_closed = True
        if self._loop is None:
            # Never started (the node failed to start before the data plane did): nothing to stop.
            self._executor.shutdown(wait=True)
            return
        self._publisher.remove_listener(self._on_image)
        for task in self._tasks + list(self._alter_tasks):
            task.cancel()
        for task in self._tasks + list(self._alter_tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing
                pass
        await self.fetcher.close()
        await self.producer_ids.close()
        for partition in list(self.partitions.values()):
            self._stop(partition, "the broker is stopping")
        assert self._loop is not None
        try:
            await self._loop.run_in_executor(self._executor, self.log_manager.checkpoint_high_watermarks, self._high_watermarks())
        except (StorageError, OSError) as error:
            logger.error("could not checkpoint high watermarks at shutdown: %s", error)
        self._executor.shutdown(wait=True)

    # -- roles -----------------------------------------------------------------------------------

    def _on_replica_change_thread(self, old: HostedReplica | None, new: HostedReplica | None) -> None:
        """HostedReplicas worker thread: hop onto the loop, in order."""
        loop = self._loop
        if loop is None or self._is_closed:
            return
        try:
            loop.call_soon_threadsafe(self._on_replica_change, old, new)
        except RuntimeError:
            pass                                          # the loop closed: the node is stopping

    def _on_replica_change(self, old: HostedReplica | None, new: HostedReplica | None) -> None:
        if self._is_closed:
            return
        replica = new if new is not None else old
        assert replica is not None
        key = (replica.topic, replica.partition)
        if new is None:
            if self._hosted.get(key) is old:
                del self._hosted[key]
        else:
            self._hosted[key] = new
        if self.is_active:
            self._apply(key)
        else:
            self._maybe_activate()

    def _on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        if not self.is_active:
            self._maybe_activate()

    def _maybe_activate(self) -> None:
        if self.is_active or self._is_closed or not self._may_act(self._publisher.image):
            return
        self.is_active = True
        logger.info("metadata caught up with this broker's registration: applying %d replica roles", len(self._hosted))
        for key in sorted(self._hosted):
            self._apply(key)

    def _apply(self, key: tuple[str, int]) -> None:
        """Bring the partition's run-time state in line with the latest hosted replica state."""
        hosted = self._hosted.get(key)
        partition = self.partitions.get(key)
        if partition is not None and (hosted is None or partition.topic_id != hosted.topic_id or partition.log is not hosted.log):
            self._stop(partition, "the replica is no longer hosted here" if hosted is None else "the log was replaced")
            del self.partitions[key]
            partition = None
        if hosted is None:
            return
        if partition is None:
            high_watermark = self._checkpointed.pop(key, 0)
            try:
                partition = Partition(key[0], key[1], hosted.topic_id, hosted.log, high_watermark, self._counters(key[0]))
            except StorageError as error:
                logger.error("%s-%d: the log is unusable: %s", key[0], key[1], error)
                return
            self.partitions[key] = partition
        partition.min_insync_replicas = hosted.min_insync_replicas
        partition.partition_epoch = hosted.partition_epoch
        if hosted.role == LEADER:
            if partition.role == LEADER and partition.leader_epoch == hosted.leader_epoch:
                leader = partition.leader
                assert leader is not None
                moved = leader.set_min_insync_replicas(hosted.min_insync_replicas)
                if self.node_id in hosted.isr and leader.update_partition(hosted.replicas, hosted.isr, hosted.partition_epoch, _now_ms()):
                    moved = True
                if moved:
                    partition.set_high_watermark(leader.high_watermark)
            else:
                self._become_leader(partition, hosted)
        elif partition.role != FOLLOWER or (partition.leader_id, partition.leader_epoch) != (hosted.leader_id, hosted.leader_epoch):
            self._become_follower(partition, hosted)

    def _become_leader(self, partition: Partition, hosted: HostedReplica) -> None:
        self.fetcher.remove(partition.key)
        log = partition.log
        try:
            end_offset = log.log_end_offset
            if hosted.leader_epoch > log.latest_epoch:
                log.assign_epoch_start_offset(hosted.leader_epoch, end_offset)
        except StorageError as error:
            logger.error("%s-%d: cannot become leader, the log is unusable: %s", partition.topic, partition.partition, error)
            self._stop(partition, "the log is unusable")
            return
        now_ms = _now_ms()
        partition.clamp_high_watermark()
        leader = LeaderState(
            self.node_id,
            hosted.leader_epoch,
            hosted.partition_epoch,
            hosted.replicas,
            hosted.isr if self.node_id in hosted.isr else (*hosted.isr, self.node_id),
            end_offset,
            partition.high_watermark,
            end_offset,
            now_ms,
            hosted.min_insync_replicas,
        )
        was = partition.role
        partition.role = LEADER
        partition.leader = leader
        partition.leader_id = self.node_id
        partition.leader_epoch = hosted.leader_epoch
        logger.info(
            "%s-%d: leader at epoch %d (was %s), log end offset %d, high watermark %d, ISR %s",
            partition.topic, partition.partition, hosted.leader_epoch, was, end_offset, partition.high_watermark, list(hosted.isr),
        )
        partition.wake_all()
        if leader.on_append(end_offset, now_ms):
            partition.set_high_watermark(leader.high_watermark)
        self._notify_leadership(partition, True)

    def _become_follower(self, partition: Partition, hosted: HostedReplica) -> None:
        was = partition.role
        if was == LEADER:
            partition.leader = None
            partition.role = FOLLOWER
            partition.fail_produce_waiters(lambda p: self.not_leader_detail(p.topic, p.partition))
            self._notify_leadership(partition, False)
        partition.role = FOLLOWER
        partition.leader_id = hosted.leader_id
        partition.leader_epoch = hosted.leader_epoch
        partition.clamp_high_watermark()
        partition.wake_all()
        if hosted.leader_id == NO_LEADER:
            self.fetcher.remove(partition.key)
        else:
            self.fetcher.add(partition, hosted.leader_id, hosted.leader_epoch)
        logger.info(
            "%s-%d: follower of %d at epoch %d (was %s), log end offset %d",
            partition.topic, partition.partition, hosted.leader_id, hosted.leader_epoch, was,
            _safe_end_offset(partition),
        )

    def _stop(self, partition: Partition, reason: str) -> None:
        self.fetcher.remove(partition.key)
        was_leader = partition.role == LEADER
        if was_leader:
            partition.fail_produce_waiters(lambda p: self.not_leader_detail(p.topic, p.partition))
        partition.leader = None
        partition.role = STOPPED
        if was_leader:
            self._notify_leadership(partition, False)
        partition.wake_all()
        logger.info("%s-%d: stopped (%s)", partition.topic, partition.partition, reason)

    def _counters(self, topic: str) -> TopicCounters:
        counters = self._topic_counters.get(topic)
        if counters is None:
            counters = self._topic_counters[topic] = TopicCounters(self.metrics, topic)
        return counters

    def check_follower_broker(self, replica_id: int, broker_epoch: int) -> None:
        """A follower opening a replication stream: refuse a replaced incarnation (a newer
        registration of that node is in this broker's metadata).

        Raises:
            StaleBrokerEpochError: the image knows a newer registration.
        """
        broker = self.image.brokers.get(replica_id)
        if broker is not None and broker.broker_epoch > broker_epoch:
            raise StaleBrokerEpochError(replica_id, broker_epoch, broker.broker_epoch)

    # -- hints -----------------------------------------------------------------------------------

    def not_leader_detail(self, topic: str, partition_number: int) -> common_pb2.ErrorDetail:
        """NOT_LEADER with the leader this broker's metadata names (UNKNOWN_TOPIC, or
        LEADER_NOT_AVAILABLE when there is none or it is this broker taking over)."""
        image = self._publisher.image
        tp = common_pb2.TopicPartition(topic=topic, partition=partition_number)
        found = image.partition(topic, partition_number)
        if found is None:
            what = f"topic {topic!r} does not exist" if image.topic(topic) is None else f"topic {topic!r} has no partition {partition_number}"
            return status.detail(E.UNKNOWN_TOPIC, what, partition=tp)
        if found.leader == NO_LEADER:
            return status.detail(E.LEADER_NOT_AVAILABLE, f"{topic}-{partition_number} has no leader", partition=tp, leader_id=-1)
        if found.leader == self.node_id:
            return status.detail(
                E.LEADER_NOT_AVAILABLE,
                f"{topic}-{partition_number}: this broker (node {self.node_id}) is taking over leadership at epoch {found.leader_epoch}",
                partition=tp,
                leader_id=-1,
            )
        broker = image.brokers.get(found.leader)
        hints: dict = {"partition": tp, "leader_id": found.leader, "leader_epoch": found.leader_epoch}
        if broker is not None:
            hints["leader"] = common_pb2.BrokerEndpoint(node_id=found.leader, host=broker.host, port=broker.port, rack=broker.rack)
        return status.detail(E.NOT_LEADER, f"node {self.node_id} does not lead {topic}-{partition_number}; node {found.leader} does", **hints)

    def _storage_detail(self, partition: Partition, error: StorageError) -> common_pb2.ErrorDetail:
        """The ErrorDetail of a storage error on `partition` (server/status.py), naming the partition."""
        detail = status.detail_for(error, self.node_id)
        detail.partition.CopyFrom(partition.topic_partition)
        return detail

    def _leader_partition(self, topic: str, number: int) -> tuple[Partition | None, common_pb2.ErrorDetail | None]:
        partition = self.partitions.get((topic, number))
        if partition is not None and partition.role == LEADER:
            return partition, None
        return None, self.not_leader_detail(topic, number)

    # -- produce ---------------------------------------------------------------------------------

    def produce(
        self, request: broker_pb2.ProduceRequest, on_done: Callable[[broker_pb2.ProduceResponse], None]
    ) -> ProduceOperation:
        """Append a produce request's batches now (synchronously: requests on a stream are appended
        in stream order) and call on_done(response) when it is answered: at once for acks 0 and 1,
        when every partition is committed, failed or timed out for acks=all. on_done may be
        called before this returns.

        Raises:
            InvalidRequiredAcksError: acks is not 0, 1 or -1.
            InvalidRequestError: a negative timeout.
        """
        started = time.monotonic()
        acks = request.acks
        if acks not in (0, 1, ACKS_ALL):
            raise InvalidRequiredAcksError(acks)
        if request.timeout_ms < 0:
            raise InvalidRequestError(f"timeout_ms must be >= 0, not {request.timeout_ms}")
        response = broker_pb2.ProduceResponse(correlation_id=request.correlation_id)
        operation = ProduceOperation(response, on_done, started)
        operation.remaining = 1                           # held until every partition is appended
        seen: set[tuple[str, int]] = set()
        now_ms = int(started * 1000)
        for records in request.partitions:
            topic, number = records.topic, records.partition
            result = response.results.add(topic=topic, partition=number)
            key = (topic, number)
            if key in seen:
                result.error.CopyFrom(
                    status.detail(E.INVALID_REQUEST, f"{topic}-{number} appears more than once in one produce request",
                                  partition=common_pb2.TopicPartition(topic=topic, partition=number))
                )
                continue
            seen.add(key)
            partition, refusal = self._leader_partition(topic, number)
            if partition is None:
                result.error.CopyFrom(refusal)
                continue
            detail = self._append(partition, records.records, acks, result, operation, now_ms)
            if detail is not None:
                result.error.CopyFrom(detail)
                partition.counters.failed_produce.inc()
        operation.remaining -= 1
        if operation.remaining == 0:
            operation.finish()
        elif operation.timer is None:
            assert self._loop is not None
            operation.timer = self._loop.call_later(request.timeout_ms / 1000, operation.expire)
        return operation

    def _append(
        self,
        partition: Partition,
        data: bytes,
        acks: int,
        result: broker_pb2.PartitionProduceResult,
        operation: ProduceOperation,
        now_ms: int,
    ) -> common_pb2.ErrorDetail | None:
        """One partition of a produce request; an error detail, or None (answered or waiting)."""
        leader = partition.leader
        assert leader is not None
        tp = partition.topic_partition
        if len(data) >= LOG_OVERHEAD:
            first_size = int.from_bytes(data[8:12], "big", signed=True) + LOG_OVERHEAD
            if LOG_OVERHEAD <= first_size < len(data):
                return status.detail(
                    E.INVALID_RECORD,
                    f"{partition.topic}-{partition.partition}: {len(data)} bytes hold more than one record batch (the first "
                    f"is {first_size} bytes); a produce request carries exactly one batch per partition",
                    partition=tp,
                )
        if acks == ACKS_ALL and len(leader.isr) < partition.min_insync_replicas:
            return status.detail(
                E.NOT_ENOUGH_REPLICAS,
                f"{partition.topic}-{partition.partition}: the ISR {list(leader.isr)} has {len(leader.isr)} replicas, fewer than "
                f"min.insync.replicas={partition.min_insync_replicas}; nothing was appended",
                partition=tp,
            )
        try:
            info = partition.log.append_as_leader(bytearray(data), partition.leader_epoch)
        except StorageError as error:
            detail = self._storage_detail(partition, error)
            if detail.code == E.UNKNOWN_SERVER_ERROR:
                logger.error("%s-%d: append failed", partition.topic, partition.partition, exc_info=error)
            return detail
        result.error.CopyFrom(_OK)
        result.base_offset = info.first_offset
        result.log_append_time_ms = info.log_append_time_ms
        result.log_start_offset = info.log_start_offset
        if info.is_duplicate:
            result.is_duplicate = True
        else:
            counters = partition.counters
            counters.messages_in.inc(info.record_count)
            counters.bytes_in.inc(info.size_bytes)
            if leader.on_append(info.last_offset + 1, now_ms):
                partition.set_high_watermark(leader.high_watermark)
            for session in partition.sessions:
                session.on_append(partition)
        if acks != ACKS_ALL:
            return None
        required = info.last_offset + 1
        if partition.high_watermark >= required:
            if len(leader.isr) < partition.min_insync_replicas:
                return status.detail(
                    E.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                    f"{partition.topic}-{partition.partition}: appended, but the ISR has fewer than "
                    f"min.insync.replicas={partition.min_insync_replicas} replicas",
                    partition=tp,
                )
            return None
        waiter = ProduceWaiter(required, operation, result, partition)
        operation.waiting.append(waiter)
        operation.remaining += 1
        partition.add_produce_waiter(waiter)
        return None

    def produce_waiting(self) -> int:
        """Partitions of acks=all requests waiting in the produce purgatory."""
        return sum(partition.waiting_count for partition in self.partitions.values())

    # -- fetch -----------------------------------------------------------------------------------

    def _read(
        self, wanted: broker_pb2.PartitionFetch, offset: int, limit: int
    ) -> tuple[broker_pb2.PartitionFetchResult, int, bool]:
        """One partition of a consumer fetch: (result, record bytes, is_error). Reads below the
        high watermark only."""
        result = broker_pb2.PartitionFetchResult(topic=wanted.topic, partition=wanted.partition, next_fetch_offset=offset)
        partition, refusal = self._leader_partition(wanted.topic, wanted.partition)
        if partition is None:
            result.error.CopyFrom(refusal)
            return result, 0, True
        current_epoch = wanted.current_leader_epoch
        if current_epoch >= 0 and current_epoch != partition.leader_epoch:
            code = E.FENCED_LEADER_EPOCH if current_epoch < partition.leader_epoch else E.UNKNOWN_LEADER_EPOCH
            result.error.CopyFrom(
                status.detail(
                    code,
                    f"{partition.topic}-{partition.partition}: the fetch carries leader epoch {current_epoch}, this leader is at "
                    f"{partition.leader_epoch}",
                    partition=partition.topic_partition,
                    leader_id=self.node_id,
                    leader_epoch=partition.leader_epoch,
                )
            )
            return result, 0, True
        high_watermark = partition.high_watermark
        result.high_watermark = high_watermark
        try:
            read = partition.log.read(offset, limit, max_offset=high_watermark)
        except OffsetOutOfRangeError as error:
            result.log_start_offset = error.log_start_offset
            result.error.CopyFrom(
                status.detail(
                    E.OFFSET_OUT_OF_RANGE,
                    f"{partition.topic}-{partition.partition}: fetch offset {offset} is outside the readable range "
                    f"[{error.log_start_offset}, {high_watermark}] (log end offset {error.log_end_offset})",
                    partition=partition.topic_partition,
                    log_start_offset=error.log_start_offset,
                    log_end_offset=high_watermark,
                )
            )
            return result, 0, True
        except StorageError as error:
            result.error.CopyFrom(self._storage_detail(partition, error))
            return result, 0, True
        result.log_start_offset = read.log_start_offset
        records = read.records
        if records:
            result.records = records
            result.next_fetch_offset = read.next_offset
            partition.counters.bytes_out.inc(len(records))
        return result, len(records), False

    def _read_all(
        self, request: broker_pb2.FetchRequest, offsets: list[int], max_bytes: int
    ) -> tuple[list[broker_pb2.PartitionFetchResult], int, bool]:
        results = []
        total = 0
        has_error = False
        for wanted, offset in zip(request.partitions, offsets, strict=True):
            if total >= max_bytes:
                # KIP-74: the response is full; the rest answer empty (their high watermark only).
                result = broker_pb2.PartitionFetchResult(topic=wanted.topic, partition=wanted.partition, next_fetch_offset=offset)
                partition = self.partitions.get((wanted.topic, wanted.partition))
                if partition is not None:
                    result.high_watermark = partition.high_watermark
                results.append(result)
                continue
            limit = wanted.partition_max_bytes or max_bytes
            limit = min(limit, max_bytes - total)
            result, size, is_error = self._read(wanted, offset, limit)
            results.append(result)
            total += size
            has_error |= is_error
        return results, total, has_error

    @staticmethod
    def _check_fetch(request: broker_pb2.FetchRequest) -> int:
        if request.max_wait_ms < 0 or request.min_bytes < 0 or request.max_bytes < 0:
            raise InvalidRequestError("max_wait_ms, min_bytes and max_bytes must be >= 0")
        for wanted in request.partitions:
            if wanted.partition_max_bytes < 0:
                raise InvalidRequestError(f"{wanted.topic}-{wanted.partition}: partition_max_bytes must be >= 0")
        return min(request.max_bytes or FETCH_MAX_BYTES_DEFAULT, FETCH_MAX_BYTES_LIMIT)

    def _wait_future(self, keys) -> asyncio.Future:
        """A future resolved when the high watermark (or role) of any of `keys` changes."""
        assert self._loop is not None
        future = self._loop.create_future()
        for key in keys:
            partition = self.partitions.get(key)
            if partition is not None:
                partition.fetch_waiters.add(future)
        return future

    def _forget_future(self, keys, future: asyncio.Future) -> None:
        for key in keys:
            partition = self.partitions.get(key)
            if partition is not None:
                partition.fetch_waiters.discard(future)

    async def fetch(self, request: broker_pb2.FetchRequest) -> broker_pb2.FetchResponse:
        """Long-poll fetch: answer when min_bytes are there, a partition fails, or max_wait_ms
        passed; waits on the partitions' high watermarks, never polls.

        Raises:
            InvalidRequestError: negative sizes or wait.
        """
        max_bytes = self._check_fetch(request)
        offsets = [wanted.fetch_offset for wanted in request.partitions]
        results, total, has_error = self._read_all(request, offsets, max_bytes)
        if total >= request.min_bytes or has_error or request.max_wait_ms == 0:
            return broker_pb2.FetchResponse(results=results)
        assert self._loop is not None
        deadline = self._loop.time() + request.max_wait_ms / 1000
        keys = [(wanted.topic, wanted.partition) for wanted in request.partitions]
        self.fetch_waiting += 1
        try:
            while True:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                future = self._wait_future(keys)
                timer = self._loop.call_later(remaining, _resolve, future)
                try:
                    await future
                finally:
                    timer.cancel()
                    self._forget_future(keys, future)
                results, total, has_error = self._read_all(request, offsets, max_bytes)
                if total >= request.min_bytes or has_error:
                    break
        finally:
            self.fetch_waiting -= 1
        return broker_pb2.FetchResponse(results=results)

    async def fetch_stream(self, request: broker_pb2.FetchRequest, write: Callable) -> None:
        """Push committed data from the requested offsets as the high watermarks advance, each
        message after the previous one was accepted by flow control (`await write(message)`).
        A partition with an error gets one result carrying it and leaves the feed; the stream
        ends when no partition is left (or the client cancels).

        Raises:
            InvalidRequestError: negative sizes, or a partition asked twice.
        """
        max_bytes = self._check_fetch(request)
        feed: dict[tuple[str, int], tuple[broker_pb2.PartitionFetch, int]] = {}
        for wanted in request.partitions:
            key = (wanted.topic, wanted.partition)
            if key in feed:
                raise InvalidRequestError(f"{wanted.topic}-{wanted.partition} appears more than once")
            feed[key] = (wanted, wanted.fetch_offset)
        while feed:
            response = broker_pb2.FetchResponse()
            total = 0
            for key, (wanted, offset) in list(feed.items()):
                if total >= max_bytes:
                    break
                limit = min(wanted.partition_max_bytes or max_bytes, max_bytes - total)
                result, size, is_error = self._read(wanted, offset, limit)
                if is_error:
                    del feed[key]
                    response.results.append(result)
                elif size:
                    feed[key] = (wanted, result.next_fetch_offset)
                    response.results.append(result)
                    total += size
            if response.results:
                self.metrics.count_request("FetchStream")
                await write(response)
                continue
            future = self._wait_future(feed)
            self.fetch_waiting += 1
            try:
                await future
            finally:
                self.fetch_waiting -= 1
                self._forget_future(feed, future)

    def list_offsets(self, request: broker_pb2.ListOffsetsRequest) -> broker_pb2.ListOffsetsResponse:
        """Earliest (-2), latest (-1: the high watermark) or by timestamp (below the high
        watermark), from partition leaders only."""
        response = broker_pb2.ListOffsetsResponse()
        for query in request.partitions:
            result = response.results.add(topic=query.topic, partition=query.partition, offset=-1, timestamp=-1)
            partition, refusal = self._leader_partition(query.topic, query.partition)
            if partition is None:
                result.error.CopyFrom(refusal)
                continue
            result.leader_epoch = partition.leader_epoch
            timestamp = query.timestamp
            try:
                if timestamp == EARLIEST_TIMESTAMP:
                    result.offset = partition.log.log_start_offset
                elif timestamp == LATEST_TIMESTAMP:
                    result.offset = partition.high_watermark
                elif timestamp < 0:
                    result.error.CopyFrom(
                        status.detail(E.INVALID_REQUEST, f"timestamp {timestamp}: use -2 (earliest), -1 (latest) or a time in ms",
                                      partition=partition.topic_partition)
                    )
                    continue
                else:
                    found = partition.log.offsets_for_time(timestamp)
                    if found is not None and found.offset < partition.high_watermark:
                        result.offset = found.offset
                        result.timestamp = found.timestamp
            except StorageError as error:
                result.error.CopyFrom(self._storage_detail(partition, error))
                continue
            result.error.CopyFrom(_OK)
        return response

    def describe_log_dirs(self, request: broker_pb2.DescribeLogDirsRequest) -> broker_pb2.DescribeLogDirsResponse:
        """This broker's replicas as its own logs see them (Kafka's DescribeLogDirs): size, log
        start and end, high watermark, role. Empty request: every hosted replica."""
        response = broker_pb2.DescribeLogDirsResponse(broker_id=self.node_id)
        if request.partitions:
            wanted = [(tp.topic, tp.partition) for tp in request.partitions]
        else:
            wanted = sorted(self.partitions)
        for key in wanted:
            info = response.replicas.add(topic=key[0], partition=key[1], log_start_offset=-1, log_end_offset=-1,
                                         high_watermark=-1, leader_epoch=-1)
            partition = self.partitions.get(key)
            if partition is None:
                tp = common_pb2.TopicPartition(topic=key[0], partition=key[1])
                info.error.CopyFrom(status.detail(E.UNKNOWN_TOPIC, f"broker {self.node_id} hosts no replica of {key[0]}-{key[1]}",
                                                  partition=tp))
                continue
            info.is_leader = partition.is_leader
            info.leader_epoch = partition.leader_epoch
            info.high_watermark = partition.high_watermark
            try:
                info.log_start_offset = partition.log.log_start_offset
                info.log_end_offset = partition.log.log_end_offset
                info.size_bytes = partition.log.size_bytes
            except StorageError as error:
                info.error.CopyFrom(self._storage_detail(partition, error))
                continue
            info.error.CopyFrom(_OK)
        return response

    # -- internal API (the group coordinator and other internal-topic owners) -------------------

    def add_leadership_listener(self, listener: Callable[[str, int, bool, int], None]) -> None:
        """Call listener(topic, partition, is_leader, leader_epoch) on the event loop whenever this
        broker becomes leader of a partition (is_leader True: its log holds every committed
        record; the high watermark may still be below the log end until the followers report) or
        stops leading it (False: it became a follower, or the replica was removed or the broker is
        stopping). Called for every topic, internal ones (`__consumer_offsets`) included; the
        listener filters. It must not block: schedule loading work as a task."""
        self._leadership_listeners.append(listener)

    def remove_leadership_listener(self, listener: Callable[[str, int, bool, int], None]) -> None:
        self._leadership_listeners.remove(listener)

    def _notify_leadership(self, partition: Partition, is_leader: bool) -> None:
        for listener in list(self._leadership_listeners):
            try:
                listener(partition.topic, partition.partition, is_leader, partition.leader_epoch)
            except Exception:
                logger.exception("a leadership listener failed for %s-%d", partition.topic, partition.partition)

    async def append_as_leader(
        self, topic: str, partition: int, batch: bytes, acks: str | int = "all", timeout_ms: int = 30000
    ) -> int:
        """Append one record batch to a partition this broker leads, through the same path as a
        client's produce (validation, min.insync.replicas, purgatory), and return its base offset
        once `acks` is satisfied ("all"/-1: committed, i.e. below the high watermark; 1: appended
        here; 0: appended, returns -1 like a client's acks=0).

        Raises:
            PartitionRequestError: the partition's error (NOT_LEADER with the leader hint,
                NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT with the outcome unknown, CORRUPT_RECORD, ...).
            InvalidRequiredAcksError: acks is not "all", -1, 0 or 1.
        """
        acks_value = ACKS_ALL if acks in ("all", ACKS_ALL, "-1") else int(acks)
        request = broker_pb2.ProduceRequest(
            acks=acks_value, timeout_ms=timeout_ms, client_id=f"broker-{self.node_id}",
            partitions=[broker_pb2.PartitionRecords(topic=topic, partition=partition, records=bytes(batch))],
        )
        assert self._loop is not None
        answered: asyncio.Future = self._loop.create_future()
        self.produce(request, lambda response: answered.done() or answered.set_result(response))
        result = (await answered).results[0]
        if result.error.code != E.NONE:
            raise PartitionRequestError(result.error.code, result.error)
        return result.base_offset if acks_value != 0 else -1

    def read_committed(self, topic: str, partition: int, offset: int, max_bytes: int = 1024 * 1024) -> tuple[bytes, int, int]:
        """Committed record batches of a partition hosted here (leader or follower), from the
        local log: whole batches from the one holding `offset`, below this replica's high
        watermark, at most `max_bytes` (at least one batch). Returns (records, next offset,
        high watermark); records are empty at the high watermark.

        Raises:
            PartitionRequestError: the partition is not hosted here (NOT_LEADER with the hint) or
                `offset` is outside [log start, high watermark] (OFFSET_OUT_OF_RANGE).
        """
        hosted = self.partitions.get((topic, partition))
        if hosted is None or hosted.role == STOPPED:
            detail = self.not_leader_detail(topic, partition)
            raise PartitionRequestError(detail.code, detail)
        high_watermark = hosted.high_watermark
        try:
            read = hosted.log.read(offset, max_bytes, max_offset=high_watermark)
        except StorageError as error:
            detail = self._storage_detail(hosted, error)
            raise PartitionRequestError(detail.code, detail) from error
        if not read.records:
            return b"", offset, high_watermark
        return bytes(read.records), read.next_offset, high_watermark

    # -- ISR maintenance -------------------------------------------------------------------------

    def broker_config(self) -> configs.BrokerConfig:
        """This broker's effective config (defaults < static < dynamic cluster < dynamic broker)."""
        image = self._publisher.image
        key = (image.cluster_configs, image.broker_configs.get(self.node_id))
        if key != self._broker_config_key:
            self._broker_config = self.config.effective_broker_config(image)
            self._broker_config_key = key
        return self._broker_config

    def _is_eligible(self, replica: int) -> bool:
        broker = self._publisher.image.brokers.get(replica)
        return broker is not None and not broker.is_fenced and not broker.in_controlled_shutdown

    def request_isr_check(self, partition: Partition) -> None:
        """A follower of `partition` may have caught up: check its ISR soon (coalesced)."""
        leader = partition.leader
        if leader is None or leader.pending is not None or leader.awaiting_metadata:
            return
        self._isr_due.add(partition.key)
        if not self._isr_flush_scheduled:
            self._isr_flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush_isr_checks)

    def _flush_isr_checks(self) -> None:
        self._isr_flush_scheduled = False
        keys, self._isr_due = self._isr_due, set()
        self._alter_isr([self.partitions[key] for key in keys if key in self.partitions])

    async def _isr_loop(self) -> None:
        while True:
            lag_max_ms = self.broker_config().replica_lag_time_max_ms
            await asyncio.sleep(min(max(lag_max_ms / 4000, ISR_CHECK_MIN_S), ISR_CHECK_MAX_S))
            try:
                self._alter_isr(list(self.partitions.values()))
            except Exception:
                logger.exception("ISR maintenance failed")

    def _alter_isr(self, partitions: list[Partition]) -> None:
        if self._is_closed:
            return
        lag_max_ms = self.broker_config().replica_lag_time_max_ms
        now_ms = _now_ms()
        actions: list[tuple[Partition, LeaderState, AlterIsr]] = []
        for partition in partitions:
            leader = partition.leader
            if leader is None:
                continue
            action = leader.alter_isr(now_ms, lag_max_ms, self._is_eligible)
            if action is not None:
                actions.append((partition, leader, action))
        if not actions:
            return
        assert self._loop is not None
        task = self._loop.create_task(self._send_alter_partition(actions), name="alter-partition")
        self._alter_tasks.add(task)
        task.add_done_callback(self._alter_tasks.discard)

    async def _send_alter_partition(self, actions: list[tuple[Partition, LeaderState, AlterIsr]]) -> None:
        request = controller_pb2.AlterPartitionRequest(
            request_id=commands.new_request_id(), broker_id=self.node_id, broker_epoch=self.broker_epoch()
        )
        for partition, leader, action in actions:
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
        try:
            response = await forward(
                self._channels,
                "AlterPartition",
                request,
                time.monotonic() + ALTER_PARTITION_TIMEOUT_S,
                self._controller_hint,
                skip_self=False,
            )
        except (ForwardedError, NotControllerError, RequestTimedOutError, grpc.aio.AioRpcError) as error:
            logger.warning("AlterPartition for %d partitions got no answer: %s", len(actions), error)
            for _, leader, action in actions:
                leader.on_alter_isr_lost(action)
            self.metrics.alter_partition_failures.inc(len(actions))
            return
        results = {(bytes(result.topic_id), result.partition): result for result in response.results}
        now_ms = _now_ms()
        for partition, leader, action in actions:
            result = results.get((partition.topic_id, partition.partition))
            if result is None:
                leader.on_alter_isr_lost(action)
                continue
            code = result.error.code
            state = result.partition_state
            moved = leader.on_alter_isr_result(action, now_ms, code, state.partition_epoch, state.isr, state.leader_epoch)
            if code == E.NONE:
                if action.removed:
                    self.metrics.isr_shrinks.inc()
                if action.added:
                    self.metrics.isr_expands.inc()
                logger.info(
                    "%s-%d: ISR is now %s (partition epoch %d)",
                    partition.topic, partition.partition, list(state.isr), state.partition_epoch,
                )
            else:
                self.metrics.alter_partition_failures.inc()
                logger.info(
                    "%s-%d: the controller refused the ISR change: %s %s",
                    partition.topic, partition.partition, common_pb2.ErrorCode.Name(code), result.error.message,
                )
            if moved and partition.leader is leader:
                partition.set_high_watermark(leader.high_watermark)

    # -- checkpoints and retention ---------------------------------------------------------------

    def _high_watermarks(self) -> dict[tuple[str, int], int]:
        """The high watermark of every hosted replica (checkpointed values for replicas not applied yet)."""
        values = {key: offset for key, offset in self._checkpointed.items() if key in self._hosted}
        for key, partition in self.partitions.items():
            values[key] = partition.high_watermark
        return values

    async def _housekeeping_loop(self) -> None:
        assert self._loop is not None
        loop = self._loop
        next_checkpoint = loop.time() + HIGH_WATERMARK_CHECKPOINT_S
        next_retention = loop.time() + RETENTION_CHECK_S
        while True:
            await asyncio.sleep(FLUSH_CHECK_S)
            try:
                await loop.run_in_executor(self._executor, self.log_manager.flush_dirty_logs)
                now = loop.time()
                if now >= next_checkpoint:
                    next_checkpoint = now + HIGH_WATERMARK_CHECKPOINT_S
                    await loop.run_in_executor(self._executor, self.log_manager.checkpoint_high_watermarks, self._high_watermarks())
                if now >= next_retention:
                    next_retention = now + RETENTION_CHECK_S
                    deleted = await loop.run_in_executor(
                        self._executor, self.log_manager.run_retention, int(time.time() * 1000), self._high_watermarks()
                    )
                    if deleted:
                        logger.info("retention deleted %d segments", deleted)
            except (StorageError, OSError) as error:
                logger.error("data-plane housekeeping failed: %s", error)

    # -- views (HTTP thread: plain reads) --------------------------------------------------------

    def under_replicated_partitions(self) -> int:
        """Partitions this broker leads whose ISR is smaller than the replica set (Kafka's)."""
        count = 0
        for partition in list(self.partitions.values()):
            leader = partition.leader
            if leader is not None and len(leader.isr) < len(leader.replicas):
                count += 1
        return count

    def describe(self) -> list[dict]:
        """Per hosted partition: role, epochs, offsets, ISR (for /status)."""
        out = []
        for key, partition in sorted(self.partitions.items()):
            leader = partition.leader
            entry = {
                "topic": key[0],
                "partition": key[1],
                "role": partition.role,
                "leader": partition.leader_id,
                "leader_epoch": partition.leader_epoch,
                "log_start_offset": None,
                "log_end_offset": None,
                "high_watermark": partition.high_watermark,
            }
            try:
                entry["log_start_offset"] = partition.log.log_start_offset
                entry["log_end_offset"] = partition.log.log_end_offset
            except StorageError:
                pass
            if leader is not None:
                entry["isr"] = list(leader.isr)
                entry["maximal_isr"] = list(leader.maximal_isr)
                entry["follower_log_end_offsets"] = {str(r): s.log_end_offset for r, s in leader.followers.items()}
            out.append(entry)
        return out


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _safe_end_offset(partition: Partition) -> int:
    try:
        return partition.log.log_end_offset
    except StorageError:
        return -1
