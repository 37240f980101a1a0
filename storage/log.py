"""The partition log: an ordered list of segments with offsets, epochs, producer state and recovery.

Owns one partition directory `<data>/<topic>-<partition>/`:

    00000000000000000000.log / .index / .timeindex    segments, named by 20-digit base offset
    00000000000000368769.log / .index / .timeindex
    00000000000000368769.snapshot                     idempotent-producer state at that offset
    leader-epoch-checkpoint                           epoch -> start offset (KIP-101)
    partition.metadata                                the topic id
    cleaner-offset-checkpoint                         first dirty offset (compacted logs only)
    log-start-offset-checkpoint                       the log start offset (once DeleteRecords moved it)
    .clean-shutdown                                   present only between close() and open()

What it does: assigns offsets to producer batches and stamps them (`append_as_leader`), takes a
leader's batches as they are (`append_as_follower`), reads whole batches by offset (`read`),
truncates (`truncate_to`, `truncate_fully_and_start_at`), rolls segments by size, age, index
capacity and offset range, deletes old segments (`delete_old_segments`), moves the log start
offset forward (`delete_records_before`: DeleteRecords, and followers following their leader's
start), looks up offsets by time
and epochs by offset, flushes by flush.messages / flush.ms, and recovers after an unclean stop:
without the clean-shutdown marker the last segment is re-read, every CRC verified, the torn or
corrupt tail cut off and its indexes rebuilt; a segment whose index is missing or fails its check is
re-read the same way. Whatever recovery cuts is logged with the file and position.

Offsets: `log_start_offset` is the first readable offset. Retention keeps it at the first
segment's base offset; `delete_records_before` moves it anywhere up to the high watermark, inside
a segment too (Kafka's maybeIncrementLogStartOffset), deleting the whole segments below it.
Invariant: first segment's base offset <= log_start_offset <= log_end_offset. `log_end_offset`
(LEO) is the offset the next record gets. The high watermark belongs to the caller (replication);
it bounds `read` through `max_offset`, and neither `delete_old_segments` nor `delete_records_before`
removes data at or above it.

The log start offset is durable through `log-start-offset-checkpoint` in the partition directory
(Kafka's checkpoint format, one entry). Kafka keeps one such file per log dir and writes it every
log.flush.start.offset.checkpoint.interval.ms, so a DeleteRecords answered just before a crash of
every replica can come undone; here the log writes its own file, synchronously, before the segments
are deleted and before `delete_records_before` returns. The file is written only when the start
is not implied by the segments (max(file, first base offset)), so retention does not write it.
On open the start is max(file, first segment's base offset) (`log_loader`).

The hot paths touch batch headers only: append validates framing and CRC, stamps the base offset
and leader epoch (outside the CRC'd range) and writes the bytes with one `pwrite`; read finds a
position through the offset index and returns bytes from one `pread`.

How the code is cut (Kafka's UnifiedLog / LocalLog / LogSegments / LogLoader split): this module
keeps `PartitionLog`, the public API and the only lock, and does what needs several parts at once:
ordering an append's steps, the offline/closed checks, the flush policy, and keeping the
leader-epoch cache, producer state and cleaner checkpoint in step with the segments.
Its collaborators hold no lock and are called only under this one:

    log_append.py      checks and places an append's batches before anything is written (pure)
    log_segments.py    the ordered segments: lookups, reads, roll, truncation, retention deletes, swap
    log_loader.py      open and recovery: directory layout, interrupted swaps, torn tails, rebuilt state
    log_compaction.py  the cleaner checkpoint and generation, snapshots for the cleaner, swapping in
    log_retention.py   which segments retention.ms and retention.bytes delete (pure)
    leader_epoch.py    the leader-epoch cache;  producer_state.py  idempotent-producer state

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: thread-safe. Every public method holds the log's lock, so the server's event-loop
thread and the compaction cleaner thread can use one log at the same time; the cleaner holds the
lock only to take a snapshot of the segment list and to swap in cleaned segments.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from typing import NamedTuple

from freshet.storage.checkpoint import fsync_directory, write_atomically, write_checkpoint
from freshet.storage.clock import Clock, SystemClock
from freshet.storage.config import LONG_MAX, LogConfig
from freshet.storage.errors import (
    KafkaStorageError,
    LogClosedError,
    LogDirFullError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from freshet.storage.file_region import FileRegion
from freshet.storage.leader_epoch import LeaderEpochCache
from freshet.storage.log_append import (
    AppendPlan,
    Placement,
    plan_follower_append,
    plan_leader_append,
    recompress_leader_batches,
    stamp_batches,
    validate_leader_batches,
)
from freshet.storage.log_compaction import CompactionState
from freshet.storage.log_compaction import (
    SegmentSnapshot as SegmentSnapshot,  # re-exported: what cleanable_segments returns
)
from freshet.storage.log_loader import (
    CLEAN_SHUTDOWN_FILE_NAME,
    LOG_START_OFFSET_CHECKPOINT_FILE_NAME,
    LOG_START_OFFSET_CHECKPOINT_VERSION,
    LogLoader,
    rebuild_producer_state,
)
from freshet.storage.log_loader import (
    PARTITION_METADATA_FILE_NAME as PARTITION_METADATA_FILE_NAME,  # re-exported: part of the layout
)
from freshet.storage.log_retention import deletable_segment_count
from freshet.storage.log_segments import LogSegments
from freshet.storage.producer_state import BatchMetadata, ProducerStateManager
from freshet.storage.record_batch import NO_TIMESTAMP, TimestampType
from freshet.storage.segment import LogSegment

logger = logging.getLogger(__name__)

#: Suffix of a partition directory being deleted.
DELETE_DIR_SUFFIX = "-delete"

#: offsets_for_time sentinels (Kafka ListOffsets): the log end offset, the log start offset, and
#: the offset of the record with the largest timestamp.
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
TIMESTAMP_MAX = -3


class LogAppendInfo(NamedTuple):
    """What an append did (Kafka's LogAppendInfo).

    Attributes:
        first_offset: offset of the first record appended (of the original batch for a duplicate).
        last_offset: offset of the last record appended.
        max_timestamp: largest batch max timestamp appended (the append time for LogAppendTime).
        offset_of_max_timestamp: base offset of the batch holding `max_timestamp`.
        log_append_time_ms: the broker time stamped into the batches, or -1 for CreateTime.
        log_start_offset: the log start offset after the append.
        record_count: records appended (from the batch headers).
        size_bytes: bytes appended.
        is_duplicate: the batch repeated one of the producer's last 5 batches; nothing was written
            and the offsets are those of the original (Kafka's DUPLICATE_SEQUENCE, a success).
    """

    first_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    log_append_time_ms: int
    log_start_offset: int
    record_count: int
    size_bytes: int
    is_duplicate: bool = False

    @classmethod
    def of_plan(
        cls,
        plan: AppendPlan,
        first_offset: int,
        log_append_time_ms: int,
        log_start_offset: int,
        size_bytes: int,
    ) -> LogAppendInfo:
        """What writing `plan` did; its records start at `first_offset`."""
        return cls(
            first_offset,
            plan.end_offset - 1,
            plan.max_timestamp,
            plan.offset_of_max_timestamp,
            log_append_time_ms,
            log_start_offset,
            plan.record_count,
            size_bytes,
        )

    @classmethod
    def of_duplicate(
        cls, original: BatchMetadata, is_log_append_time: bool, log_start_offset: int
    ) -> LogAppendInfo:
        """An append that repeated `original`: its offsets, nothing written."""
        log_append_time_ms = original.max_timestamp if is_log_append_time else -1
        return cls(
            original.first_offset,
            original.last_offset,
            original.max_timestamp,
            original.first_offset,
            log_append_time_ms,
            log_start_offset,
            0,
            0,
            is_duplicate=True,
        )


class LogReadResult(NamedTuple):
    """Bytes of whole batches and the log's bounds at the time of the read.

    Attributes:
        records: concatenated whole batches, possibly empty; a FileRegion over them when the read
            asked `as_region` and found any (its owner, the caller, closes it).
        first_offset: base offset of the first batch in `records`, -1 when empty.
        next_offset: where the next read should start: the base offset of the first batch not
            returned (or the end of the segment read), the requested offset when empty.
        log_start_offset: first readable offset.
        log_end_offset: offset the next appended record gets.
    """

    records: bytes | FileRegion
    first_offset: int
    next_offset: int
    log_start_offset: int
    log_end_offset: int


class TimestampAndOffset(NamedTuple):
    """A record found by `offsets_for_time`: its timestamp (NO_TIMESTAMP for the sentinels) and offset."""

    timestamp: int
    offset: int


class _OfflineGuard:
    """Takes its log offline when a `KafkaStorageError` leaves a `with` block; the error still propagates.

    A `LogDirFullError` (a full disk; the failed write was rolled back) keeps the log online.

    Kafka's maybeHandleIOException: every change to the log's files runs inside one, so a failed
    write, read, rename or delete leaves the log offline (`error` set) instead of half-changed and
    still in use. Not thread-safe: used under the log's lock.
    """

    __slots__ = ("directory", "error")

    def __init__(self, directory: str) -> None:
        self.directory = directory
        #: The first storage error, once the log is offline; None while it is online.
        self.error: KafkaStorageError | None = None

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: object
    ) -> bool:
        if isinstance(error, LogDirFullError):
            # Nothing was written (the append was cut back, the roll undone): the log stays online
            # and the caller retries once space is back.
            logger.warning("log %s: %s", self.directory, error)
        elif isinstance(error, KafkaStorageError):
            logger.error("log %s goes offline: %s", self.directory, error)
            self.error = error
        return False


class PartitionLog:
    """One partition's log on disk. Thread-safe (see the module docstring)."""

    def __init__(self, directory: str, config: LogConfig, clock: Clock) -> None:
        """Use `PartitionLog.open`."""
        self.directory = directory
        self._config = config
        self._clock = clock
        self._lock = threading.RLock()
        self._segments = LogSegments(directory, [])
        self._is_closed = False
        self._offline_guard = _OfflineGuard(directory)
        self._unflushed_records = 0
        self._last_flush_monotonic_ms = clock.monotonic_ms()
        self._topic_id: str | None = None
        self._epoch_cache: LeaderEpochCache
        self._producer_state = ProducerStateManager(directory, config.producer_id_expiration_ms)
        self._compaction: CompactionState
        #: The first readable offset (see the module docstring for its invariant).
        self._log_start_offset = 0
        #: What log-start-offset-checkpoint holds (-1: no file).
        self._checkpointed_log_start_offset = -1
        #: What the last open repaired, for tests and operators: (file, position, bytes cut).
        self.repairs: list[tuple[str, int, int]] = []
        #: Every offset below it is known to be on stable storage (fsynced); see `sync_durably`.
        self._durable_offset = 0
        #: Counts truncations, so an fsync that raced one does not vouch for the new tail.
        self._truncation_count = 0

    # =============================================================================================
    # Open and recovery.

    @classmethod
    def open(
        cls, directory: str, config: LogConfig, clock: Clock | None = None, *, topic_id: str | None = None
    ) -> PartitionLog:
        """Open (creating if needed) the log in `directory`, recovering it if it was not closed cleanly.

        Args:
            directory: the partition directory.
            config: the topic's log config.
            clock: time source (defaults to the system clock).
            topic_id: if given, stored in partition.metadata on first open and checked afterwards.

        Raises:
            InconsistentTopicIdError: the directory belongs to another topic id.
            KafkaStorageError: the directory cannot be read or written.
            CorruptRecordError: a sealed segment's batch headers do not parse while rebuilding state.
        """
        log = cls(directory, config, clock or SystemClock())
        with log._lock:
            loaded = LogLoader(directory, config).load(topic_id, log._producer_state, log._clock.now_ms())
            log._segments = loaded.segments
            log._topic_id = loaded.topic_id
            log._epoch_cache = loaded.epoch_cache
            log._compaction = CompactionState(directory, loaded.cleaner_checkpoint)
            log.repairs = loaded.repairs
            log._log_start_offset = loaded.log_start_offset
            log._checkpointed_log_start_offset = loaded.checkpointed_log_start_offset
            # Sealed segments were fsynced when they were sealed; the active one is not known to be.
            log._durable_offset = log._segments[-1].base_offset
        return log

    # =============================================================================================
    # Properties.

    @property
    def config(self) -> LogConfig:
        return self._config

    @property
    def topic_id(self) -> str | None:
        """The topic id from partition.metadata, if one was ever given."""
        return self._topic_id

    @property
    def log_start_offset(self) -> int:
        """The first offset that can be read (the base offset of the first segment or, after
        `delete_records_before`, an offset inside it).

        Raises:
            LogClosedError: the log was deleted (it has no segments left).
        """
        with self._lock:
            if not self._segments:
                raise LogClosedError(self.directory)
            return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        """The offset the next appended record gets (LEO).

        Raises:
            LogClosedError: the log was deleted (it has no segments left).
        """
        with self._lock:
            if not self._segments:
                raise LogClosedError(self.directory)
            return self._segments.end_offset

    @property
    def size_bytes(self) -> int:
        """Total bytes of all segment `.log` files."""
        with self._lock:
            return self._segments.size_bytes

    @property
    def segment_count(self) -> int:
        with self._lock:
            return len(self._segments)

    @property
    def latest_epoch(self) -> int:
        """The newest leader epoch in the leader-epoch cache, -1 if none."""
        with self._lock:
            return self._epoch_cache.latest_epoch

    @property
    def leader_epoch_entries(self) -> list[tuple[int, int]]:
        """(epoch, start offset) entries of the leader-epoch cache, oldest first."""
        with self._lock:
            return self._epoch_cache.entries

    @property
    def is_closed(self) -> bool:
        return self._is_closed

    def segment_base_offsets(self) -> list[int]:
        """Base offsets of the segments, ascending."""
        with self._lock:
            return self._segments.base_offsets()

    def _check_usable(self) -> None:
        if self._is_closed:
            raise LogClosedError(self.directory)
        if self._offline_guard.error is not None:
            raise KafkaStorageError(self.directory, "use an offline log", self._offline_guard.error)

    # =============================================================================================
    # Append.

    def append_as_leader(self, data: bytes | bytearray | memoryview, leader_epoch: int) -> LogAppendInfo:
        """Append producer batches: validate, assign offsets, stamp the leader epoch, write.

        Validation reads headers only: framing, magic, CRC, size <= max.message.bytes,
        record_count == last_offset_delta + 1 (>= 1), a supported codec, no control or
        transactional batches, and the idempotent-producer rules. Nothing is written unless every
        batch passes. Batches keep their bytes except the stamped base offset and partition leader
        epoch (outside the CRC), and for message.timestamp.type=LogAppendTime the timestamp type and
        max timestamp (whose CRC is then recomputed). When compression.type names a codec, a batch
        in another codec is re-encoded in it first (`recompress_leader_batches`; its size is
        checked against max.message.bytes again), so the stored bytes differ from `data`.

        Args:
            data: one or more concatenated batches. A bytearray is stamped in place (no copy); other
                buffers are copied once.
            leader_epoch: the current leader epoch, stamped into every batch and recorded in the
                leader-epoch cache.

        Returns:
            LogAppendInfo; `is_duplicate` when a batch repeats one of its producer's last 5 batches
            (nothing is written; the original offsets are returned).

        Raises:
            CorruptRecordError: bad framing or CRC (or, when re-encoding, records that do not decode).
            InvalidRecordError: counts that do not add up, control/transactional batches, an empty
                append, idempotent fields missing.
            RecordTooLargeError: a batch above max.message.bytes, or an append above segment.bytes.
            UnsupportedCompressionError: a codec this build cannot decode.
            OutOfOrderSequenceError, InvalidProducerEpochError: idempotence violations.
            KafkaStorageError: the write failed; the log goes offline.
            LogClosedError: the log was closed.
        """
        buffer = data if isinstance(data, bytearray) else bytearray(data)
        view = memoryview(buffer)
        with self._lock:
            self._check_usable()
            config = self._config
            batches = validate_leader_batches(view, config.max_message_bytes)
            recompressed = recompress_leader_batches(
                view, batches, config.compression_type, config.max_message_bytes
            )
            if recompressed is not None:
                buffer, batches = recompressed
                view = memoryview(buffer)
            total = len(buffer)
            if total > config.segment_bytes:
                raise RecordTooLargeError(total, config.segment_bytes, what="append")
            now_ms = self._clock.now_ms()
            is_log_append_time = config.message_timestamp_type == TimestampType.LOG_APPEND_TIME
            first_offset = self.log_end_offset
            producer_append = self._producer_state.begin_append(is_validated=True)
            plan = plan_leader_append(batches, first_offset, producer_append, now_ms, is_log_append_time)
            if isinstance(plan, BatchMetadata):
                return LogAppendInfo.of_duplicate(plan, is_log_append_time, self.log_start_offset)
            stamp_batches(view, plan.placements, leader_epoch, now_ms if is_log_append_time else None)
            if leader_epoch >= 0:
                # Before the write, as Kafka's UnifiedLog.append: an epoch that starts at the log
                # end with nothing written yet is harmless; an append whose epoch file write
                # failed afterwards (a full disk) would leave the log and its state apart.
                with self._offline_guard:
                    self._epoch_cache.assign(leader_epoch, first_offset)
            self._write(view, plan.placements, plan.max_timestamp, now_ms)
            self._producer_state.commit(producer_append, plan.end_offset)
            self._after_append(plan.record_count)
            log_append_time_ms = now_ms if is_log_append_time else -1
            return LogAppendInfo.of_plan(
                plan, first_offset, log_append_time_ms, self._log_start_offset, total
            )

    def append_as_follower(
        self, data: bytes | bytearray | memoryview, *, verify_crc: bool = False
    ) -> LogAppendInfo:
        """Append a leader's batches with the offsets and leader epochs they carry.

        Validates framing and offsets: the first batch must start at the log end offset, and each
        batch right after the previous one. Compacted logs (cleanup.policy contains compact) accept
        gaps between batches, because the leader's cleaner removes whole batches; any overlap is
        rejected. CRCs are not recomputed by default (DESIGN.md: the leader verified them and
        replication moves bytes unchanged); pass `verify_crc=True` for Kafka's follower behaviour.
        Batch leader epochs update the leader-epoch cache; idempotent batches update producer state.

        Raises:
            CorruptRecordError: bad framing (or a bad CRC when `verify_crc`).
            LogOffsetGapError: the offsets overlap the log or leave a gap in a non-compacted log.
            InvalidRecordError: an empty append.
            KafkaStorageError: the write failed; the log goes offline.
            LogClosedError: the log was closed.
        """
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        with self._lock:
            self._check_usable()
            plan = plan_follower_append(
                view,
                self._segments.end_offset,
                allows_gaps=self._config.is_compacted,
                latest_epoch=self._epoch_cache.latest_epoch,
                verify_crc=verify_crc,
            )
            now_ms = self._clock.now_ms()
            with self._offline_guard:
                for epoch, start_offset in plan.epochs:
                    self._epoch_cache.assign(epoch, start_offset)
            self._write(view, plan.placements, plan.max_timestamp, now_ms)
            self._producer_state.apply_headers(plan.headers)
            self._after_append(plan.record_count)
            return LogAppendInfo.of_plan(
                plan, plan.placements[0][2], -1, self._log_start_offset, len(view)
            )

    def _write(self, data: memoryview, placements: list[Placement], max_timestamp: int, now_ms: int) -> None:
        """Roll if needed, then append to the active segment. Holds the lock."""
        segments = self._segments
        with self._offline_guard:
            if segments.is_roll_due(len(data), max_timestamp, placements[-1][3] - 1, self._config, now_ms):
                self._roll(placements[0][2], now_ms)
            segments.append(data, placements)

    def roll(self) -> None:
        """Seal the active segment and start a new one at the log end offset (if the active one is not empty)."""
        with self._lock:
            self._check_usable()
            with self._offline_guard:
                self._roll(self.log_end_offset, self._clock.now_ms())

    def _roll(self, base_offset: int, now_ms: int) -> LogSegment:
        """Roll the segments; a new segment starts with a producer-state snapshot at its base offset."""
        active = self._segments[-1]
        self._epoch_cache.sync()        # the sealed segment is fsynced: so are its epochs
        segment = self._segments.roll(base_offset, self._config, now_ms)
        if segment is not active:
            # Sealing fsynced the old segment: everything below the new one is on disk.
            self._durable_offset = max(self._durable_offset, segment.base_offset)
            self._producer_state.map_end_offset = segment.base_offset
            self._producer_state.remove_expired_producers(now_ms)
            try:
                self._producer_state.take_snapshot()
            except LogDirFullError as error:
                # The snapshot only shortens recovery, which rebuilds producer state from the
                # segments when it is missing; the roll itself is done and must not be undone.
                logger.warning("%s: no producer-state snapshot at %d: %s", self.directory, segment.base_offset, error)
        return segment

    def _after_append(self, record_count: int) -> None:
        """Apply the flush policy (flush.messages / flush.ms)."""
        self._unflushed_records += record_count
        config = self._config
        if self._unflushed_records >= config.flush_messages or (
            config.flush_ms != LONG_MAX
            and self._clock.monotonic_ms() - self._last_flush_monotonic_ms >= config.flush_ms
        ):
            self._flush()

    def assign_epoch_start_offset(self, leader_epoch: int, start_offset: int) -> None:
        """Record that `leader_epoch` starts at `start_offset` (a replica becoming leader does this
        with its log end offset, as Kafka's maybeAssignEpochStartOffset)."""
        with self._lock:
            self._check_usable()
            self._epoch_cache.assign(leader_epoch, start_offset)

    # =============================================================================================
    # Read.

    def read(self, offset: int, max_bytes: int, max_offset: int | None = None, as_region: bool = False) -> LogReadResult:
        """Read whole batches starting with the batch that contains `offset` (or the first after it).

        Returns at least one whole batch when one is available, even if it is larger than
        `max_bytes` (Kafka KIP-74), and never a partial batch. Reads stop at the end of the segment
        holding the first batch, as in Kafka; the caller reads on from where the bytes end.

        Args:
            offset: first offset wanted, in [log_start_offset, log_end_offset].
            max_bytes: soft bound on the bytes returned.
            max_offset: if set (the high watermark, for consumers), only batches whose last offset
                is < `max_offset` are returned.
            as_region: hand out the bytes unread, as a FileRegion over a duplicate of the
                segment's descriptor taken under this lock (for a zero-copy send; storage/file_region.py).

        Returns:
            LogReadResult; `records` is empty at the log end or when `max_offset` stops the first batch.

        Raises:
            OffsetOutOfRangeError: `offset` is below the log start or above the log end.
            CorruptRecordError: a batch header on the way does not parse.
            KafkaStorageError: the read failed; the log goes offline.
            LogClosedError: the log was closed.
        """
        with self._lock:
            self._check_usable()
            start_offset = self._log_start_offset
            end_offset = self._segments[-1].next_offset
            if offset < start_offset or offset > end_offset:
                raise OffsetOutOfRangeError(offset, start_offset, end_offset)
            if offset == end_offset or (max_offset is not None and offset >= max_offset):
                return LogReadResult(b"", -1, offset, start_offset, end_offset)
            with self._offline_guard:
                result = self._segments.read(offset, max_bytes, max_offset, as_region)
            if result is None or not result[0]:
                return LogReadResult(b"", -1, offset, start_offset, end_offset)
            records, first_offset, next_offset = result
            return LogReadResult(records, first_offset, next_offset, start_offset, end_offset)

    def offsets_for_time(self, timestamp: int) -> TimestampAndOffset | None:
        """The first record whose timestamp is >= `timestamp` (Kafka ListOffsets).

        Special values: LATEST_TIMESTAMP (-1) gives the log end offset, EARLIEST_TIMESTAMP (-2) the
        log start offset, TIMESTAMP_MAX (-3) the first record carrying the largest timestamp (its
        own offset, not its batch's: KIP-734 as fixed by KAFKA-16310).

        Returns:
            TimestampAndOffset, or None when no record is that new.

        Raises:
            ValueError: `timestamp` is negative and not one of the special values.
            CorruptRecordError: the batch holding the record fails its CRC or does not decode.
        """
        with self._lock:
            self._check_usable()
            if timestamp == LATEST_TIMESTAMP:
                return TimestampAndOffset(NO_TIMESTAMP, self.log_end_offset)
            if timestamp == EARLIEST_TIMESTAMP:
                return TimestampAndOffset(NO_TIMESTAMP, self.log_start_offset)
            if timestamp == TIMESTAMP_MAX:
                found = self._segments.max_timestamp()
                if found is not None and found[1] < self._log_start_offset:
                    # The record was deleted by DeleteRecords; its segment still holds it.
                    found = self._segments.find_offset_by_timestamp(found[0], self._log_start_offset)
            elif timestamp < 0:
                raise ValueError(f"timestamp {timestamp} is negative and not a special value")
            else:
                found = self._segments.find_offset_by_timestamp(timestamp, self.log_start_offset)
            return None if found is None else TimestampAndOffset(*found)

    def timestamp_at(self, offset: int, high_watermark: int) -> int | None:
        """The timestamp of the batch holding `offset`, for consumer lag in time; headers only.

        The offset index gives a position at or before `offset` and a short header scan finds the
        batch holding it; nothing is decoded. The answer is that batch's first record timestamp
        (`BatchHeader.first_record_timestamp`): for an offset inside a batch it is at or before the
        record's own CreateTime when producers stamp in order, so the age it gives over-estimates
        by at most the batch's time span (max timestamp - base timestamp); LogAppendTime batches
        carry one append time for every record, so the answer is exact there.

        Args:
            offset: the first offset not yet consumed (a group's committed offset).
            high_watermark: the partition's high watermark; records at or above it do not count.

        Returns:
            None when nothing in [max(offset, log_start_offset), high_watermark) exists (caught
            up); an `offset` below the log start (retention deleted it) answers for the first
            record still there; NO_TIMESTAMP when that batch carries no timestamp.

        Raises:
            CorruptRecordError: a batch header on the way does not parse.
            KafkaStorageError: the read failed; the log goes offline.
            LogClosedError: the log was closed.
        """
        with self._lock:
            self._check_usable()
            offset = max(offset, self._log_start_offset)
            if offset >= min(high_watermark, self._segments.end_offset):
                return None
            with self._offline_guard:
                for header in self._segments.iter_headers_from(offset):
                    return header.first_record_timestamp
            return None

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int]:
        """OffsetsForLeaderEpoch: (largest epoch <= `leader_epoch`, its end offset); see LeaderEpochCache.end_offset_for."""
        with self._lock:
            self._check_usable()
            return self._epoch_cache.end_offset_for(leader_epoch, self.log_end_offset)

    def active_producers(self) -> list[tuple[int, int, int, int]]:
        """(producer id, producer epoch, last sequence, last timestamp) of every idempotent producer
        the log remembers (Kafka's DescribeProducers), by producer id."""
        with self._lock:
            return [
                (entry.producer_id, entry.producer_epoch, entry.last_sequence, entry.last_timestamp)
                for _, entry in sorted(self._producer_state.entries.items())
            ]

    def producer_state(self, producer_id: int) -> tuple[int, int, int] | None:
        """(producer epoch, last sequence, last offset) of an idempotent producer, or None if unknown."""
        with self._lock:
            entry = self._producer_state.entries.get(producer_id)
            if entry is None:
                return None
            return entry.producer_epoch, entry.last_sequence, entry.last_offset

    # =============================================================================================
    # Truncation.

    def truncate_to(self, offset: int) -> bool:
        """Remove every batch whose last offset is >= `offset` (a follower dropping a divergent suffix).

        Works at batch boundaries: if `offset` falls inside a batch, that whole batch is removed and
        the log end offset becomes the batch's base offset, below `offset` (as Kafka). An `offset`
        below the log start empties the log and restarts it at `offset`. An `offset` at or past the
        log end does nothing.

        An `offset` at or past the log end removes no data but still drops leader-epoch entries
        that start at or after the log end (Kafka's UnifiedLog.truncateTo): a replica that became
        leader, recorded its epoch's start offset and appended nothing before losing leadership
        holds such an entry, and as a follower it would otherwise keep reporting an epoch no batch
        carries, and never stop diverging.

        Returns:
            Whether anything was removed.

        Raises:
            KafkaStorageError: the files could not be changed; the log goes offline.
            LogClosedError: the log was closed.
        """
        assert offset >= 0
        with self._lock:
            self._check_usable()
            if offset >= self.log_end_offset:
                self._epoch_cache.truncate_from_end(self.log_end_offset)
                return False
            if offset < self.log_start_offset:
                self._truncate_fully_and_start_at(offset)
                return True
            with self._offline_guard:
                self._segments.truncate_to(offset)
                if self._log_start_offset > self._segments.end_offset:
                    # The cut fell inside the batch holding the log start: that batch is gone, so
                    # the start comes back to the new end (Kafka: min(target offset, log start)).
                    self._move_log_start_offset(self._segments.end_offset)
            self._after_truncation()
            return True

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Delete every segment and restart the log, empty, at `offset` (log start = LEO = `offset`).

        Raises:
            KafkaStorageError: the files could not be changed; the log goes offline.
            LogClosedError: the log was closed.
        """
        assert offset >= 0
        with self._lock:
            self._check_usable()
            self._truncate_fully_and_start_at(offset)

    def _truncate_fully_and_start_at(self, offset: int) -> None:
        with self._offline_guard:
            self._segments.restart_at(offset, self._config, self._clock.now_ms())
            self._move_log_start_offset(offset)
            self._epoch_cache.clear()
            self._producer_state.delete_snapshots_after(-1)
        self._producer_state.reset(offset)
        self._after_truncation()

    def _after_truncation(self) -> None:
        end_offset = self.log_end_offset
        self._truncation_count += 1
        self._durable_offset = min(self._durable_offset, end_offset)
        self._epoch_cache.truncate_from_end(end_offset)
        rebuild_producer_state(self._producer_state, self._segments, end_offset)
        self._compaction.after_truncation(self.log_start_offset, end_offset)

    # =============================================================================================
    # Retention.

    def delete_old_segments(self, now_ms: int, high_watermark: int) -> int:
        """Delete whole old segments by retention.ms and retention.bytes (cleanup.policy delete).

        `log_retention` decides which: a prefix of segments, each ending at or below
        `high_watermark` (data not yet on every in-sync replica is never deleted). If every segment
        goes, a new empty segment is rolled first so the log keeps its end offset. The log start
        offset moves to the first remaining segment.

        Args:
            now_ms: the current time.
            high_watermark: the partition's high watermark.

        Returns:
            The number of segments deleted.

        Raises:
            KafkaStorageError: the files could not be deleted; the log goes offline.
        """
        with self._lock:
            self._check_usable()
            self._producer_state.remove_expired_producers(now_ms)
            count = deletable_segment_count(self._segments, self._config, now_ms, high_watermark)
            if count == 0:
                return 0
            with self._offline_guard:
                if count == len(self._segments):
                    self._roll(self.log_end_offset, now_ms)
                self._segments.delete_prefix(count)
                self._move_log_start_offset(max(self._log_start_offset, self._segments[0].base_offset))
                self._after_start_moved()
            return count

    def delete_records_before(self, offset: int, high_watermark: int) -> int:
        """Move the log start offset forward to `offset` (Kafka's maybeIncrementLogStartOffset).

        DeleteRecords on a leader, and a follower following its leader's log start, call this.
        Only forward: an `offset` at or below the log start changes nothing. The new start is
        written to log-start-offset-checkpoint (fsynced) first, then the whole segments below it
        are deleted, so that once this returns the records below `offset` never come back, and a
        crash in between leaves segments that the next open deletes. Reads below the new start
        raise OffsetOutOfRangeError; ListOffsets earliest answers it.

        Args:
            offset: the new log start offset, in [0, `high_watermark`].
            high_watermark: the partition's high watermark (the caller's): records at or above it
                are not committed and are never deleted.

        Returns:
            The log start offset afterwards.

        Raises:
            OffsetOutOfRangeError: `offset` is negative or above `high_watermark` (or the log end).
            KafkaStorageError: the checkpoint or a segment could not be written or deleted; the log
                goes offline.
            LogClosedError: the log was closed.
        """
        with self._lock:
            self._check_usable()
            limit = min(high_watermark, self._segments.end_offset)
            if offset < 0 or offset > limit:
                raise OffsetOutOfRangeError(offset, self._log_start_offset, limit)
            if offset <= self._log_start_offset:
                return self._log_start_offset
            with self._offline_guard:
                self._move_log_start_offset(offset)
                segments = self._segments
                count = 0
                while count + 1 < len(segments) and segments[count + 1].base_offset <= offset:
                    count += 1
                if count:
                    segments.delete_prefix(count)
                self._after_start_moved()
            logger.info("%s: log start offset moved to %d (%d segments deleted)", self.directory, offset, count)
            return offset

    def _move_log_start_offset(self, offset: int) -> None:
        """Set the log start offset, writing the checkpoint unless the segments imply it.

        Call before deleting the segments below `offset`, so that the file is durable first. The
        start the next open derives is max(file, first base offset): the file is written only when
        that would differ from `offset`.
        """
        assert offset >= self._segments[0].base_offset
        assert offset <= self._segments.end_offset
        self._log_start_offset = offset
        implied = max(self._checkpointed_log_start_offset, self._segments[0].base_offset)
        if implied != offset:
            write_checkpoint(
                os.path.join(self.directory, LOG_START_OFFSET_CHECKPOINT_FILE_NAME),
                LOG_START_OFFSET_CHECKPOINT_VERSION,
                [(offset,)],
            )
            self._checkpointed_log_start_offset = offset

    def _after_start_moved(self) -> None:
        """Keep the leader-epoch cache, producer snapshots and cleaner checkpoint in step with a
        log start offset that moved forward."""
        start_offset = self._log_start_offset
        self._epoch_cache.truncate_from_start(start_offset)
        self._producer_state.delete_snapshots_before(self._segments[0].base_offset)
        self._compaction.after_start_moved(start_offset)

    def remove_expired_producers(self, now_ms: int) -> int:
        """Forget idempotent producers idle for producer.id.expiration.ms; return how many."""
        with self._lock:
            return self._producer_state.remove_expired_producers(now_ms)

    # =============================================================================================
    # Configuration, flush, close.

    def update_config(self, config: LogConfig) -> None:
        """Use `config` from now on (segment sizes apply from the next roll)."""
        with self._lock:
            self._config = config
            self._producer_state.producer_id_expiration_ms = config.producer_id_expiration_ms

    def flush(self) -> None:
        """fsync the active segment: every append so far survives a machine crash.

        Raises:
            KafkaStorageError: fsync failed; the log goes offline.
        """
        with self._lock:
            self._check_usable()
            self._flush()

    def _flush(self) -> None:
        end_offset = self.log_end_offset
        with self._offline_guard:
            self._epoch_cache.sync()
            self._segments[-1].flush()
        self._durable_offset = max(self._durable_offset, end_offset)
        self._unflushed_records = 0
        self._last_flush_monotonic_ms = self._clock.monotonic_ms()

    @property
    def durable_offset(self) -> int:
        """Every offset below this is on stable storage (<= log_end_offset)."""
        with self._lock:
            return min(self._durable_offset, self.log_end_offset)

    def sync_durably(self) -> int:
        """fsync everything appended so far without holding the lock while the disk works, and
        return the new durable offset (group commit: the broker's flusher thread calls this once
        per dirty log per round, so one fsync covers every batch appended since the last round).

        Appends and reads go on during the fsync. The offsets it vouches for are the log end
        offset when it started; a truncation meanwhile voids that (the durable offset then stays
        at most the new log end, and the next round covers the new tail).

        Raises:
            KafkaStorageError: the fsync failed; the log goes offline.
            LogClosedError: the log was closed.
        """
        with self._lock:
            self._check_usable()
            end_offset = self.log_end_offset
            if self._durable_offset >= end_offset:
                return end_offset
            truncation_count = self._truncation_count
            with self._offline_guard:
                fd = self._segments[-1].duplicate_fd()
        try:
            os.fdatasync(fd)
        except OSError as error:
            with self._lock, self._offline_guard:
                raise KafkaStorageError(self.directory, "flush", error) from error
        finally:
            os.close(fd)
        with self._lock:
            if self._truncation_count == truncation_count and end_offset > self._durable_offset:
                self._durable_offset = end_offset
            return min(self._durable_offset, self.log_end_offset)

    def maybe_flush(self) -> bool:
        """Flush if flush.ms has passed since the last flush and there is unflushed data (for a periodic task)."""
        with self._lock:
            self._check_usable()
            if self._unflushed_records and (
                self._clock.monotonic_ms() - self._last_flush_monotonic_ms >= self._config.flush_ms
            ):
                self._flush()
                return True
            return False

    def close(self) -> None:
        """Flush everything, write a producer snapshot and the clean-shutdown marker, release files.

        Idempotent. A log that went offline is released without the marker, so the next open recovers.
        """
        with self._lock:
            if self._is_closed:
                return
            self._is_closed = True
            if self._offline_guard.error is not None:
                self._segments.release_all()
                return
            self._epoch_cache.sync()
            self._segments.close_all()
            self._producer_state.map_end_offset = self.log_end_offset
            self._producer_state.take_snapshot()
            write_atomically(os.path.join(self.directory, CLEAN_SHUTDOWN_FILE_NAME), b"")

    def delete(self) -> None:
        """Release every file and remove the directory. The log is unusable afterwards.

        The directory is first renamed to `<name>.<random>-delete` (and the parent fsynced), then
        removed, so a crash half-way through never leaves a partial log that would be loaded again;
        LogManager removes leftover `-delete` directories on start.

        Raises:
            KafkaStorageError: the directory could not be renamed or removed.
        """
        with self._lock:
            self._is_closed = True
            self._segments.clear()
            remove_log_directory(self.directory)

    # =============================================================================================
    # Compaction support (used by freshet.storage.cleaner; the work is `log_compaction`'s).

    @property
    def cleaner_checkpoint(self) -> int:
        """First offset not yet compacted (the start of the dirty section)."""
        with self._lock:
            return self._compaction.checkpoint

    @property
    def generation(self) -> int:
        """Changes whenever truncation or deletion may have invalidated a compaction in progress."""
        with self._lock:
            return self._compaction.generation

    def cleanable_segments(self) -> tuple[list[SegmentSnapshot], int, int]:
        """A snapshot for the cleaner: (sealed segments in order, first dirty offset, generation).

        Raises:
            LogClosedError, KafkaStorageError: the log is closed or offline.
        """
        with self._lock:
            self._check_usable()
            return self._compaction.cleanable_segments(self._segments)

    def replace_segments(
        self, old: list[LogSegment], cleaned: LogSegment, generation: int, dirty_end_offset: int
    ) -> bool:
        """Swap the cleaner's output in for `old` (see `CompactionState.swap_in`), unless the log changed.

        Returns:
            Whether the swap happened (False: the log was truncated, emptied, closed or had those
            segments deleted since `cleanable_segments`; the caller discards `cleaned`).
        """
        with self._lock:
            if self._is_closed or self._offline_guard.error is not None:
                return False
            with self._offline_guard:
                is_swapped = self._compaction.swap_in(self._segments, old, cleaned, generation)
            if is_swapped and dirty_end_offset > self._compaction.checkpoint:
                self._compaction.write(dirty_end_offset)
            return is_swapped

    def update_cleaner_checkpoint(self, offset: int, generation: int) -> bool:
        """Move the cleaner checkpoint forward when nothing needed rewriting; False if the log changed."""
        with self._lock:
            if self._is_closed:
                return False
            return self._compaction.advance(offset, generation, self._segments.end_offset)

    def __repr__(self) -> str:
        return f"PartitionLog({self.directory!r})"


def remove_log_directory(directory: str) -> None:
    """Remove a partition directory so that a crash half-way never resurrects it.

    Renames it to `<name>.<random>-delete` and fsyncs the parent first (LogManager removes such
    leftovers on start), then removes the renamed tree.

    Raises:
        KafkaStorageError: the directory could not be renamed or removed.
    """
    parent = os.path.dirname(os.path.abspath(directory))
    doomed = os.path.join(parent, f"{os.path.basename(directory)}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}")
    try:
        os.rename(directory, doomed)
        fsync_directory(parent)
        shutil.rmtree(doomed)
    except OSError as error:
        raise KafkaStorageError(directory, "delete log", error) from error
