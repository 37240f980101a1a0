"""DeleteRecords on the leader (Kafka's ReplicaManager.deleteRecords and DelayedDeleteRecords, KIP-107).

Owns the data-plane operation every front-end calls: per partition, on the leader only
(NOT_LEADER with the hint elsewhere), the requested offset (-1: the high watermark) must be in
[0, high watermark] (OFFSET_OUT_OF_RANGE otherwise, as Kafka); the leader's log moves its start
there (`PartitionLog.delete_records_before`: durable before this continues, whole segments below
deleted), the push sessions carry the new start to the followers, and the request then waits,
until its timeout, for the low watermark (the smallest log start over the leader and its live
followers, `LeaderState.low_watermark`) to reach the offset: success with the low watermark, or
REQUEST_TIMED_OUT (the records are deleted on the leader either way; a follower still holding
them deletes them once it catches up). A leadership change while waiting answers NOT_LEADER.

The wait is woken by the partition's low-watermark waiters (a follower reported a new start, the
leader's start moved, the role changed) and re-checks; there is no polling.

Imports: asyncio, freshet.server (broker, status, replication), freshet.storage (errors), wire types.
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from freshet.server import status
from freshet.server.broker.partition_table import PartitionTable
from freshet.server.replication.core import LeaderState
from freshet.server.replication.partition import Partition
from freshet.storage.errors import StorageError
from freshet.v1 import common_pb2

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
#: Kafka's DeleteRecords offset meaning "up to the high watermark".
HIGH_WATERMARK_OFFSET = -1
_OK = status.ok_detail()

DeleteRecordsResult = tuple[int, common_pb2.ErrorDetail]
"""(low watermark, -1 on error; the partition's error detail, NONE on success)."""


class DeleteRecordsPath:
    """DeleteRecords on this broker's leaders (module docstring). Not thread-safe (loop)."""

    def __init__(self, table: PartitionTable, is_alive: Callable[[int], bool]) -> None:
        self._table = table
        self._is_alive = is_alive

    async def delete_records(self, wanted: list[tuple[str, int, int]], timeout_ms: int) -> list[DeleteRecordsResult]:
        """Delete the records before each (topic, partition, offset) and wait for the replicas.

        Args:
            wanted: (topic, partition, offset) per partition; offset -1 means the high watermark.
            timeout_ms: how long to wait for the low watermark of every partition (>= 0).

        Returns:
            One (low watermark, error detail) per entry of `wanted`, in its order.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_ms, 0) / 1000
        started = [self._delete_on_leader(topic, number, offset) for topic, number, offset in wanted]
        results: list[DeleteRecordsResult] = []
        for started_one in started:
            if isinstance(started_one[0], Partition):
                partition, leader, offset = started_one
                results.append(await self._await_low_watermark(partition, leader, offset, deadline))
            else:
                results.append(started_one)  # type: ignore[arg-type]
        return results

    def _delete_on_leader(self, topic: str, number: int, offset: int):
        """Move the leader's log start; (partition, its LeaderState, offset) to wait for, or the answer."""
        partition, detail = self._table.leader_partition(topic, number)
        if partition is None:
            assert detail is not None
            return -1, detail
        leader = partition.leader
        assert leader is not None
        high_watermark = partition.high_watermark
        target = high_watermark if offset == HIGH_WATERMARK_OFFSET else offset
        log = partition.log
        try:
            if target < 0 or target > high_watermark:
                return -1, status.detail(
                    E.OFFSET_OUT_OF_RANGE,
                    f"{topic}-{number}: cannot delete records before offset {offset}: it is outside [0, {high_watermark}] "
                    "(the high watermark)",
                    partition=partition.topic_partition,
                    log_start_offset=log.log_start_offset,
                    log_end_offset=high_watermark,
                )
            before = log.log_start_offset
            log.delete_records_before(target, high_watermark)
        except StorageError as error:
            return -1, self._table.storage_detail(partition, error)
        if log.log_start_offset != before:
            logger.info("%s-%d: DeleteRecords moved the log start offset from %d to %d", topic, number, before, target)
            partition.log_start_offset_moved()
        return partition, leader, target

    async def _await_low_watermark(
        self, partition: Partition, leader: LeaderState, offset: int, deadline: float
    ) -> DeleteRecordsResult:
        """Kafka's DelayedDeleteRecords for one partition: the low watermark once it reaches `offset`."""
        loop = asyncio.get_running_loop()
        while True:
            if partition.leader is not leader:
                return -1, self._table.not_leader_detail_of(partition)
            try:
                low_watermark = leader.low_watermark(partition.log.log_start_offset, self._is_alive)
            except StorageError as error:
                return -1, self._table.storage_detail(partition, error)
            if low_watermark >= offset:
                return low_watermark, _OK
            remaining = deadline - loop.time()
            if remaining <= 0:
                return -1, status.detail(
                    E.REQUEST_TIMED_OUT,
                    f"{partition.topic}-{partition.partition}: the records before {offset} are deleted on the leader, but "
                    f"not every live replica deleted them within the request's timeout (low watermark {low_watermark})",
                    partition=partition.topic_partition,
                )
            future = loop.create_future()
            partition.low_watermark_waiters.add(future)
            try:
                await asyncio.wait((future,), timeout=remaining)
            finally:
                partition.low_watermark_waiters.discard(future)
                future.cancel()
