"""The produce path: validate, append as leader, answer at once or through the purgatory.

Owns, per produce request (Kafka's ReplicaManager.appendRecords): per partition NOT_LEADER with the
leader hint, exactly one batch (else INVALID_RECORD), NOT_ENOUGH_REPLICAS before appending for
acks=all with a short ISR, KAFKA_STORAGE_ERROR while the log directory is full (disk_watch.py), then `append_as_leader` (CRC, size, sequences in storage), wake the
follower sessions, answer acks=0/1 at once and acks=all through the produce purgatory
(server/replication/partition.py) when the high watermark passes the batch.

Imports: asyncio, freshet.server (broker, replication, status, errors), freshet.storage, wire types.
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from freshet.server import status
from freshet.server.broker.disk_watch import DiskWatch
from freshet.server.broker.partition_table import PartitionTable
from freshet.server.errors import InvalidRequestError, InvalidRequiredAcksError, PartitionRequestError
from freshet.server.replication.partition import Partition, ProduceOperation, ProduceWaiter
from freshet.storage.clock import Clock
from freshet.storage.errors import StorageError
from freshet.storage.record_batch import LOG_OVERHEAD
from freshet.v1 import broker_pb2, common_pb2

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
ACKS_ALL = -1
_OK = status.ok_detail()


class ProducePath:
    """Appends produce requests as leader (module docstring). Not thread-safe (loop)."""

    def __init__(self, table: PartitionTable, clock: Clock, disk: DiskWatch | None = None) -> None:
        """`disk` None: no free-space check (unit tests of the path over fakes)."""
        self._table = table
        self._clock = clock
        self._disk = disk
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def produce(
        self,
        request: broker_pb2.ProduceRequest,
        on_done: Callable[[broker_pb2.ProduceResponse], None],
        refused: Mapping[str, str] | None = None,
    ) -> ProduceOperation:
        """Append a produce request's batches now (synchronously: requests on a stream are appended
        in stream order) and call on_done(response) when it is answered: at once for acks 0 and 1,
        when every partition is committed, failed or timed out for acks=all. on_done may be
        called before this returns. `refused` names topics the caller may not write (topic ->
        the front-end's one-line reason): their partitions answer TOPIC_AUTHORIZATION_FAILED
        and nothing of them is appended (Kafka answers per partition, the others proceed).

        Raises:
            InvalidRequiredAcksError: acks is not 0, 1 or -1.
            InvalidRequestError: a negative timeout.
        """
        now_ms = self._clock.monotonic_ms()
        acks = request.acks
        if acks not in (0, 1, ACKS_ALL):
            raise InvalidRequiredAcksError(acks)
        if request.timeout_ms < 0:
            raise InvalidRequestError(f"timeout_ms must be >= 0, not {request.timeout_ms}")
        response = broker_pb2.ProduceResponse(correlation_id=request.correlation_id)
        operation = ProduceOperation(response, on_done, now_ms / 1000)
        operation.remaining = 1                           # held until every partition is appended
        seen: set[tuple[str, int]] = set()
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
            if refused and topic in refused:
                result.error.CopyFrom(
                    status.detail(E.TOPIC_AUTHORIZATION_FAILED, refused[topic], partition=common_pb2.TopicPartition(topic=topic, partition=number))
                )
                continue
            partition, refusal = self._table.leader_partition(topic, number)
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
        refusal = _refuse_before_append(partition, data, acks)
        if refusal is not None:
            return refusal
        try:
            # A full log directory refuses before anything is written (KAFKA_STORAGE_ERROR, retriable).
            if self._disk is not None:
                self._disk.check_produce(partition.topic, len(data))
            info = partition.log.append_as_leader(bytearray(data), partition.leader_epoch)
        except StorageError as error:
            detail = self._table.storage_detail(partition, error)
            if detail.code == E.UNKNOWN_SERVER_ERROR:
                logger.error("%s-%d: append failed", partition.topic, partition.partition, exc_info=error)
            return detail
        if self._disk is not None:
            self._disk.note_appended(info.size_bytes)
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
            partition.leader_appended(info.last_offset + 1, now_ms)
        if acks != ACKS_ALL:
            return None
        required = info.last_offset + 1
        if partition.high_watermark >= required:
            return _short_isr_after_append(partition)
        waiter = ProduceWaiter(required, operation, result, partition)
        operation.waiting.append(waiter)
        operation.remaining += 1
        partition.add_produce_waiter(waiter)
        return None

    async def append_as_leader(
        self, topic: str, partition: int, batch: bytes, acks: str | int = "all", timeout_ms: int = 30000, client_id: str = ""
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
            acks=acks_value, timeout_ms=timeout_ms, client_id=client_id,
            partitions=[broker_pb2.PartitionRecords(topic=topic, partition=partition, records=bytes(batch))],
        )
        assert self._loop is not None
        answered: asyncio.Future = self._loop.create_future()
        self.produce(request, lambda response: answered.done() or answered.set_result(response))
        result = (await answered).results[0]
        if result.error.code != E.NONE:
            raise PartitionRequestError(result.error.code, result.error)
        return result.base_offset if acks_value != 0 else -1

    def produce_waiting(self) -> int:
        """Partitions of acks=all requests waiting in the produce purgatory."""
        return sum(partition.waiting_count for partition in self._table.partitions.values())


def _refuse_before_append(partition: Partition, data: bytes, acks: int) -> common_pb2.ErrorDetail | None:
    """What stops an append before it touches the log: more than one batch, or acks=all with an
    ISR below min.insync.replicas (Kafka: NOT_ENOUGH_REPLICAS, nothing appended)."""
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
    return None


def _short_isr_after_append(partition: Partition) -> common_pb2.ErrorDetail | None:
    """An acks=all batch already below the high watermark: NOT_ENOUGH_REPLICAS_AFTER_APPEND when
    the ISR is short by now, else success."""
    leader = partition.leader
    assert leader is not None
    if len(leader.isr) < partition.min_insync_replicas:
        return status.detail(
            E.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            f"{partition.topic}-{partition.partition}: appended, but the ISR has fewer than "
            f"min.insync.replicas={partition.min_insync_replicas} replicas",
            partition=partition.topic_partition,
        )
    return None
