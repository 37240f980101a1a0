"""Consumer groups on a node: the GroupCoordinator wired to the data plane, metadata and controller.

Owns
- `DataPlaneOffsetsLog`: the coordinator's `OffsetsLog` over `DataPlane.append_as_leader` (acks=all:
  a commit is answered once below the high watermark) and `DataPlane.read_committed`. Before
  loading, it waits until the partition's high watermark reaches the log end the new leader had
  when it took over: records the old leader acknowledged are in the new leader's log (it was in the
  ISR) but its own high watermark learns of them only when the followers report, so loading up to a
  lagging high watermark could miss an acknowledged commit. Data-plane errors become coordinator
  errors clients know how to handle (NOT_LEADER -> NOT_COORDINATOR: find the coordinator again;
  NOT_ENOUGH_REPLICAS -> COORDINATOR_NOT_AVAILABLE, as Kafka maps them for offset commits);
- `GroupRuntime`: the coordinator (its timings from the broker configs group.consumer.* and
  group.min/max.session.timeout.ms, read when the node starts), its leadership listener (became / stopped leading a
  __consumer_offsets partition), and `locate` for FindCoordinator: the leader of partition
  `coordinator_partition(group, partitions)` in this node's metadata image; the first lookup creates
  __consumer_offsets through the active controller (compacted, RF min(offsets.topic.replication.factor,
  live brokers), offsets.topic.num.partitions partitions, min.insync.replicas min(2, RF));
- the coordinator's `LagTracker` (server/groups/lag.py: consumer lag in time) and its seams: the
  committed offsets of the loaded groups, partition leaders from the image, RecordTimestamps asked
  locally when this broker leads the partition, else over the replica fetcher's channel to the
  leader (inter-node credentials), and each group's lag.alert.seconds from metadata.

Imports: asyncio, freshet.metadata (commands, controller, image), freshet.v1, freshet.server.
Thread-safety: event loop only, except `read_committed` (a worker thread; the log is thread-safe).
"""

from __future__ import annotations

import asyncio
import logging
import time

from freshet.metadata import commands
from freshet.metadata.controller import is_internal_topic
from freshet.metadata.image import NO_LEADER
from freshet.server import status
from freshet.server.cluster.channels import ControllerChannels, forward
from freshet.server.cluster.publisher import MetadataPublisher
from freshet.server.config import NodeConfig
from freshet.server.errors import (
    CoordinatorNotAvailableError,
    ForwardedError,
    NotCoordinatorError,
    PartitionRequestError,
    RequestTimedOutError,
)
from freshet.server.groups.coordinator import CoordinatorConfig, GroupCoordinator
from freshet.server.groups.lag import LagTracker, TopicLag
from freshet.server.groups.records import OFFSETS_TOPIC, coordinator_partition
from freshet.server.groups.service import GroupService
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.v1 import common_pb2, controller_pb2, group_pb2, metadata_pb2, replication_pb2

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
CREATE_TIMEOUT_S = 10.0
LOAD_WAIT_S = 30.0


class DataPlaneOffsetsLog:
    """OffsetsLog over the node's DataPlane (see the module docstring)."""

    def __init__(self, data_plane, append_timeout_ms: int = 30000) -> None:
        self._data_plane = data_plane
        self._append_timeout_ms = append_timeout_ms

    async def append(self, partition: int, leader_epoch: int, batch: bytes) -> None:
        try:
            await self._data_plane.append_as_leader(
                OFFSETS_TOPIC, partition, batch, acks="all", timeout_ms=self._append_timeout_ms
            )
        except PartitionRequestError as error:
            if error.error_code in (E.NOT_LEADER, E.FENCED_LEADER_EPOCH, E.UNKNOWN_TOPIC):
                raise NotCoordinatorError("", partition) from error
            if error.error_code in (E.NOT_ENOUGH_REPLICAS, E.NOT_ENOUGH_REPLICAS_AFTER_APPEND):
                raise CoordinatorNotAvailableError(
                    f"__consumer_offsets-{partition} has too few in-sync replicas to commit: {error.detail.message}"
                ) from error
            if error.error_code == E.REQUEST_TIMED_OUT:
                raise RequestTimedOutError("writing to __consumer_offsets", self._append_timeout_ms / 1000) from error
            raise

    def read_committed(self, partition: int):
        hosted = self._data_plane.partitions.get((OFFSETS_TOPIC, partition))
        if hosted is None:
            raise NotCoordinatorError("", partition)
        end_at_takeover = hosted.log.log_end_offset
        deadline = time.monotonic() + LOAD_WAIT_S
        while hosted.high_watermark < end_at_takeover and time.monotonic() < deadline:
            time.sleep(0.02)
        if hosted.high_watermark < end_at_takeover:
            raise CoordinatorNotAvailableError(
                f"__consumer_offsets-{partition}: high watermark {hosted.high_watermark} did not reach "
                f"{end_at_takeover} in {LOAD_WAIT_S:.0f} s"
            )
        offset = hosted.log.log_start_offset
        while True:
            records, next_offset, _high_watermark = self._data_plane.read_committed(OFFSETS_TOPIC, partition, offset)
            if not records:
                return
            yield records
            offset = next_offset


class GroupRuntime:
    """The coordinator of one broker node and its wiring. Event-loop only."""

    def __init__(
        self,
        config: NodeConfig,
        publisher: MetadataPublisher,
        data_plane,
        channels: ControllerChannels,
        controller_hint,
        authorizer: Authorizer | None = None,
    ) -> None:
        self._config = config
        self._publisher = publisher
        self._channels = channels
        self._controller_hint = controller_hint
        broker = self._broker_config()
        self.coordinator = GroupCoordinator(
            DataPlaneOffsetsLog(data_plane),
            num_partitions=self._num_partitions,
            partition_counts=self._partition_counts,
            clock_ms=lambda: int(time.monotonic() * 1000),
            config=CoordinatorConfig(
                # A heartbeat interval must leave room for a few heartbeats per session.
                heartbeat_interval_ms=max(1, min(broker.group_consumer_heartbeat_interval_ms,
                                                 broker.group_min_session_timeout_ms // 3)),
                min_session_timeout_ms=broker.group_min_session_timeout_ms,
                max_session_timeout_ms=max(broker.group_max_session_timeout_ms, broker.group_min_session_timeout_ms),
                session_timeout_ms=min(
                    max(broker.group_consumer_session_timeout_ms, broker.group_min_session_timeout_ms),
                    max(broker.group_max_session_timeout_ms, broker.group_min_session_timeout_ms),
                ),
                max_group_size=broker.group_consumer_max_size,
                offsets_retention_ms=broker.offsets_retention_minutes * 60000,
            ),
        )
        self.authorizer = authorizer or rules.allow_all()
        self.lag = LagTracker(
            committed=self._committed_offsets,
            leader_of=self._leader_of,
            ask=self._ask_record_timestamps,
            wall_clock_ms=lambda: int(time.time() * 1000),
            interval_ms=lambda: self._broker_config().group_lag_refresh_interval_ms,
            alert_seconds=self.lag_alert_seconds,
            ask_timeout_s=config.request_timeout_ms / 1000,
        )
        self.coordinator.lag = self.lag
        self.service = GroupService(self.coordinator, self.locate, config.node_id, self.authorizer)
        self._data_plane = data_plane
        self._create_lock = asyncio.Lock()

    def _broker_config(self):
        """This broker's effective config now (NodeConfig.effective_broker_config)."""
        return self._config.effective_broker_config(self._publisher.image)

    def register(self, server) -> None:
        self.service.register(server)

    async def start(self) -> None:
        await self.coordinator.start()
        self._data_plane.add_leadership_listener(self._on_leadership)
        self.lag.start()

    async def close(self) -> None:
        await self.lag.close()
        try:
            self._data_plane.remove_leadership_listener(self._on_leadership)
        except ValueError:
            pass
        await self.coordinator.close()

    # ---- consumer lag in time (LagTracker's seams) ---------------------------------------------

    def lag_alert_seconds(self, group_id: str) -> float:
        """The group's lag.alert.seconds: its own value, else the cluster's, else 0 (no alert)."""
        image = self._publisher.image
        return image.group_config(group_id).lag_alert_seconds

    def _committed_offsets(self) -> dict[str, dict[tuple[str, int], int]]:
        return {
            group.group_id: {tp: value.offset for tp, value in group.offsets.items()}
            for group in self.coordinator.loaded_groups()
        }

    def _leader_of(self, topic: str, partition: int) -> int:
        found = self._publisher.image.topic(topic)
        if found is None or not 0 <= partition < len(found.partitions):
            return NO_LEADER
        return found.partitions[partition].leader

    async def _ask_record_timestamps(
        self, leader: int, request: replication_pb2.RecordTimestampsRequest
    ) -> replication_pb2.RecordTimestampsResponse:
        if leader == self._config.node_id:
            return self._data_plane.record_timestamps(request)
        stub = self._data_plane.fetcher.stub(leader)
        if stub is None:
            # Not in this node's metadata (yet): every query answers that; the next refresh retries.
            unknown = status.detail(E.BROKER_NOT_AVAILABLE, f"broker {leader} is not in this node's metadata")
            return replication_pb2.RecordTimestampsResponse(results=[
                replication_pb2.RecordTimestampResult(
                    topic=q.topic, partition=q.partition, offset=q.offset, error=unknown, high_watermark=-1, timestamp=-1
                )
                for q in request.queries
            ])
        return await stub.RecordTimestamps(request, timeout=self._config.request_timeout_ms / 1000)

    def console_groups(self) -> list[dict]:
        """The groups coordinated here for the web console: group, state, generation, members, and
        lag (sum of high watermark - committed offset over committed partitions, from the replicas
        this node hosts; None when one of them is not hosted here), plus lag in time (`_lag_view`).
        Event loop only."""
        found = []
        summaries: dict[str, list[TopicLag]] = {}
        for summary in self.lag.topic_summaries():
            summaries.setdefault(summary.group, []).append(summary)
        for group in self.coordinator.loaded_groups():
            lag: int | None = 0
            for (topic, partition), value in group.offsets.items():
                hosted = self._data_plane.partitions.get((topic, partition))
                if hosted is None or lag is None:
                    lag = None
                    continue
                lag += max(hosted.high_watermark - value.offset, 0)
            found.append({
                "group": group.group_id,
                "state": group.state,
                "generation": group.group_epoch,
                "members": len(group.members),
                "lag": lag,
                **self._lag_view(group.group_id, summaries.get(group.group_id, [])),
            })
        return sorted(found, key=lambda item: item["group"])

    def _lag_view(self, group_id: str, summaries: list[TopicLag]) -> dict:
        """A group's lag in time for the console and /metrics: lag_alert_seconds (0: none),
        is_lag_alerting, lag_topics (per topic: worst lag_seconds, lag_records, is_alerting) and
        lag_partitions (per partition: committed offset, lag_seconds, lag_records; None unknown)."""
        return {
            "lag_alert_seconds": self.lag.alert_seconds(group_id),
            "is_lag_alerting": any(s.is_alerting for s in summaries),
            "lag_topics": [
                {"topic": s.topic, "lag_seconds": s.lag_seconds, "lag_records": s.lag_records, "is_alerting": s.is_alerting}
                for s in summaries
            ],
            "lag_partitions": [
                {"topic": topic, "partition": partition, "committed_offset": lag.committed_offset,
                 "lag_seconds": lag.lag_seconds, "lag_records": lag.lag_records}
                for (topic, partition), lag in sorted(self.lag.lag_of(group_id).items())
            ],
        }

    def _on_leadership(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        if topic != OFFSETS_TOPIC:
            return
        if is_leader:
            self.coordinator.on_become_leader(partition, leader_epoch)
        else:
            self.coordinator.on_resign(partition)

    def _num_partitions(self) -> int:
        topic = self._publisher.image.topic(OFFSETS_TOPIC)
        if topic is not None:
            return len(topic.partitions)
        return self._broker_config().offsets_topic_num_partitions

    def _partition_counts(self) -> dict[str, int]:
        image = self._publisher.image
        return {topic.name: len(topic.partitions) for topic in image.topics() if not is_internal_topic(topic.name)}

    async def _ensure_offsets_topic(self) -> None:
        async with self._create_lock:
            if self._publisher.image.topic(OFFSETS_TOPIC) is not None:
                return
            image = self._publisher.image
            broker = self._broker_config()
            replication_factor = max(1, min(broker.offsets_topic_replication_factor, len(image.active_broker_ids())))
            request = controller_pb2.CreateTopicsRequest(
                request_id=commands.new_request_id(),
                topics=[
                    controller_pb2.CreatableTopic(
                        name=OFFSETS_TOPIC,
                        num_partitions=broker.offsets_topic_num_partitions,
                        replication_factor=replication_factor,
                        configs=[
                            metadata_pb2.ConfigEntry(key="cleanup.policy", value="compact"),
                            # An acknowledged commit is on at least two replicas (when there are
                            # two), so it survives the loss of any single broker even after the
                            # ISR shrank to the leader; with fewer than two in-sync replicas,
                            # commits fail (COORDINATOR_NOT_AVAILABLE) rather than risk loss.
                            metadata_pb2.ConfigEntry(
                                key="min.insync.replicas", value=str(min(2, replication_factor))
                            ),
                        ],
                    )
                ],
            )
            deadline = time.monotonic() + CREATE_TIMEOUT_S
            try:
                response = await forward(
                    self._channels, "CreateTopics", request, deadline, self._controller_hint, skip_self=False
                )
            except ForwardedError as error:
                raise CoordinatorNotAvailableError(f"cannot create {OFFSETS_TOPIC}: {error}") from error
            result = response.results[0]
            if result.error.code not in (E.NONE, E.TOPIC_ALREADY_EXISTS):
                raise CoordinatorNotAvailableError(f"cannot create {OFFSETS_TOPIC}: {result.error.message}")
            logger.info("created %s: %d partitions, replication factor %d", OFFSETS_TOPIC,
                        broker.offsets_topic_num_partitions, replication_factor)
            while self._publisher.image.topic(OFFSETS_TOPIC) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)

    async def locate(self, group_id: str) -> group_pb2.Coordinator:
        """FindCoordinator for one group (see the module docstring)."""
        if not group_id:
            return group_pb2.Coordinator(group_id=group_id, error=status.detail(E.INVALID_GROUP_ID, "group_id is empty"))
        try:
            await self._ensure_offsets_topic()
        except CoordinatorNotAvailableError as error:
            return group_pb2.Coordinator(
                group_id=group_id, coordinator=common_pb2.BrokerEndpoint(node_id=-1), error=status.detail_for(error)
            )
        image = self._publisher.image
        topic = image.topic(OFFSETS_TOPIC)
        if topic is None:
            return group_pb2.Coordinator(
                group_id=group_id,
                coordinator=common_pb2.BrokerEndpoint(node_id=-1),
                error=status.detail(E.COORDINATOR_NOT_AVAILABLE, f"{OFFSETS_TOPIC} is not in this broker's metadata yet"),
            )
        partition = coordinator_partition(group_id, len(topic.partitions))
        leader = topic.partitions[partition].leader
        broker = image.brokers.get(leader) if leader != NO_LEADER else None
        if broker is None or broker.is_fenced:
            return group_pb2.Coordinator(
                group_id=group_id,
                coordinator=common_pb2.BrokerEndpoint(node_id=-1),
                offsets_partition=partition,
                error=status.detail(
                    E.COORDINATOR_NOT_AVAILABLE, f"{OFFSETS_TOPIC}-{partition} has no leader right now"
                ),
            )
        return group_pb2.Coordinator(
            group_id=group_id,
            coordinator=common_pb2.BrokerEndpoint(node_id=leader, host=broker.host, port=broker.port, rack=broker.rack),
            offsets_partition=partition,
            error=status.ok_detail(),
        )
