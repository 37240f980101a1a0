"""Kafka's classic group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) on the
coordinator's group table.

Owns the classic half of the group coordinator: finding or creating a classic group in the table
of a led __consumer_offsets partition (an empty consumer-protocol group becomes one, keeping its
offsets; one with members refuses: INCONSISTENT_GROUP_PROTOCOL), parking JoinGroup and SyncGroup
callers on futures until the rebalance barrier answers them (`ClassicGroup`'s decisions return
`Completions`; `release` sets the futures), heartbeats, leaves, and describing a classic group.

`GroupCoordinator` (coordinator.py) owns the table, the per-group locks, loading, expiry and
offsets; it hands this class its `owning` and `lock` and exposes the operations under their
public names (`classic_join`, `classic_sync`, `classic_heartbeat`, `classic_leave`). Classic
membership is not persisted (only offsets are, by the coordinator).

Imports: asyncio, freshet.v1, freshet.server (status, errors, groups.classic, groups.state); the
coordinator module only for type checking (it imports this one).
Thread-safety: not thread-safe; every method runs on the node's event loop, and a group's state is
mutated only under the coordinator's lock for that group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from freshet.server import status
from freshet.server.errors import InconsistentGroupProtocolError
from freshet.server.groups import classic as group_classic
from freshet.server.groups.classic import ClassicGroup
from freshet.server.groups.state import ConsumerGroup
from freshet.v1 import common_pb2, group_pb2

if TYPE_CHECKING:
    from freshet.server.groups.coordinator import CoordinatorConfig

E = common_pb2.ErrorCode


class _GroupTable(Protocol):
    """A led offsets partition's groups, as the coordinator keeps them."""

    groups: dict[str, ConsumerGroup | ClassicGroup]


class ClassicCoordinator:
    """The classic protocol's operations on the coordinator's groups. Event-loop only (see the
    module docstring)."""

    def __init__(
        self,
        config: CoordinatorConfig,
        *,
        owning: Callable[[str], tuple[int, _GroupTable]],
        lock: Callable[[str], asyncio.Lock],
        clock_ms: Callable[[], int],
        new_member_id: Callable[[], str],
    ) -> None:
        """`owning` and `lock` are the coordinator's: the table of the group's partition (raising
        NotCoordinatorError and the like) and the group's lock."""
        self.config = config
        self._owning = owning
        self._lock = lock
        self._clock_ms = clock_ms
        self._new_member_id = new_member_id
        self._join_waiters: dict[tuple[str, str], asyncio.Future] = {}
        self._sync_waiters: dict[tuple[str, str], asyncio.Future] = {}

    def _group(self, state: _GroupTable, group_id: str, *, create: bool) -> ClassicGroup | None:
        """The classic group `group_id` (an empty consumer group becomes one, keeping its offsets).

        Raises:
            InconsistentGroupProtocolError: a consumer-protocol (KIP-848) group with members.
        """
        group = state.groups.get(group_id)
        if isinstance(group, ClassicGroup):
            return group
        if group is not None and group.members:
            raise InconsistentGroupProtocolError(
                f"group {group_id!r} is a consumer-protocol group with members; a classic member cannot join it"
            )
        if group is None and not create:
            return None
        classic_group = ClassicGroup(group_id)
        if group is not None:
            classic_group.offsets = group.offsets
        if create:
            state.groups[group_id] = classic_group
        return classic_group

    def release(self, group_id: str, done: group_classic.Completions) -> None:
        """Answer the parked JoinGroup / SyncGroup requests a decision released."""
        for member_id, result in done.joins.items():
            future = self._join_waiters.pop((group_id, member_id), None)
            if future is not None and not future.done():
                future.set_result(result)
        for member_id, result in done.syncs.items():
            future = self._sync_waiters.pop((group_id, member_id), None)
            if future is not None and not future.done():
                future.set_result(result)

    def _park(self, waiters: dict, group_id: str, member_id: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        old = waiters.pop((group_id, member_id), None)
        if old is not None and not old.done():
            old.set_result(None)
        waiters[(group_id, member_id)] = future
        return future

    async def join(
        self,
        group_id: str,
        *,
        member_id: str,
        instance_id: str,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        require_known_member_id: bool,
        client_id: str = "",
        client_host: str = "",
    ) -> group_classic.JoinResult:
        """JoinGroup: answered when the rebalance barrier completes (or at once, on an error).

        Raises:
            NotCoordinatorError, CoordinatorLoadInProgressError, InvalidRequestError,
            InconsistentGroupProtocolError.
        """
        if not self.config.min_session_timeout_ms <= session_timeout_ms <= self.config.max_session_timeout_ms:
            return group_classic.JoinResult(E.INVALID_SESSION_TIMEOUT, member_id)
        async with self._lock(group_id):
            _, state = self._owning(group_id)
            group = self._group(state, group_id, create=True)
            assert group is not None
            if (
                not member_id
                and len(group.members) + len(group.pending) >= self.config.max_group_size
                and group.by_instance(instance_id) is None
            ):
                return group_classic.JoinResult(E.GROUP_MAX_SIZE_REACHED, member_id)
            new_member_id = f"{client_id or 'member'}-{self._new_member_id()}"
            result, done = group.join(
                member_id=member_id,
                instance_id=instance_id,
                protocol_type=protocol_type,
                protocols=protocols,
                new_member_id=new_member_id,
                now_ms=self._clock_ms(),
                session_timeout_ms=session_timeout_ms,
                rebalance_timeout_ms=rebalance_timeout_ms or session_timeout_ms,
                require_known_member_id=require_known_member_id,
                client_id=client_id,
                client_host=client_host,
            )
            # Release first: `done` may answer this member's previous, replaced request.
            self.release(group_id, done)
            future = None
            if result is None:
                future = self._park(self._join_waiters, group_id, member_id or new_member_id)
            if not group.members and not group.pending and not group.offsets and group.state == group_classic.EMPTY:
                state.groups.pop(group_id, None)
        if future is not None:
            result = await future
            if result is None:   # replaced by a newer join of the same member
                return group_classic.JoinResult(E.REBALANCE_IN_PROGRESS, member_id or new_member_id)
        return result

    async def sync(
        self, group_id: str, *, member_id: str, generation_id: int, instance_id: str, assignments: dict[str, bytes]
    ) -> group_classic.SyncResult:
        """SyncGroup: answered once the leader's assignments are in (or at once).

        Raises:
            NotCoordinatorError, CoordinatorLoadInProgressError, InvalidRequestError,
            InconsistentGroupProtocolError.
        """
        async with self._lock(group_id):
            _, state = self._owning(group_id)
            group = self._group(state, group_id, create=False)
            if group is None:
                return group_classic.SyncResult(E.UNKNOWN_MEMBER)
            result, done = group.sync(
                member_id=member_id, generation_id=generation_id, instance_id=instance_id,
                assignments=assignments, now_ms=self._clock_ms(),
            )
            self.release(group_id, done)
            future = None
            if result is None:
                future = self._park(self._sync_waiters, group_id, member_id)
        if future is not None:
            result = await future
            if result is None:
                return group_classic.SyncResult(E.REBALANCE_IN_PROGRESS)
        return result

    def heartbeat(self, group_id: str, *, member_id: str, generation_id: int, instance_id: str) -> int:
        """Heartbeat: its error code (REBALANCE_IN_PROGRESS asks the member to rejoin).

        Raises:
            NotCoordinatorError, CoordinatorLoadInProgressError, InvalidRequestError,
            InconsistentGroupProtocolError.
        """
        _, state = self._owning(group_id)
        group = self._group(state, group_id, create=False)
        if group is None:
            return E.UNKNOWN_MEMBER
        return group.heartbeat(
            member_id=member_id, generation_id=generation_id, instance_id=instance_id, now_ms=self._clock_ms()
        )

    async def leave(self, group_id: str, members: list[tuple[str, str]]) -> list[int]:
        """LeaveGroup of (member id, instance id) pairs: an error code per pair.

        Raises:
            NotCoordinatorError, CoordinatorLoadInProgressError, InvalidRequestError,
            InconsistentGroupProtocolError.
        """
        async with self._lock(group_id):
            _, state = self._owning(group_id)
            group = self._group(state, group_id, create=False)
            if group is None:
                return [E.UNKNOWN_MEMBER for _ in members]
            errors, done = group.leave(members, self._clock_ms())
            self.release(group_id, done)
        return errors

    def describe(self, group: ClassicGroup) -> group_pb2.DescribedGroup:
        """A classic group in the same message: its Kafka state name ("Stable", ...), generation
        as group and assignment epoch, the selected protocol (the client-side assignor) as assignor,
        and per member the topics and partitions decoded from the consumer protocol's metadata."""
        described = group_pb2.DescribedGroup(
            group_id=group.group_id,
            state=group.state,
            group_epoch=group.generation_id,
            assignment_epoch=group.generation_id,
            assignor=group.protocol_name or "",
            error=status.ok_detail(),
        )
        for member in sorted(group.members.values(), key=lambda m: m.member_id):
            assignment = [
                common_pb2.TopicPartition(topic=t, partition=p) for t, p in group_classic.consumer_assignment(member.assignment)
            ]
            described.members.add(
                member_id=member.member_id,
                instance_id=member.instance_id,
                client_id=member.client_id,
                client_host=member.client_host,
                member_epoch=group.generation_id,
                subscribed_topic_names=group_classic.consumer_topics(member.metadata(group.protocol_name or "")),
                assignment=assignment,
                target_assignment=assignment,
            )
        for tp, value in sorted(group.offsets.items()):
            described.offsets.add(
                topic=tp[0], partition=tp[1], offset=value.offset, leader_epoch=value.leader_epoch,
                metadata=value.metadata, error=status.ok_detail(),
            )
        return described
