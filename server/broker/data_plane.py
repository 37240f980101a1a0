"""The broker's data plane (Kafka's ReplicaManager): one facade over the partition paths.

Wires, on the node's event loop, the parts that each own one job:

- `PartitionTable` (partition_table.py): the run-time partitions and the error details every
  path gives about them (NOT_LEADER with the leader hint, storage errors);
- `ReplicaRoles` (roles.py): become leader / follower / stopped as `HostedReplicas` reports
  metadata, and the leadership listeners of internal-topic owners;
- `ProducePath` (produce.py): produce requests and the purgatory for acks=all;
- `FetchPath` (fetch.py): fetch, fetch streams, ListOffsets, DescribeLogDirs, committed reads;
- `DeleteRecordsPath` (delete_records.py): DeleteRecords on leaders and its wait for the replicas;
- `AlterPartitionManager` (alter_partition.py): ISR shrink and expand through the controller;
- `Housekeeping` (housekeeping.py): flush.ms, high-watermark checkpoints, retention;
- `DiskWatch` (disk_watch.py): the log directory's free space, the full state and the disk reserve;
- `DurableFlusher` (durable_flusher.py): group-commit fsyncs of write.caching=false replicas on its
  thread; the durable offsets come back here (`_on_synced`);
- the replication streams: `ReplicaFetcherManager` (the follower side) and the leader's
  `FollowerSession`s, which reach back only through the `ReplicaHost` protocol this class
  implements (server/replication/host.py).

The group coordinator uses the internal API: `append_as_leader` (one batch through the produce
path, awaiting acks), `read_committed`, `add_leadership_listener`.

Imports: asyncio, freshet.metadata, freshet.server (broker, cluster, replication), freshet.storage,
wire types.
Thread-safety: not thread-safe; everything runs on the node's event loop except the
HostedReplicas listener, which only hops onto the loop, and the HTTP readers of plain counters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from freshet.metadata import configs
from freshet.metadata.errors import StaleBrokerEpochError
from freshet.metadata.image import MetadataImage
from freshet.server.broker.alter_partition import AlterPartitionManager
from freshet.server.broker.delete_records import DeleteRecordsPath, DeleteRecordsResult
from freshet.server.broker.disk_watch import DiskWatch
from freshet.server.broker.durable_flusher import DurableFlusher, SyncedOffsets
from freshet.server.broker.fetch import FetchPath
from freshet.server.broker.hosted_replicas import HostedReplicas
from freshet.server.broker.housekeeping import Housekeeping
from freshet.server.broker.partition_table import PartitionTable, TopicPartition
from freshet.server.broker.produce import ProducePath
from freshet.server.broker.producer_ids import ProducerIdManager
from freshet.server.broker.roles import LeadershipListener, ReplicaRoles
from freshet.server.cluster.channels import ControllerChannels
from freshet.server.cluster.publisher import MetadataPublisher
from freshet.server.config import NodeConfig
from freshet.server.metrics import BrokerMetrics
from freshet.server.replication.fetcher import ReplicaFetcherManager
from freshet.server.replication.partition import Partition
from freshet.server.replication.throttle import ReplicationThrottle
from freshet.storage.clock import Clock, SystemClock
from freshet.storage.errors import StorageError
from freshet.storage.log_manager import LogManager
from freshet.v1 import broker_pb2, common_pb2, replication_pb2


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
        clock: Clock | None = None,
        controller_contact: Callable[[], int | None] = lambda: 0,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.log_manager = log_manager
        self.metrics = metrics
        self.clock = clock or SystemClock()
        self._publisher = publisher
        self._hosted_replicas = hosted_replicas
        self._broker_config_key: tuple | None = None
        self._broker_config: configs.BrokerConfig = config.static_broker_config
        self.table = PartitionTable(config.node_id, publisher, metrics)
        self.partitions: dict[TopicPartition, Partition] = self.table.partitions
        self.sessions: set = set()                         # leader side: FollowerSession per stream
        self.replication_throttle = ReplicationThrottle(
            lambda: self.broker_config().replication_throttle_bytes_per_second, lambda: self.image, self.clock.monotonic_ms
        )
        self.fetcher = ReplicaFetcherManager(self, config.node_id, broker_epoch, channels.tls)
        self.producer_ids = ProducerIdManager(
            channels, config.node_id, broker_epoch, controller_hint, config.request_timeout_ms / 1000
        )
        self.roles = ReplicaRoles(self.table, publisher, self.fetcher, may_act, self.clock)
        self.housekeeping = Housekeeping(
            log_manager,
            self._high_watermarks,
            self.clock,
            config.node_id,
            lambda: self.broker_config().log_retention_check_interval_ms,
            config.log_cleaner_enable,
        )
        self.disk = DiskWatch(config.logs_dir, config.data_dir, self.broker_config, self.housekeeping.request_retention)
        self.produce_path = ProducePath(self.table, self.clock, self.disk)
        self.fetch_path = FetchPath(self.table, metrics)
        self.delete_records_path = DeleteRecordsPath(self.table, self._is_live_broker)
        self.alter_partition = AlterPartitionManager(
            self.table, channels, controller_hint, broker_epoch, self.broker_config, self.clock, controller_contact
        )
        self.roles.leader_metadata_applied = self.alter_partition.request_check
        self.flusher = DurableFlusher(self._on_synced, metrics)
        self.table.request_sync = self.flusher.mark
        self._loop: asyncio.AbstractEventLoop | None = None
        self._is_closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def image(self) -> MetadataImage:
        return self._publisher.image

    @property
    def is_active(self) -> bool:
        """Whether roles are applied (metadata caught up with this broker's registration)."""
        return self.roles.is_active

    @property
    def fetch_waiting(self) -> int:
        return self.fetch_path.fetch_waiting

    async def start(self) -> None:
        """Read the high-watermark checkpoint, follow role changes, start the periodic tasks.
        Call before HostedReplicas starts, so that no role change is missed."""
        loop = self._loop = asyncio.get_running_loop()
        self.table.checkpointed = await self.housekeeping.read_checkpoint(loop)
        self._hosted_replicas.add_role_listener(self.roles.on_replica_change_thread)
        self._publisher.add_listener(self.roles.on_image)
        self._publisher.add_listener(self.alter_partition.on_image)
        self.produce_path.start(loop)
        self.fetch_path.start(loop)
        self.alter_partition.start(loop)
        self.housekeeping.start(loop)
        self.disk.start(loop)
        self.flusher.start(loop)
        self.roles.start(loop)

    async def close(self) -> None:
        """Stop fetching and pushing, answer every waiter, checkpoint high watermarks. The logs are
        closed by the LogManager afterwards."""
        if self._is_closed:
            return
        self._is_closed = True
        self.roles.is_closed = True                       # no more role changes hop onto the loop
        if self._loop is None:
            # Never started (the node failed to start before the data plane did): nothing to stop.
            await self.housekeeping.close()
            return
        self._publisher.remove_listener(self.roles.on_image)
        self._publisher.remove_listener(self.alter_partition.on_image)
        await self.alter_partition.close()
        await self.fetcher.close()
        await self.producer_ids.close()
        self.roles.stop_all("the broker is stopping")
        await self.flusher.close()
        await self.disk.close()
        await self.housekeeping.close()

    def _high_watermarks(self) -> dict[TopicPartition, int]:
        return self.table.high_watermarks(self.roles.hosted)

    def broker_config(self) -> configs.BrokerConfig:
        """This broker's effective config (defaults < static < dynamic cluster < dynamic broker)."""
        image = self._publisher.image
        key = (image.cluster_configs, image.broker_configs.get(self.node_id))
        if key != self._broker_config_key:
            self._broker_config = self.config.effective_broker_config(image)
            self._broker_config_key = key
        return self._broker_config

    # -- client paths ----------------------------------------------------------------------------

    def produce(
        self,
        request: broker_pb2.ProduceRequest,
        on_done: Callable[[broker_pb2.ProduceResponse], None],
        refused: Mapping[str, str] | None = None,
    ):
        """See ProducePath.produce."""
        return self.produce_path.produce(request, on_done, refused)

    def produce_waiting(self) -> int:
        return self.produce_path.produce_waiting()

    async def fetch(self, request: broker_pb2.FetchRequest) -> broker_pb2.FetchResponse:
        """See FetchPath.fetch."""
        return await self.fetch_path.fetch(request)

    async def fetch_regions(self, request: broker_pb2.FetchRequest) -> tuple[broker_pb2.FetchResponse, list]:
        """See FetchPath.fetch_regions."""
        return await self.fetch_path.fetch_regions(request)

    async def fetch_stream(self, request: broker_pb2.FetchRequest, write: Callable) -> None:
        """See FetchPath.fetch_stream."""
        await self.fetch_path.fetch_stream(request, write)

    def list_offsets(self, request: broker_pb2.ListOffsetsRequest) -> broker_pb2.ListOffsetsResponse:
        return self.fetch_path.list_offsets(request)

    def describe_log_dirs(self, request: broker_pb2.DescribeLogDirsRequest) -> broker_pb2.DescribeLogDirsResponse:
        return self.fetch_path.describe_log_dirs(request)

    async def delete_records(self, wanted: list[tuple[str, int, int]], timeout_ms: int) -> list[DeleteRecordsResult]:
        """See DeleteRecordsPath.delete_records."""
        return await self.delete_records_path.delete_records(wanted, timeout_ms)

    def _is_live_broker(self, node_id: int) -> bool:
        """Registered and unfenced in this broker's metadata (Kafka's hasAliveBroker)."""
        broker = self.image.brokers.get(node_id)
        return broker is not None and not broker.is_fenced

    def describe_producers(self, topic: str, partition: int) -> tuple[common_pb2.ErrorDetail, list[tuple[int, int, int, int]]]:
        """See FetchPath.describe_producers."""
        return self.fetch_path.describe_producers(topic, partition)

    # -- internal API (the group coordinator and other internal-topic owners) -------------------

    def add_leadership_listener(self, listener: LeadershipListener) -> None:
        """Call listener(topic, partition, is_leader, leader_epoch) on the event loop whenever this
        broker becomes leader of a partition (is_leader True: its log holds every committed
        record; the high watermark may still be below the log end until the followers report) or
        stops leading it (False: it became a follower, or the replica was removed or the broker is
        stopping). Called for every topic, internal ones (`__consumer_offsets`) included; the
        listener filters. It must not block: schedule loading work as a task."""
        self.roles.add_leadership_listener(listener)

    def remove_leadership_listener(self, listener: LeadershipListener) -> None:
        self.roles.remove_leadership_listener(listener)

    async def append_as_leader(
        self, topic: str, partition: int, batch: bytes, acks: str | int = "all", timeout_ms: int = 30000
    ) -> int:
        """See ProducePath.append_as_leader."""
        return await self.produce_path.append_as_leader(topic, partition, batch, acks, timeout_ms, f"broker-{self.node_id}")

    def read_committed(self, topic: str, partition: int, offset: int, max_bytes: int = 1024 * 1024) -> tuple[bytes, int, int]:
        """See FetchPath.read_committed."""
        return self.fetch_path.read_committed(topic, partition, offset, max_bytes)

    # -- ReplicaHost (what the replication streams need of this broker) --------------------------

    def not_leader_detail(self, topic: str, partition_number: int) -> common_pb2.ErrorDetail:
        return self.table.not_leader_detail(topic, partition_number)

    def request_isr_check(self, partition: Partition) -> None:
        self.alter_partition.request_check(partition)

    def record_timestamps(self, request: replication_pb2.RecordTimestampsRequest) -> replication_pb2.RecordTimestampsResponse:
        """See FetchPath.record_timestamps."""
        return self.fetch_path.record_timestamps(request)

    def check_follower_broker(self, replica_id: int, broker_epoch: int) -> None:
        """A follower opening a replication stream: refuse a replaced incarnation (a newer
        registration of that node is in this broker's metadata).

        Raises:
            StaleBrokerEpochError: the image knows a newer registration.
        """
        broker = self.image.brokers.get(replica_id)
        if broker is not None and broker.broker_epoch > broker_epoch:
            raise StaleBrokerEpochError(replica_id, broker_epoch, broker.broker_epoch)

    def note_appended(self, size_bytes: int) -> None:
        """A follower append's bytes count against the log directory's free space until the next look."""
        self.disk.note_appended(size_bytes)

    def _on_synced(self, synced: SyncedOffsets) -> None:
        """A flusher round ended (on the loop): a leader's high watermark may move on its own
        durable offset; a follower acknowledges its durable offset to its leader."""
        for partition, durable_offset in synced:
            if self.partitions.get(partition.key) is not partition:
                continue                 # removed or replaced meanwhile
            if partition.is_leader:
                partition.leader_synced(durable_offset)
            else:
                self.fetcher.note_synced(partition.key)

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
        return [describe_partition(partition) for _, partition in sorted(list(self.partitions.items()))]


def describe_partition(partition: Partition) -> dict:
    """One partition's /status entry: role, epochs, offsets, and the leader's ISR view."""
    entry: dict = {
        "topic": partition.topic,
        "partition": partition.partition,
        "role": str(partition.role),
        "leader": partition.leader_id,
        "leader_epoch": partition.leader_epoch,
        "log_start_offset": None,
        "log_end_offset": None,
        "high_watermark": partition.high_watermark,
        "size_bytes": None,
        "durable_offset": None,
    }
    try:
        entry["log_start_offset"] = partition.log.log_start_offset
        entry["log_end_offset"] = partition.log.log_end_offset
        entry["size_bytes"] = partition.log.size_bytes
        entry["durable_offset"] = partition.log.durable_offset
    except StorageError:
        pass
    leader = partition.leader
    if leader is not None:
        entry["isr"] = list(leader.isr)
        entry["maximal_isr"] = list(leader.maximal_isr)
        entry["follower_log_end_offsets"] = {str(r): s.log_end_offset for r, s in leader.followers.items()}
    return entry
