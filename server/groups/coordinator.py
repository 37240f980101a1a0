"""The group coordinator: consumer groups of the __consumer_offsets partitions this broker leads.

Owns, per led offsets partition: loading its groups from the log when this broker becomes its
leader (reading committed records, `group_records.GroupSnapshot`), serving the Group RPCs for those
groups (decisions are `group_state.ConsumerGroup`'s), persisting every change as records appended
with acks=all (a commit is answered only once its record is committed, so an acknowledged commit
survives the loss of any single broker), expiring member sessions, and dropping the groups when
leadership moves away (clients then get NOT_COORDINATOR and find the new coordinator, which loads
the same records).

The data plane is reached through one seam, `OffsetsLog` (the replica manager implements it on a
node; the client tests' fake broker over real partition logs): append a batch as leader and wait
for the high watermark, and read the committed records of a partition.

Requests and answers are `freshet.v1.group_pb2` messages; failures are domain errors
(`server.errors`, `server.group_state`) that `server/status.py` maps to the wire.

Classic groups (Kafka's JoinGroup/SyncGroup protocol, `server/groups/classic.py`) live in the same
per-partition group table, so one group id names one group whichever protocol it speaks: an empty
group of either kind becomes the other kind when a member of that kind arrives (offsets kept); a
group with members refuses the other kind (INCONSISTENT_GROUP_PROTOCOL). Their operations are
`ClassicCoordinator`'s (classic_coordinator.py), over this class's table and locks, exposed here
as `classic_join`, `classic_sync`, `classic_heartbeat` and `classic_leave`: join and sync park their
caller on a future until the barrier answers it (`Completions`); the expiry loop here ticks classic
groups too (sessions, rebalance timeouts); resigning a partition answers parked requests
NOT_COORDINATOR. Classic membership is not persisted (only offsets are): after a failover members
get UNKNOWN_MEMBER_ID and rejoin, which every Kafka client handles.

Imports: asyncio, freshet.v1, freshet.server. Thread-safety: not thread-safe; every method runs on
the node's event loop (the fake broker runs one loop per broker). One asyncio lock per group
orders its decisions and appends; a group's state is mutated only under it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from freshet.server import status
from freshet.server.errors import (
    CoordinatorLoadInProgressError,
    GroupIdNotFoundError,
    GroupMaxSizeReachedError,
    InconsistentGroupProtocolError,
    InvalidRequestError,
    NonEmptyGroupError,
    NotCoordinatorError,
    RequestTimedOutError,
    UnknownMemberError,
)
from freshet.server.groups import classic as group_classic
from freshet.server.groups import records as group_records
from freshet.server.groups import state as group_state
from freshet.server.groups.classic import ClassicGroup
from freshet.server.groups.classic_coordinator import ClassicCoordinator
from freshet.server.groups.lag import LagTracker, add_lag_times
from freshet.server.groups.state import ConsumerGroup, OffsetAndMetadata
from freshet.server.tasks import cancel_and_wait
from freshet.v1 import common_pb2, group_pb2

logger = logging.getLogger(__name__)



class OffsetsLog(Protocol):
    """The data plane as the coordinator needs it."""

    async def append(self, partition: int, leader_epoch: int, batch: bytes) -> None:
        """Append `batch` to __consumer_offsets-`partition` as its leader (in `leader_epoch`) and
        return once the high watermark passed it (acks=all). Raises a domain error otherwise
        (NOT_LEADER-style when leadership moved: the coordinator unloads the partition)."""

    def read_committed(self, partition: int) -> Iterable[bytes]:
        """Concatenated batches of the partition from its log start up to its high watermark.
        Blocking (the coordinator calls it on a worker thread)."""


@dataclasses.dataclass(frozen=True)
class CoordinatorConfig:
    """Limits and timings of the coordinator (Kafka's group.consumer.* names)."""

    heartbeat_interval_ms: int = 500
    """group.consumer.heartbeat.interval.ms. Kafka's default is 5000; 500 keeps a rebalance under
    a second or two (a partition moves after its old owner's and its new owner's next heartbeat)."""
    session_timeout_ms: int = 45000
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    max_group_size: int = 1000
    expiry_check_interval_ms: int = 100
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    """offsets.retention.minutes: an empty group whose last commit is older than this is deleted."""
    retention_check_interval_ms: int = 60000
    append_timeout_ms: int = 30000

    def __post_init__(self) -> None:
        assert 0 < self.heartbeat_interval_ms <= self.min_session_timeout_ms <= self.max_session_timeout_ms
        assert self.min_session_timeout_ms <= self.session_timeout_ms <= self.max_session_timeout_ms


@dataclasses.dataclass
class _Partition:
    leader_epoch: int
    is_loaded: bool = False
    groups: dict[str, ConsumerGroup | ClassicGroup] = dataclasses.field(default_factory=dict)


def _tp(message) -> tuple[str, int]:
    return (message.topic, message.partition)


class GroupCoordinator:
    """Serves the groups of led __consumer_offsets partitions. Event-loop only (see module docstring)."""

    def __init__(
        self,
        offsets_log: OffsetsLog,
        *,
        num_partitions: Callable[[], int],
        partition_counts: Callable[[], Mapping[str, int]],
        clock_ms: Callable[[], int],
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        config: CoordinatorConfig | None = None,
        new_member_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._log = offsets_log
        self._num_partitions = num_partitions
        self._partition_counts = partition_counts
        self._clock_ms = clock_ms
        self._wall_clock_ms = wall_clock_ms
        self._next_retention_check_ms = 0
        self.config = config or CoordinatorConfig()
        self._new_member_id = new_member_id
        self._partitions: dict[int, _Partition] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._expiry_task: asyncio.Task | None = None
        self._load_tasks: dict[int, asyncio.Task] = {}
        self.lag: LagTracker | None = None
        """Consumer lag in time of the groups here (server/groups/lag.py); the runtime sets it."""
        # Kafka's classic protocol on the same group table, under the names its callers use.
        self.classic = ClassicCoordinator(
            self.config, owning=self._owning, lock=self._lock, clock_ms=clock_ms, new_member_id=new_member_id
        )
        self.classic_join = self.classic.join
        self.classic_sync = self.classic.sync
        self.classic_heartbeat = self.classic.heartbeat
        self.classic_leave = self.classic.leave

    # ---- lifecycle and leadership ----------------------------------------------------------------

    async def start(self) -> None:
        self._expiry_task = asyncio.create_task(self._run_expiry(), name="group-expiry")

    async def close(self) -> None:
        tasks = [t for t in [self._expiry_task, *self._load_tasks.values()] if t is not None]
        await cancel_and_wait(*tasks)
        self._partitions.clear()

    def on_become_leader(self, partition: int, leader_epoch: int) -> None:
        """This broker now leads __consumer_offsets-`partition`: load its groups, then serve them."""
        current = self._partitions.get(partition)
        if current is not None and current.leader_epoch == leader_epoch:
            return
        self.on_resign(partition)
        self._partitions[partition] = _Partition(leader_epoch)
        self._load_tasks[partition] = asyncio.create_task(self._load(partition, leader_epoch), name=f"load-offsets-{partition}")

    def on_resign(self, partition: int) -> None:
        """This broker no longer leads the partition: forget its groups (clients re-find)."""
        task = self._load_tasks.pop(partition, None)
        if task is not None:
            task.cancel()
        state = self._partitions.get(partition)
        for group_id, group in (state.groups.items() if state is not None else ()):
            if isinstance(group, ClassicGroup):
                self.classic.release(group_id, group.fail_parked(group_classic.NOT_COORDINATOR))
        if self._partitions.pop(partition, None) is not None:
            logger.info("no longer coordinating the groups of __consumer_offsets-%d", partition)

    async def _load(self, partition: int, leader_epoch: int) -> None:
        loop = asyncio.get_running_loop()

        def read() -> group_records.GroupSnapshot:
            snapshot = group_records.GroupSnapshot()
            for chunk in self._log.read_committed(partition):
                for _offset, key, value in group_records.decode_records(chunk):
                    snapshot.apply(key, value)
            return snapshot

        try:
            snapshot = await loop.run_in_executor(None, read)
        except Exception:
            logger.exception("loading __consumer_offsets-%d failed; retrying", partition)
            await asyncio.sleep(0.5)
            self._load_tasks[partition] = asyncio.create_task(self._load(partition, leader_epoch))
            return
        state = self._partitions.get(partition)
        if state is None or state.leader_epoch != leader_epoch:
            return
        state.groups = snapshot.build(self._clock_ms())
        state.is_loaded = True
        self._load_tasks.pop(partition, None)
        logger.info("coordinating %d group(s) of __consumer_offsets-%d (epoch %d)", len(state.groups), partition, leader_epoch)

    def is_loaded(self, partition: int) -> bool:
        state = self._partitions.get(partition)
        return state is not None and state.is_loaded

    # ---- lookups ---------------------------------------------------------------------------------

    def partition_for(self, group_id: str) -> int:
        return group_records.coordinator_partition(group_id, self._num_partitions())

    def _owning(self, group_id: str) -> tuple[int, _Partition]:
        if not group_id:
            raise InvalidRequestError("group_id is empty")
        partition = self.partition_for(group_id)
        state = self._partitions.get(partition)
        if state is None:
            raise NotCoordinatorError(group_id, partition)
        if not state.is_loaded:
            raise CoordinatorLoadInProgressError(group_id, partition)
        return partition, state

    def _lock(self, group_id: str) -> asyncio.Lock:
        lock = self._locks.get(group_id)
        if lock is None:
            lock = self._locks[group_id] = asyncio.Lock()
        return lock

    def _topic_counts(self) -> dict[str, int]:
        return {t: n for t, n in self._partition_counts().items() if t != group_records.OFFSETS_TOPIC}

    async def _persist(self, partition: int, state: _Partition, records: list[tuple[bytes, bytes | None]]) -> None:
        batch = group_records.encode_records(records, self._wall_clock_ms())
        try:
            await asyncio.wait_for(
                self._log.append(partition, state.leader_epoch, bytes(batch)), self.config.append_timeout_ms / 1000
            )
        except TimeoutError:
            raise RequestTimedOutError("writing to __consumer_offsets", self.config.append_timeout_ms / 1000) from None

    # ---- membership ------------------------------------------------------------------------------

    async def heartbeat(self, request: group_pb2.ConsumerGroupHeartbeatRequest) -> group_pb2.ConsumerGroupHeartbeatResponse:
        group_id = request.group_id
        partition, state = self._owning(group_id)
        session_timeout_ms = request.session_timeout_ms or self.config.session_timeout_ms
        if not self.config.min_session_timeout_ms <= session_timeout_ms <= self.config.max_session_timeout_ms:
            raise InvalidRequestError(
                f"session_timeout_ms {session_timeout_ms} is outside [{self.config.min_session_timeout_ms}, "
                f"{self.config.max_session_timeout_ms}] (group.min/max.session.timeout.ms)"
            )
        async with self._lock(group_id):
            partition, state = self._owning(group_id)
            group = state.groups.get(group_id)
            if isinstance(group, ClassicGroup):
                if group.members or group.pending:
                    raise InconsistentGroupProtocolError(
                        f"group {group_id!r} is a classic group with members; a consumer-protocol member cannot join it"
                    )
                classic_group, group = group, ConsumerGroup(group_id)
                group.offsets = classic_group.offsets
            if group is None:
                if request.member_epoch != group_state.JOIN_EPOCH:
                    raise UnknownMemberError(f"group {group_id!r} has no member {request.member_id!r}; rejoin")
                group = ConsumerGroup(group_id)
            if (
                request.member_epoch == group_state.JOIN_EPOCH
                and request.member_id not in group.members
                and len(group.members) >= self.config.max_group_size
                and not any(m.instance_id == request.instance_id for m in group.members.values() if request.instance_id)
            ):
                raise GroupMaxSizeReachedError(
                    f"group {group_id!r} already has {self.config.max_group_size} members (group.consumer.max.size)"
                )
            is_subscription_sent = request.has_subscription or request.member_epoch == group_state.JOIN_EPOCH
            result = group.heartbeat(
                member_id=request.member_id,
                member_epoch=request.member_epoch,
                new_member_id=self._new_member_id(),
                partition_counts=self._topic_counts(),
                now_ms=self._clock_ms(),
                owned=[_tp(tp) for tp in request.owned_partitions] if request.has_owned_partitions else None,
                instance_id=request.instance_id,
                subscribed_topic_names=list(request.subscribed_topic_names) if is_subscription_sent else None,
                subscribed_topic_regex=request.subscribed_topic_regex if is_subscription_sent else None,
                assignor=request.server_assignor,
                rebalance_timeout_ms=request.rebalance_timeout_ms,
                session_timeout_ms=session_timeout_ms,
                client_id=request.client_id,
                client_host=request.client_host,
                rack_id=request.rack_id,
            )
            state.groups[group_id] = group
            if result.is_changed:
                await self._persist(partition, state, [(group_records.group_key(group_id), group_records.group_value(group))])
        response = group_pb2.ConsumerGroupHeartbeatResponse(
            member_id=result.member_id,
            member_epoch=result.member_epoch,
            heartbeat_interval_ms=self.config.heartbeat_interval_ms,
            session_timeout_ms=session_timeout_ms,
        )
        if result.assignment is not None:
            response.has_assignment = True
            response.assignment.extend(common_pb2.TopicPartition(topic=t, partition=p) for t, p in sorted(result.assignment))
        return response

    async def _run_expiry(self) -> None:
        while True:
            await asyncio.sleep(self.config.expiry_check_interval_ms / 1000)
            try:
                await self.expire_sessions()
                if self._clock_ms() >= self._next_retention_check_ms:
                    self._next_retention_check_ms = self._clock_ms() + self.config.retention_check_interval_ms
                    await self.expire_offsets()
            except Exception:
                logger.exception("expiring group sessions or offsets failed")

    async def expire_offsets(self) -> list[str]:
        """Delete empty groups whose newest commit is older than offsets_retention_ms (Kafka's
        offsets.retention.minutes, counted from the last commit). Returns the deleted group ids."""
        cutoff_ms = self._wall_clock_ms() - self.config.offsets_retention_ms
        deleted = []
        for state in list(self._partitions.values()):
            if not state.is_loaded:
                continue
            for group_id, group in sorted(state.groups.items()):
                if group.members or not group.offsets:
                    continue
                if max(value.commit_timestamp_ms for value in group.offsets.values()) > cutoff_ms:
                    continue
                try:
                    await self.delete_group(group_id)
                except Exception as error:  # it got members meanwhile, or leadership moved
                    logger.info("group %s: offsets not expired: %s", group_id, error)
                    continue
                logger.info("group %s: empty with no commit in the retention period; deleted its offsets", group_id)
                deleted.append(group_id)
        return deleted

    async def expire_sessions(self) -> None:
        """Remove members whose session ended, in every loaded group, and persist the change."""
        now_ms = self._clock_ms()
        counts = self._topic_counts()
        for partition, state in list(self._partitions.items()):
            if not state.is_loaded:
                continue
            for group_id, group in list(state.groups.items()):
                deadline = group.next_deadline_ms()
                is_due = deadline is not None and deadline <= now_ms
                is_topics = isinstance(group, ConsumerGroup) and bool(group.members) and group._topics_changed(counts)
                if not is_due and not is_topics:
                    continue
                if isinstance(group, ClassicGroup):
                    if is_due:
                        async with self._lock(group_id):
                            if self._partitions.get(partition) is not state:
                                break
                            expired, done = group.tick(self._clock_ms())
                            self.classic.release(group_id, done)
                        if expired:
                            logger.info("classic group %s: %s removed (session or rebalance timeout)", group_id, ", ".join(expired))
                    continue
                async with self._lock(group_id):
                    if self._partitions.get(partition) is not state:
                        break
                    expired = group.expire(self._clock_ms(), counts)
                    changed = group.on_topics_changed(counts)
                    if expired:
                        logger.info("group %s: session of %s ended; reassigning", group_id, ", ".join(expired))
                    if expired or changed:
                        try:
                            await self._persist(partition, state, [(group_records.group_key(group_id), group_records.group_value(group))])
                        except Exception as error:  # the next change writes the whole group again
                            logger.warning("group %s: could not persist membership: %s", group_id, error)

    # ---- offsets ---------------------------------------------------------------------------------

    async def commit(self, request: group_pb2.OffsetCommitRequest) -> group_pb2.OffsetCommitResponse:
        group_id = request.group_id
        for item in request.partitions:
            if item.offset < 0:
                raise InvalidRequestError(f"offset {item.offset} for {item.topic}-{item.partition} is negative")
        async with self._lock(group_id):
            partition, state = self._owning(group_id)
            group = state.groups.get(group_id)
            if group is None:
                if request.member_id:
                    raise UnknownMemberError(f"group {group_id!r} has no member {request.member_id!r}")
                group = ConsumerGroup(group_id)
            refused = group.validate_commit(request.member_id, request.member_epoch, [_tp(p) for p in request.partitions])
            now_ms = self._wall_clock_ms()
            accepted = {}
            records = []
            for item in request.partitions:
                tp = _tp(item)
                if tp in refused:
                    continue
                value = OffsetAndMetadata(item.offset, item.leader_epoch, item.metadata, now_ms)
                accepted[tp] = value
                records.append((group_records.offset_key(group_id, *tp), group_records.offset_value(value)))
            if records:
                await self._persist(partition, state, records)
                state.groups.setdefault(group_id, group)
                for tp, value in accepted.items():
                    group.commit(tp, value)
        response = group_pb2.OffsetCommitResponse()
        for item in request.partitions:
            tp = _tp(item)
            error = status.detail_for(refused[tp]) if tp in refused else status.ok_detail()
            response.results.add(topic=tp[0], partition=tp[1], error=error)
        return response

    async def fetch_offsets(self, request: group_pb2.OffsetFetchRequest) -> group_pb2.OffsetFetchResponse:
        _, state = self._owning(request.group_id)
        group = state.groups.get(request.group_id)
        offsets = group.offsets if group is not None else {}
        wanted = [_tp(tp) for tp in request.partitions] or sorted(offsets)
        response = group_pb2.OffsetFetchResponse()
        for tp in wanted:
            value = offsets.get(tp)
            response.results.add(
                topic=tp[0],
                partition=tp[1],
                offset=value.offset if value else -1,
                leader_epoch=value.leader_epoch if value else -1,
                metadata=value.metadata if value else "",
                error=status.ok_detail(),
            )
        return response

    # ---- administration --------------------------------------------------------------------------

    def loaded_groups(self) -> list[ConsumerGroup | ClassicGroup]:
        """Every group of the partitions led and loaded here (live objects: event loop only)."""
        return [group for state in self._partitions.values() if state.is_loaded for group in state.groups.values()]

    def list_groups(self) -> group_pb2.ListGroupsResponse:
        response = group_pb2.ListGroupsResponse()
        for state in self._partitions.values():
            if not state.is_loaded:
                continue
            for group_id, group in sorted(state.groups.items()):
                response.groups.add(group_id=group_id, state=group.state, member_count=len(group.members))
        return response

    def describe_group(self, group_id: str) -> group_pb2.DescribedGroup:
        _, state = self._owning(group_id)
        group = state.groups.get(group_id)
        if group is None:
            raise GroupIdNotFoundError(f"group {group_id!r} does not exist")
        if isinstance(group, ClassicGroup):
            return add_lag_times(self.classic.describe(group), self.lag)
        described = group_pb2.DescribedGroup(
            group_id=group_id,
            state=group.state,
            group_epoch=group.group_epoch,
            assignment_epoch=group.assignment_epoch,
            assignor=group.assignor,
            error=status.ok_detail(),
        )
        for member in sorted(group.members.values(), key=lambda m: m.member_id):
            described.members.add(
                member_id=member.member_id,
                instance_id=member.instance_id,
                client_id=member.client_id,
                client_host=member.client_host,
                member_epoch=member.member_epoch,
                subscribed_topic_names=member.subscribed_topic_names,
                subscribed_topic_regex=member.subscribed_topic_regex,
                assignment=[common_pb2.TopicPartition(topic=t, partition=p) for t, p in sorted(member.last_sent or ())],
                target_assignment=[
                    common_pb2.TopicPartition(topic=t, partition=p) for t, p in sorted(group.target.get(member.member_id, ()))
                ],
            )
        for tp, value in sorted(group.offsets.items()):
            described.offsets.add(
                topic=tp[0], partition=tp[1], offset=value.offset, leader_epoch=value.leader_epoch,
                metadata=value.metadata, error=status.ok_detail(),
            )
        return add_lag_times(described, self.lag)

    async def delete_offsets(self, group_id: str, partitions: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Delete the committed offsets of `partitions` (Kafka's OffsetDelete): tombstones for those
        committed. Partitions of a topic some member subscribes to are kept and returned (Kafka's
        GROUP_SUBSCRIBED_TO_TOPIC); asking for a partition without a committed offset is not an error.

        Raises:
            GroupIdNotFoundError: no group of that id. NotCoordinatorError and the like: as every call.
        """
        wanted = list(dict.fromkeys(partitions))
        async with self._lock(group_id):
            partition, state = self._owning(group_id)
            group = state.groups.get(group_id)
            if group is None:
                raise GroupIdNotFoundError(f"group {group_id!r} does not exist")
            topics = {topic for topic, _ in wanted}
            subscribed = set().union(*(member.subscribed(topics) for member in group.members.values()))
            refused = {tp for tp in wanted if tp[0] in subscribed}
            deleted = [tp for tp in wanted if tp not in refused and tp in group.offsets]
            if deleted:
                await self._persist(partition, state, [(group_records.offset_key(group_id, *tp), None) for tp in deleted])
                for tp in deleted:
                    group.offsets.pop(tp, None)
        return refused

    async def delete_group(self, group_id: str) -> None:
        """Delete an empty group: tombstones for its membership and every committed offset."""
        async with self._lock(group_id):
            partition, state = self._owning(group_id)
            group = state.groups.get(group_id)
            if group is None:
                raise GroupIdNotFoundError(f"group {group_id!r} does not exist")
            if group.members or (isinstance(group, ClassicGroup) and group.pending):
                raise NonEmptyGroupError(
                    f"group {group_id!r} has {len(group.members)} active member(s); stop them first"
                )
            records = [(group_records.group_key(group_id), None)]
            records += [(group_records.offset_key(group_id, *tp), None) for tp in sorted(group.offsets)]
            await self._persist(partition, state, records)
            del state.groups[group_id]
