"""The consumer read path: fetch, fetch streams, list offsets, log dirs, committed reads.

Owns (Kafka's ReplicaManager.fetchMessages and DelayedFetch): reads bounded by the high
watermark, from partition leaders only, with leader-epoch fencing; long polls that wait on the
partitions' high watermark futures (no polling); fetch streams that push as high watermarks
advance; ListOffsets (earliest, latest = high watermark, by time, the record with the largest
timestamp, with leader-epoch fencing); DescribeLogDirs; DescribeProducers; and
`read_committed` for internal-topic owners, which reads any hosted replica.

Imports: asyncio, freshet.server (broker, replication, status, errors, limits), freshet.storage,
wire types.
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from freshet.server import limits, status
from freshet.server.broker.partition_table import PartitionTable, TopicPartition
from freshet.server.errors import InvalidRequestError, PartitionRequestError
from freshet.server.metrics import BrokerMetrics
from freshet.server.replication.partition import STOPPED, Partition
from freshet.storage.errors import OffsetOutOfRangeError, StorageError
from freshet.storage.file_region import FileRegion, close_regions
from freshet.storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, TIMESTAMP_MAX
from freshet.v1 import broker_pb2, common_pb2, replication_pb2

E = common_pb2.ErrorCode
_OK = status.ok_detail()


class FetchPath:
    """Serves reads of committed data (module docstring). Not thread-safe (loop)."""

    def __init__(self, table: PartitionTable, metrics: BrokerMetrics) -> None:
        self._table = table
        self._metrics = metrics
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fetch_waiting = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -- one partition ---------------------------------------------------------------------------

    def _read(
        self, results, wanted: broker_pb2.PartitionFetch, offset: int, limit: int, as_region: bool = False
    ) -> tuple[broker_pb2.PartitionFetchResult, bytes | FileRegion, bool]:
        """One partition of a consumer fetch, added to `results` (a response's repeated field: a
        result made apart and appended would be copied, records and all): (result, records,
        is_error). Reads below the high watermark only. With `as_region` the records are a
        FileRegion the caller owns (the result's `records` field stays empty), else they are in
        the result too."""
        result = results.add(topic=wanted.topic, partition=wanted.partition, next_fetch_offset=offset)
        partition, refusal = self._table.leader_partition(wanted.topic, wanted.partition)
        if partition is None:
            result.error.CopyFrom(refusal)
            return result, b"", True
        fenced = _epoch_refusal(partition, wanted.current_leader_epoch, self._table.node_id)
        if fenced is not None:
            result.error.CopyFrom(fenced)
            return result, b"", True
        high_watermark = partition.high_watermark
        result.high_watermark = high_watermark
        try:
            read = partition.log.read(offset, limit, max_offset=high_watermark, as_region=as_region)
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
            return result, b"", True
        except StorageError as error:
            result.error.CopyFrom(self._table.storage_detail(partition, error))
            return result, b"", True
        result.log_start_offset = read.log_start_offset
        records = read.records
        if records:
            if not as_region:
                result.records = records
            result.next_fetch_offset = read.next_offset
            partition.counters.bytes_out.inc(len(records))
        return result, records, False

    def _read_all(
        self, request: broker_pb2.FetchRequest, offsets: list[int], max_bytes: int, regions: list | None = None
    ) -> tuple[broker_pb2.FetchResponse, int, bool]:
        """Every partition of a fetch; with `regions` (an empty list) the records are appended to
        it as FileRegions (None where a partition has none), one per result, and not copied."""
        response = broker_pb2.FetchResponse()
        results = response.results
        total = 0
        has_error = False
        for wanted, offset in zip(request.partitions, offsets, strict=True):
            if total >= max_bytes:
                # KIP-74: the response is full; the rest answer empty (their high watermark only).
                result = results.add(topic=wanted.topic, partition=wanted.partition, next_fetch_offset=offset)
                partition = self._table.get((wanted.topic, wanted.partition))
                if partition is not None:
                    result.high_watermark = partition.high_watermark
                if regions is not None:
                    regions.append(None)
                continue
            limit = wanted.partition_max_bytes or max_bytes
            limit = min(limit, max_bytes - total)
            _, records, is_error = self._read(results, wanted, offset, limit, regions is not None)
            if regions is not None:
                regions.append(records or None)
            total += len(records)
            has_error |= is_error
        return response, total, has_error

    # -- waiting on high watermarks --------------------------------------------------------------

    def _wait_future(self, keys: Iterable[TopicPartition]) -> asyncio.Future:
        """A future resolved when the high watermark (or role) of any of `keys` changes."""
        assert self._loop is not None
        future = self._loop.create_future()
        for key in keys:
            partition = self._table.get(key)
            if partition is not None:
                partition.fetch_waiters.add(future)
        return future

    def _forget_future(self, keys: Iterable[TopicPartition], future: asyncio.Future) -> None:
        for key in keys:
            partition = self._table.get(key)
            if partition is not None:
                partition.fetch_waiters.discard(future)

    async def fetch(self, request: broker_pb2.FetchRequest) -> broker_pb2.FetchResponse:
        """Long-poll fetch: answer when min_bytes are there, a partition fails, or max_wait_ms
        passed; waits on the partitions' high watermarks, never polls.

        Raises:
            InvalidRequestError: negative sizes or wait.
        """
        response, _ = await self._fetch(request, False)
        return response

    async def fetch_regions(self, request: broker_pb2.FetchRequest) -> tuple[broker_pb2.FetchResponse, list[FileRegion | None]]:
        """`fetch` for a zero-copy send (the Kafka listener): the records are not read but
        returned as FileRegions, one per result (None: no records), which the caller owns and
        closes; the results' `records` fields are empty.

        Raises:
            InvalidRequestError: negative sizes or wait.
        """
        return await self._fetch(request, True)

    async def _fetch(
        self, request: broker_pb2.FetchRequest, as_region: bool
    ) -> tuple[broker_pb2.FetchResponse, list[FileRegion | None]]:
        max_bytes = _check_fetch(request)
        offsets = [wanted.fetch_offset for wanted in request.partitions]
        regions: list | None = [] if as_region else None
        response, total, has_error = self._read_all(request, offsets, max_bytes, regions)
        if total >= request.min_bytes or has_error or request.max_wait_ms == 0:
            return response, regions or []
        loop = self._loop
        assert loop is not None
        deadline = loop.time() + request.max_wait_ms / 1000
        keys = [(wanted.topic, wanted.partition) for wanted in request.partitions]
        self.fetch_waiting += 1
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                future = self._wait_future(keys)
                timer = loop.call_later(remaining, _resolve, future)
                try:
                    await future
                finally:
                    timer.cancel()
                    self._forget_future(keys, future)
                close_regions(regions)
                regions = [] if as_region else None
                response, total, has_error = self._read_all(request, offsets, max_bytes, regions)
                if total >= request.min_bytes or has_error:
                    break
        except BaseException:
            close_regions(regions)
            raise
        finally:
            self.fetch_waiting -= 1
        return response, regions or []

    async def fetch_stream(self, request: broker_pb2.FetchRequest, write: Callable) -> None:
        """Push committed data from the requested offsets as the high watermarks advance, each
        message after the previous one was accepted by flow control (`await write(message)`).
        A partition with an error gets one result carrying it and leaves the feed; the stream
        ends when no partition is left (or the client cancels).

        Raises:
            InvalidRequestError: negative sizes, or a partition asked twice.
        """
        max_bytes = _check_fetch(request)
        feed: dict[TopicPartition, tuple[broker_pb2.PartitionFetch, int]] = {}
        for wanted in request.partitions:
            key = (wanted.topic, wanted.partition)
            if key in feed:
                raise InvalidRequestError(f"{wanted.topic}-{wanted.partition} appears more than once")
            feed[key] = (wanted, wanted.fetch_offset)
        while feed:
            response = self._read_feed(feed, max_bytes)
            if response.results:
                self._metrics.count_request("FetchStream")
                await write(response)
                continue
            future = self._wait_future(feed)
            self.fetch_waiting += 1
            try:
                await future
            finally:
                self.fetch_waiting -= 1
                self._forget_future(feed, future)

    def _read_feed(self, feed: dict[TopicPartition, tuple[broker_pb2.PartitionFetch, int]], max_bytes: int) -> broker_pb2.FetchResponse:
        """One message of a fetch stream: what each partition of the feed has now; a partition
        with an error leaves the feed."""
        response = broker_pb2.FetchResponse()
        total = 0
        for key, (wanted, offset) in list(feed.items()):
            if total >= max_bytes:
                break
            limit = min(wanted.partition_max_bytes or max_bytes, max_bytes - total)
            result, records, is_error = self._read(response.results, wanted, offset, limit)
            if is_error:
                del feed[key]
            elif records:
                feed[key] = (wanted, result.next_fetch_offset)
                total += len(records)
            else:
                del response.results[-1]                # nothing new: not in this message
        return response

    # -- offsets and log dirs --------------------------------------------------------------------

    def list_offsets(self, request: broker_pb2.ListOffsetsRequest) -> broker_pb2.ListOffsetsResponse:
        """Earliest (-2), latest (-1: the high watermark), the record with the largest timestamp
        (-3) or by timestamp (the last two below the high watermark), from partition leaders only;
        a query carrying another leader epoch is FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH."""
        response = broker_pb2.ListOffsetsResponse()
        for query in request.partitions:
            result = response.results.add(topic=query.topic, partition=query.partition, offset=-1, timestamp=-1)
            partition, refusal = self._table.leader_partition(query.topic, query.partition)
            if partition is None:
                result.error.CopyFrom(refusal)
                continue
            result.leader_epoch = partition.leader_epoch
            if query.HasField("current_leader_epoch"):
                fenced = _epoch_refusal(partition, query.current_leader_epoch, self._table.node_id)
                if fenced is not None:
                    result.error.CopyFrom(fenced)
                    continue
            try:
                detail = _list_offset(partition, query.timestamp, result)
            except StorageError as error:
                detail = self._table.storage_detail(partition, error)
            result.error.CopyFrom(detail)
        return response

    def describe_log_dirs(self, request: broker_pb2.DescribeLogDirsRequest) -> broker_pb2.DescribeLogDirsResponse:
        """This broker's replicas as its own logs see them (Kafka's DescribeLogDirs): size, log
        start and end, high watermark, role. Empty request: every hosted replica."""
        table = self._table
        response = broker_pb2.DescribeLogDirsResponse(broker_id=table.node_id)
        if request.partitions:
            wanted = [(tp.topic, tp.partition) for tp in request.partitions]
        else:
            wanted = sorted(table.partitions)
        for key in wanted:
            info = response.replicas.add(topic=key[0], partition=key[1], log_start_offset=-1, log_end_offset=-1,
                                         high_watermark=-1, leader_epoch=-1)
            partition = table.get(key)
            if partition is None:
                tp = common_pb2.TopicPartition(topic=key[0], partition=key[1])
                info.error.CopyFrom(status.detail(E.UNKNOWN_TOPIC, f"broker {table.node_id} hosts no replica of {key[0]}-{key[1]}",
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
                info.error.CopyFrom(table.storage_detail(partition, error))
                continue
            info.error.CopyFrom(_OK)
        return response

    def describe_producers(self, topic: str, partition: int) -> tuple[common_pb2.ErrorDetail, list[tuple[int, int, int, int]]]:
        """The idempotent producers a partition this broker leads remembers (Kafka's
        DescribeProducers): (OK, [(producer id, epoch, last sequence, last timestamp)]), or (the
        error, []) — NOT_LEADER with the hint, a storage error."""
        hosted, refusal = self._table.leader_partition(topic, partition)
        if hosted is None:
            assert refusal is not None
            return refusal, []
        try:
            return _OK, hosted.log.active_producers()
        except StorageError as error:
            return self._table.storage_detail(hosted, error), []

    def record_timestamps(self, request: replication_pb2.RecordTimestampsRequest) -> replication_pb2.RecordTimestampsResponse:
        """Replication.RecordTimestamps: per query, the timestamp of the record at the offset in a
        partition this broker leads (`PartitionLog.timestamp_at`: one offset-index lookup and a
        short header scan, nothing decoded), with the high watermark; others answer NOT_LEADER
        with the hint or a storage error, per query."""
        response = replication_pb2.RecordTimestampsResponse()
        for query in request.queries:
            result = response.results.add(
                topic=query.topic, partition=query.partition, offset=query.offset, high_watermark=-1, timestamp=-1
            )
            hosted, refusal = self._table.leader_partition(query.topic, query.partition)
            if hosted is None:
                result.error.CopyFrom(refusal)
                continue
            high_watermark = hosted.high_watermark
            try:
                found = hosted.log.timestamp_at(query.offset, high_watermark)
            except StorageError as error:
                result.error.CopyFrom(self._table.storage_detail(hosted, error))
                continue
            result.high_watermark = high_watermark
            result.is_caught_up = found is None
            result.timestamp = -1 if found is None else found
            result.error.CopyFrom(_OK)
        return response

    def read_committed(self, topic: str, partition: int, offset: int, max_bytes: int = 1024 * 1024) -> tuple[bytes, int, int]:
        """Committed record batches of a partition hosted here (leader or follower), from the
        local log: whole batches from the one holding `offset`, below this replica's high
        watermark, at most `max_bytes` (at least one batch). Returns (records, next offset,
        high watermark); records are empty at the high watermark.

        Raises:
            PartitionRequestError: the partition is not hosted here (NOT_LEADER with the hint) or
                `offset` is outside [log start, high watermark] (OFFSET_OUT_OF_RANGE).
        """
        hosted = self._table.get((topic, partition))
        if hosted is None or hosted.role == STOPPED:
            detail = self._table.not_leader_detail(topic, partition)
            raise PartitionRequestError(detail.code, detail)
        high_watermark = hosted.high_watermark
        try:
            read = hosted.log.read(offset, max_bytes, max_offset=high_watermark)
        except StorageError as error:
            detail = self._table.storage_detail(hosted, error)
            raise PartitionRequestError(detail.code, detail) from error
        if not read.records:
            return b"", offset, high_watermark
        return bytes(read.records), read.next_offset, high_watermark


def _check_fetch(request: broker_pb2.FetchRequest) -> int:
    """Validate a fetch's sizes; return the response's byte budget."""
    if request.max_wait_ms < 0 or request.min_bytes < 0 or request.max_bytes < 0:
        raise InvalidRequestError("max_wait_ms, min_bytes and max_bytes must be >= 0")
    for wanted in request.partitions:
        if wanted.partition_max_bytes < 0:
            raise InvalidRequestError(f"{wanted.topic}-{wanted.partition}: partition_max_bytes must be >= 0")
    return min(request.max_bytes or limits.FETCH_BYTES_DEFAULT, limits.FETCH_RESPONSE_BYTES_MAX)


def _epoch_refusal(partition: Partition, current_epoch: int, node_id: int) -> common_pb2.ErrorDetail | None:
    """KIP-320: a fetch or list-offsets query carrying another leader epoch is FENCED (older) or UNKNOWN (newer)."""
    if current_epoch < 0 or current_epoch == partition.leader_epoch:
        return None
    code = E.FENCED_LEADER_EPOCH if current_epoch < partition.leader_epoch else E.UNKNOWN_LEADER_EPOCH
    return status.detail(
        code,
        f"{partition.topic}-{partition.partition}: the request carries leader epoch {current_epoch}, this leader is at "
        f"{partition.leader_epoch}",
        partition=partition.topic_partition,
        leader_id=node_id,
        leader_epoch=partition.leader_epoch,
    )


def _list_offset(partition: Partition, timestamp: int, result: broker_pb2.PartitionOffsetResult) -> common_pb2.ErrorDetail:
    """Fill one ListOffsets answer; return its error detail (OK unless the timestamp is invalid)."""
    if timestamp == EARLIEST_TIMESTAMP:
        result.offset = partition.log.log_start_offset
    elif timestamp == LATEST_TIMESTAMP:
        result.offset = partition.high_watermark
    elif timestamp < 0 and timestamp != TIMESTAMP_MAX:
        return status.detail(E.INVALID_REQUEST,
                             f"timestamp {timestamp}: use -2 (earliest), -1 (latest), -3 (largest timestamp) or a time in ms",
                             partition=partition.topic_partition)
    else:
        found = partition.log.offsets_for_time(timestamp)
        if found is not None and found.offset < partition.high_watermark:
            result.offset = found.offset
            result.timestamp = found.timestamp
    return _OK


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
