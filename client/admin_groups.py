"""Consumer-group administration: list, describe (with lag), delete, reset offsets.

Owns `GroupAdmin`, the group methods INTERFACE.md lists on `Admin` (`list_groups`,
`describe_group`, `delete_group`, `reset_offsets`) and their typed results. `Admin`
(client/admin.py) inherits them and the transport, timeout and closing `GroupAdmin.__init__` sets
up. `GroupAdmin` also works alone.

- `list_groups` asks every broker (each coordinates the groups of the __consumer_offsets partitions
  it leads) and merges the answers;
- `describe_group` asks the group's coordinator, then the partitions' leaders for their log end
  offsets (the high watermark): lag = log end - committed; lag_seconds (the age of the oldest
  uncommitted record) is the coordinator's last measurement (README "Consumer lag in time"), 0 when
  the lag in records is 0 now;
- `reset_offsets` computes the new offsets (earliest, latest, an offset clamped to
  [log start, log end], or the first offset at/after a time) and, with `execute=True`, commits
  them as an admin commit (no member), which the coordinator refuses with NonEmptyGroupError while
  the group has active members (as kafka-consumer-groups --reset-offsets).

Imports: grpc (through the transport), `freshet.v1`, `freshet.client`.
Thread-safety: thread-safe (calls are independent; the helpers are thread-safe).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Sequence
from typing import Self

import grpc
from freshet.client._group import CoordinatorClient
from freshet.client._transport import Transport, client_transport, raise_for_detail, translate_rpc_error
from freshet.client.consumer import Consumer
from freshet.client.errors import FreshetError, GroupIdNotFoundError, NonEmptyGroupError
from freshet.client.structs import TopicPartition
from freshet.v1 import broker_pb2, group_pb2

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class GroupListing:
    group_id: str
    state: str
    member_count: int


@dataclasses.dataclass(frozen=True)
class MemberDescription:
    member_id: str
    instance_id: str | None
    client_id: str
    host: str
    member_epoch: int
    subscription: tuple[str, ...] | str
    """Topic names, or the regex the member subscribed with."""
    assignment: tuple[TopicPartition, ...]


@dataclasses.dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    committed_offset: int | None
    log_end_offset: int | None
    lag: int | None
    member_id: str | None
    """The member that owns the partition now, None when unowned."""
    lag_seconds: float | None = None
    """Age of the oldest uncommitted record, as the coordinator last measured it; 0 when caught up;
    None when nothing is committed or not measured yet."""


@dataclasses.dataclass(frozen=True)
class GroupDescription:
    group: str
    state: str
    generation: int
    """The group epoch (KIP-848's generation)."""
    assignor: str
    coordinator: str
    members: tuple[MemberDescription, ...]
    offsets: tuple[PartitionOffsets, ...]
    lag_alert_seconds: float | None = None
    """The group's lag.alert.seconds (its own, else the cluster's); None: no alert configured."""

    def is_lag_alerting(self, offset: PartitionOffsets) -> bool:
        """The partition's lag in time is above the group's lag.alert.seconds."""
        threshold = self.lag_alert_seconds
        return threshold is not None and offset.lag_seconds is not None and offset.lag_seconds > threshold

    def to_json(self) -> dict:
        """INTERFACE.md's `group describe --output json` shape."""
        return {
            "group": self.group,
            "state": self.state,
            "generation": self.generation,
            "assignor": self.assignor,
            "coordinator": self.coordinator,
            "lag_alert_seconds": self.lag_alert_seconds,
            "members": [
                {
                    "member_id": m.member_id,
                    "instance_id": m.instance_id,
                    "client_id": m.client_id,
                    "host": m.host,
                    "member_epoch": m.member_epoch,
                    "assignment": [{"topic": tp.topic, "partition": tp.partition} for tp in m.assignment],
                }
                for m in self.members
            ],
            "offsets": [
                {
                    "topic": o.topic,
                    "partition": o.partition,
                    "committed_offset": o.committed_offset,
                    "log_end_offset": o.log_end_offset,
                    "lag": o.lag,
                    "lag_seconds": o.lag_seconds,
                    "lag_alert": self.is_lag_alerting(o),
                    "member_id": o.member_id,
                }
                for o in self.offsets
            ],
        }


@dataclasses.dataclass(frozen=True)
class OffsetReset:
    topic: str
    partition: int
    current_offset: int | None
    new_offset: int


def _epoch_ms(moment: datetime.datetime | str) -> int:
    """Milliseconds since the epoch of a datetime or an ISO-8601 string (naive means UTC)."""
    if isinstance(moment, str):
        moment = datetime.datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    # Exact integer arithmetic: moment.timestamp() * 1000 can round 1.003 s down to 1002 ms.
    return (moment - _EPOCH) // datetime.timedelta(milliseconds=1)


class GroupAdmin:
    """Group administration over the Group service. Thread-safe."""

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "freshet-admin",
        request_timeout_ms: int = 30000,
        transport: Transport | None = None,
        **security,
    ) -> None:
        """Args as Admin's; `transport` replaces the channels to bootstrap_servers (see Admin),
        `security` are the security options (see Admin)."""
        self._transport, self._owns_transport = client_transport(
            bootstrap_servers, transport, client_id=client_id, security=security
        )
        self._timeout_s = request_timeout_ms / 1000

    def close(self) -> None:
        """Close every channel (of a transport this client built); later calls fail with
        BrokerUnavailableError."""
        if self._owns_transport:
            self._transport.close()

    def _offsets_reader(self) -> Consumer:
        """A Consumer over this client's transport, for log start/end offsets (it leaves the
        transport open when it closes)."""
        return Consumer(transport=self._transport, enable_auto_commit=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _coordinator(self, group_id: str) -> CoordinatorClient:
        if not isinstance(group_id, str) or not group_id:
            raise ValueError(f"group id must be a non-empty string, not {group_id!r}")
        return CoordinatorClient(self._transport, group_id, retry_backoff_s=0.1, request_timeout_s=self._timeout_s)

    def _broker_addresses(self) -> list[str]:
        last_error: FreshetError | None = None
        for address in self._transport.bootstrap_addresses:
            try:
                response = self._transport.stub(address).Metadata(broker_pb2.MetadataRequest(topics=[]), timeout=self._timeout_s)
            except grpc.RpcError as error:
                last_error = translate_rpc_error(error, address, "Metadata")
                continue
            return [f"{b.host}:{b.port}" for b in response.brokers]
        assert last_error is not None
        raise last_error

    # ---- operations --------------------------------------------------------------------------------

    def list_groups(self) -> list[GroupListing]:
        """Every group any live broker coordinates, sorted by id."""
        found: dict[str, GroupListing] = {}
        for address in self._broker_addresses():
            try:
                response = self._transport.group_stub(address).ListGroups(
                    group_pb2.ListGroupsRequest(), timeout=self._timeout_s
                )
            except grpc.RpcError as error:
                raise translate_rpc_error(error, address, "ListGroups") from None
            for group in response.groups:
                found[group.group_id] = GroupListing(group.group_id, group.state, group.member_count)
        return [found[name] for name in sorted(found)]

    def _describe_raw(self, group_id: str) -> tuple[group_pb2.DescribedGroup, str]:
        coordinator = self._coordinator(group_id)
        response = coordinator.call(
            "DescribeGroups", group_pb2.DescribeGroupsRequest(group_ids=[group_id]), self._timeout_s
        )
        described = response.groups[0]
        raise_for_detail(described.error, f"describe group {group_id!r}")
        return described, coordinator.address or ""

    def describe_group(self, group_id: str) -> GroupDescription:
        """Members, assignment, and per partition: committed offset, log end, lag and owner.

        Raises:
            GroupIdNotFoundError: no such group.
        """
        described, coordinator = self._describe_raw(group_id)
        owners: dict[TopicPartition, str] = {}
        members = []
        for member in described.members:
            assignment = tuple(TopicPartition(tp.topic, tp.partition) for tp in member.assignment)
            for tp in assignment:
                owners[tp] = member.member_id
            members.append(
                MemberDescription(
                    member.member_id,
                    member.instance_id or None,
                    member.client_id,
                    member.client_host,
                    member.member_epoch,
                    member.subscribed_topic_regex or tuple(member.subscribed_topic_names),
                    assignment,
                )
            )
        committed = {TopicPartition(o.topic, o.partition): o.offset for o in described.offsets}
        partitions = sorted(set(committed) | set(owners))
        ends = self._end_offsets(partitions)
        measured = {TopicPartition(m.topic, m.partition): m.lag_seconds for m in described.lag_times if m.is_known}
        offsets = []
        for tp in partitions:
            value = committed.get(tp)
            value = value if value is not None and value >= 0 else None
            end = ends.get(tp)
            lag = end - value if end is not None and value is not None else None
            # The coordinator measured on its last refresh; a partition caught up now is 0 now.
            if lag is not None and lag <= 0:
                lag_seconds = 0.0
            else:
                lag_seconds = measured.get(tp) if value is not None else None
            offsets.append(PartitionOffsets(tp.topic, tp.partition, value, end, lag, owners.get(tp), lag_seconds))
        return GroupDescription(
            described.group_id, described.state, described.group_epoch, described.assignor, coordinator,
            tuple(members), tuple(offsets), described.lag_alert_seconds or None,
        )

    def delete_group(self, group_id: str) -> None:
        """Delete a group without members (its committed offsets are deleted too).

        Raises:
            NonEmptyGroupError: the group has active members.
            GroupIdNotFoundError: no such group.
        """
        response = self._coordinator(group_id).call(
            "DeleteGroups", group_pb2.DeleteGroupsRequest(group_ids=[group_id]), self._timeout_s
        )
        raise_for_detail(response.results[0].error, f"delete group {group_id!r}")

    def reset_offsets(
        self,
        group_id: str,
        topic: str,
        *,
        to_earliest: bool = False,
        to_latest: bool = False,
        to_offset: int | None = None,
        to_datetime: datetime.datetime | str | None = None,
        partitions: Iterable[int] | None = None,
        execute: bool = False,
        shift_by: int | None = None,
    ) -> list[OffsetReset]:
        """Plan (and with execute=True, commit) new offsets of `topic`'s partitions (all, or
        `partitions`) for a group without active members. Exactly one of the to_* options or
        shift_by (the committed offset plus shift_by, which may be negative, as Kafka's
        --shift-by). Every new offset is clamped to the partition's [log start, log end].

        Raises:
            ValueError: not exactly one target, a negative offset, an unparseable datetime, or
                shift_by for a partition without a committed offset.
            NonEmptyGroupError: the group has active members.
            UnknownTopicError: the topic does not exist.
        """
        chosen = [to_earliest, to_latest, to_offset is not None, to_datetime is not None, shift_by is not None]
        if sum(bool(c) for c in chosen) != 1:
            raise ValueError("give exactly one of to_earliest, to_latest, to_offset, to_datetime, shift_by")
        if to_offset is not None and (not isinstance(to_offset, int) or to_offset < 0):
            raise ValueError(f"to_offset must be an int >= 0, not {to_offset!r}")
        timestamp_ms = None if to_datetime is None else _epoch_ms(to_datetime)
        try:
            described, _ = self._describe_raw(group_id)
        except GroupIdNotFoundError:
            described = None
        if described is not None and described.members:
            raise NonEmptyGroupError(
                f"group {group_id!r} has {len(described.members)} active member(s); stop its consumers first",
            )
        committed = {} if described is None else {(o.topic, o.partition): o.offset for o in described.offsets}
        tps, starts, ends, by_time = self._reset_bounds(topic, partitions, timestamp_ms)
        plan = []
        for tp in tps:
            current = committed.get((tp.topic, tp.partition))
            if current is not None and current < 0:
                current = None
            if shift_by is not None:
                if current is None:
                    raise ValueError(
                        f"cannot shift the offset of {tp.topic}-{tp.partition}: the group has no committed offset there"
                    )
                new = min(max(current + shift_by, starts[tp]), ends[tp])
            elif to_earliest:
                new = starts[tp]
            elif to_latest:
                new = ends[tp]
            elif to_offset is not None:
                new = min(max(to_offset, starts[tp]), ends[tp])
            else:
                found = by_time.get(tp)
                new = found.offset if found is not None else ends[tp]
            plan.append(OffsetReset(tp.topic, tp.partition, current, new))
        if execute:
            self._commit_reset(group_id, plan)
        return plan

    def _reset_bounds(self, topic: str, partitions: Iterable[int] | None, timestamp_ms: int | None):
        """For a reset of `topic` (every partition, or `partitions`): the partitions, their log
        start and end offsets, and the offsets at `timestamp_ms` (when given)."""
        with self._offsets_reader() as reader:
            reader._metadata.add_topics({topic})
            counts = reader._metadata.wait_for_topic(topic, self._timeout_s, min(self._timeout_s, 5.0))
            numbers = sorted(partitions) if partitions is not None else list(range(len(counts.partitions)))
            missing = [p for p in numbers if not 0 <= p < len(counts.partitions)]
            if missing:
                raise ValueError(f"topic {topic!r} has no partition {missing[0]} (it has {len(counts.partitions)})")
            tps = [TopicPartition(topic, p) for p in numbers]
            starts = reader.beginning_offsets(tps)
            ends = reader.end_offsets(tps)
            by_time = reader.offsets_for_times({tp: timestamp_ms for tp in tps}) if timestamp_ms is not None else {}
        return tps, starts, ends, by_time

    def _commit_reset(self, group_id: str, plan: list[OffsetReset]) -> None:
        """Commit a reset plan's new offsets as the group (no member: the group must be empty)."""
        request = group_pb2.OffsetCommitRequest(
            group_id=group_id,
            member_id="",
            member_epoch=-1,
            partitions=[
                group_pb2.OffsetCommitPartition(topic=r.topic, partition=r.partition, offset=r.new_offset, leader_epoch=-1)
                for r in plan
            ],
        )
        response = self._coordinator(group_id).call("OffsetCommit", request, self._timeout_s)
        for result in response.results:
            raise_for_detail(result.error, f"reset {result.topic}-{result.partition}")

    def _end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        with self._offsets_reader() as reader:
            try:
                return reader.end_offsets(partitions, timeout_ms=int(self._timeout_s * 1000))
            except FreshetError:
                # A deleted topic or an offline partition: report what can be known, per partition.
                found = {}
                for tp in partitions:
                    try:
                        found.update(reader.end_offsets([tp], timeout_ms=2000))
                    except FreshetError:
                        continue
                return found
